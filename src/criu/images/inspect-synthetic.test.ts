/**
 * inspectImages on small images written here (no root, no CRIU): unknown file kinds, missing
 * optional images, a command line spanning pages, pages that are lazy or in the parent, a
 * damaged image, and the address formats.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isFerryError } from '../../util/errors.js';
import { splitNulStrings } from './cmdline.js';
import { inspectImages } from './inspect.js';
import { PE_LAZY, PE_PARENT, PE_PRESENT } from './pagemap.js';
import { formatInetAddress } from './sockets.js';
import { PAGE, PID, writeDump } from '../../testing/synthetic-dump.js';

void describe('inspectImages on synthetic images', () => {
  let root: string;
  before(async () => { root = await mkdtemp(join(tmpdir(), 'ferry-inspect-')); });
  after(async () => { await rm(root, { recursive: true, force: true }); });
  const fresh = async (name: string): Promise<string> => {
    const dir = join(root, name);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir);
    return dir;
  };

  void it('reads a command line spanning two pages, and describes every fd without crashing', async () => {
    const dir = await fresh('spanning');
    await writeDump(dir, PE_PRESENT);
    const s = await inspectImages(dir);
    const [p] = s.processes;
    assert.ok(p);
    assert.deepEqual(p.commandLine, ['/bin/prog', '--long-option=value']);
    assert.equal(p.commandLineSource, 'memory');
    assert.equal(p.comm, 'prog');
    assert.equal(p.state, 'alive');
    assert.deepEqual(s.files, [{
      filesId: 7, pids: [PID], fds: [
        { fd: 5, type: 'unknown', description: 'kind 99', fileId: 1 },
        { fd: 6, type: 'inet', description: 'file id 2: files.img has no inet details', fileId: 2 },
        { fd: 7, type: 'pipe', description: 'pipe:[1234] write end', fileId: 3 },
        { fd: 8, type: 'unknown', description: 'file id 8 (kind 1) not in files.img', fileId: 8 },
      ],
    }]);
    assert.match(s.warnings.join('\n'), /fd 8 names file id 8, not in files\.img/);
    const [mem] = s.memory;
    assert.equal(mem?.stackBytes, 2 * PAGE);
    assert.deepEqual(mem?.pages, { present: 2, presentBytes: 2 * PAGE, lazy: 0, inParent: 0, pagesFile: 'pages-5.img' });
    assert.deepEqual(mem?.largestMappings, [{ start: '0x7ff000000000', end: '0x7ff000002000', size: 2 * PAGE, prot: 'rw-', flags: ['private', 'anon', 'stack'] }]);
    assert.deepEqual(s.namespaces.tasks, [{ pid: PID, ids: { net: 3 } }]);
    assert.deepEqual(s.criu, {}, 'no inventory, no stats');
    assert.deepEqual(JSON.parse(JSON.stringify(s)), s);
  });

  for (const [flags, words] of [[PE_LAZY, /lazy/], [PE_PARENT | PE_LAZY, /parent snapshot/]] as const) {
    void it(`falls back to comm when an argument page is ${words.source}`, async () => {
      const dir = await fresh(`missing-${flags}`);
      await writeDump(dir, flags);
      const [p] = (await inspectImages(dir)).processes;
      assert.deepEqual(p?.commandLine, ['prog']);
      assert.equal(p?.commandLineSource, 'comm');
      assert.match(p?.commandLineNote ?? '', words);
    });
  }

  void it('falls back to comm without mm or pagemap images, and tolerates a missing pages file', async () => {
    const dir = await fresh('no-mm');
    await writeDump(dir, PE_PRESENT);
    await rm(join(dir, 'pages-5.img'));
    let [p] = (await inspectImages(dir)).processes;
    assert.match(p?.commandLineNote ?? '', /pages-5\.img is missing/);
    await rm(join(dir, `mm-${PID}.img`));
    const s = await inspectImages(dir);
    [p] = s.processes;
    assert.match(p?.commandLineNote ?? '', /no mm image/);
    assert.deepEqual(s.memory, []);
  });

  void it('names the damaged image in an ERR_IMAGE_FORMAT error', async () => {
    const dir = await fresh('corrupt');
    await writeDump(dir, PE_PRESENT);
    await writeFile(join(dir, `mm-${PID}.img`), Buffer.from([0x19, 0x43, 0x56, 0x54, 0x20, 0x28, 0x49, 0x57, 9, 0, 0, 0, 0xff]));
    await assert.rejects(inspectImages(dir), (err: unknown) => {
      assert.ok(isFerryError(err, 'ERR_IMAGE_FORMAT'), String(err));
      assert.ok(err.message.includes(join(dir, `mm-${PID}.img`)), err.message);
      return true;
    });
  });

  void it('formats addresses and NUL-separated strings', () => {
    assert.equal(formatInetAddress([0x0100007f], 2), '127.0.0.1');
    assert.equal(formatInetAddress([], 2), '0.0.0.0');
    assert.equal(formatInetAddress([0, 0, 0, 0x01000000], 10), '::1');
    assert.equal(formatInetAddress([0xb80d0120, 0, 0, 0x01000000], 10), '2001:db8::1');
    assert.equal(formatInetAddress([0, 0, 0xffff0000, 0x0100007f], 10), '::ffff:7f00:1');
    assert.deepEqual(splitNulStrings(Buffer.from('a\0\0b\0')), ['a', '', 'b']);
    assert.deepEqual(splitNulStrings(Buffer.from('a\0b')), ['a', 'b']);
  });
});
