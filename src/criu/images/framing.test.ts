import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isFerryError } from '../../util/errors.js';
import { decodeImage, encodeImage, readImageEntries, writeImageFile } from './framing.js';
import { IMAGE_KINDS, IMG_COMMON_MAGIC, imageKindOf } from './magic.js';

const PAGEMAP = IMAGE_KINDS.pagemap;
const INVENTORY = IMAGE_KINDS.inventory;

function u32le(...values: number[]): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => view.setUint32(i * 4, v, true));
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

/** Asserts `fn` throws ERR_IMAGE_FORMAT whose message contains every fragment. */
function assertFormatError(fn: () => unknown, ...fragments: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isFerryError(err, 'ERR_IMAGE_FORMAT'), `expected ERR_IMAGE_FORMAT, got ${String(err)}`);
    for (const f of fragments) assert.ok(err.message.includes(f), `message ${JSON.stringify(err.message)} lacks ${JSON.stringify(f)}`);
    return true;
  });
}

void describe('image framing', () => {
  let dir: string;
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'ferry-framing-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  void it('lays out head magic, type magic, then size + payload per entry, little-endian', () => {
    const bytes = encodeImage(PAGEMAP, [Uint8Array.of(0x08, 0x01), Uint8Array.of()]);
    assert.deepEqual([...bytes], [
      0x19, 0x43, 0x56, 0x54, // IMG_COMMON_MAGIC 0x54564319
      0x25, 0x40, 0x08, 0x56, // PAGEMAP_MAGIC 0x56084025
      2, 0, 0, 0, 0x08, 0x01,
      0, 0, 0, 0,
    ]);
  });

  void it('writes inventory with no head magic', () => {
    const bytes = encodeImage(INVENTORY, [Uint8Array.of(0x08, 0x02)]);
    assert.deepEqual([...bytes], [0x16, 0x31, 0x31, 0x58, 2, 0, 0, 0, 0x08, 0x02]);
  });

  void it('decodes what it encodes, with entry offsets', () => {
    const payloads = [Uint8Array.of(1, 2, 3), Uint8Array.of(), Uint8Array.of(9)];
    const entries = decodeImage(encodeImage(PAGEMAP, payloads), PAGEMAP, 'x.img');
    assert.deepEqual(entries.map((e) => [...e.payload]), [[1, 2, 3], [], [9]]);
    assert.deepEqual(entries.map((e) => e.offset), [8, 15, 19]);
  });

  void it('treats an empty file, a missing file and magics-only as no entries', async () => {
    assert.deepEqual(decodeImage(new Uint8Array(0), PAGEMAP, 'empty.img'), []);
    assert.deepEqual(await readImageEntries(join(dir, 'missing.img'), PAGEMAP), []);
    assert.deepEqual(decodeImage(u32le(IMG_COMMON_MAGIC, PAGEMAP.magic), PAGEMAP, 'x.img'), []);
  });

  void it('rejects a wrong head magic, naming file, expected, actual and offset', () => {
    assertFormatError(() => decodeImage(u32le(0x11223344, PAGEMAP.magic), PAGEMAP, '/d/pagemap-1.img'),
      '/d/pagemap-1.img', 'head magic', '0x54564319', '0x11223344', 'at byte 0');
  });

  void it('rejects a wrong type magic (a pstree read as pagemap)', () => {
    const pstree = encodeImage(IMAGE_KINDS.pstree, []);
    assertFormatError(() => decodeImage(pstree, PAGEMAP, 'pagemap-1.img'),
      'type magic', '0x56084025 (PAGEMAP)', '0x50273030 (PSTREE)', 'at byte 4');
  });

  void it('rejects a service file read as a regular image and vice versa', () => {
    const stats = encodeImage(IMAGE_KINDS['stats-dump'], []);
    assertFormatError(() => decodeImage(stats, IMAGE_KINDS.pstree, 'stats-dump'), 'head magic', '0x55105940 (IMG_SERVICE)');
  });

  void it('rejects truncated magics, sizes and payloads', () => {
    assertFormatError(() => decodeImage(Uint8Array.of(0x19, 0x43), PAGEMAP, 'p.img'), 'truncated head magic', 'at byte 0');
    assertFormatError(() => decodeImage(u32le(IMG_COMMON_MAGIC), PAGEMAP, 'p.img'), 'truncated type magic', 'at byte 4');
    const good = encodeImage(PAGEMAP, [Uint8Array.of(1, 2, 3, 4, 5)]);
    assertFormatError(() => decodeImage(concat(good, Uint8Array.of(7, 0)), PAGEMAP, 'p.img'),
      'truncated entry size', 'at byte 17');
    assertFormatError(() => decodeImage(good.subarray(0, good.length - 1), PAGEMAP, 'p.img'),
      'size says 5 bytes, only 4 follow', 'at byte 8');
  });

  void it('reports the real path when reading a damaged file', async () => {
    const path = join(dir, 'pstree.img');
    await writeFile(path, u32le(IMG_COMMON_MAGIC, 0xdeadbeef));
    await assert.rejects(readImageEntries(path, IMAGE_KINDS.pstree), (err: unknown) => {
      assert.ok(isFerryError(err, 'ERR_IMAGE_FORMAT'));
      assert.match(err.message, new RegExp(`${path.replace(/[.]/g, '\\.')}.*0xdeadbeef.*at byte 4`));
      return true;
    });
  });

  void it('writes a file that reads back, leaving no temp file', async () => {
    const path = join(dir, 'pagemap-7.img');
    await writeImageFile(path, PAGEMAP, [Uint8Array.of(0x08, 0x05)]);
    const entries = await readImageEntries(path, PAGEMAP);
    assert.deepEqual(entries.map((e) => [...e.payload]), [[0x08, 0x05]]);
    assert.equal((await readFile(path)).length, 14);
    assert.deepEqual((await readdir(dir)).filter((n) => n.includes('tmp')), []);
  });

  void it('names image files by kind', () => {
    assert.deepEqual(imageKindOf('pagemap-123.img'), { kind: 'pagemap', id: '123' });
    assert.deepEqual(imageKindOf('pagemap-shmem-9.img'), { kind: 'pagemap-shmem', id: '9' });
    assert.deepEqual(imageKindOf('pages-1.img'), { kind: 'pages', id: '1' });
    assert.deepEqual(imageKindOf('stats-dump'), { kind: 'stats-dump', id: undefined });
    assert.deepEqual(imageKindOf('netns-ct-3.img'), { kind: 'netns-ct', id: '3' });
    assert.equal(imageKindOf('dump.log'), undefined);
  });
});
