// The receive core without tar (what a migration receiver uses): a stored snapshot's members,
// as send.ts lists them, received into another store; every refusal leaves that store empty.
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { withTempDir } from '../testing/processes.js';
import { isFerryError } from '../util/errors.js';
import { checksumDir, HASH_ALGORITHM } from './checksums.js';
import { beginReceive, beginSnapshotReceive, parseReceivedManifest } from './receive.js';
import { planSnapshot, resolveChain } from './send.js';
import { Store } from './store.js';
import { fakeManifest } from './testing-manifest.js';

async function makeSnapshot(store: Store, id: string, parent?: string, seed = 1): Promise<void> {
  const dir = join(store.tierDir('disk'), id);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'pages-1.img'), Buffer.alloc(8192, seed));
  await writeFile(join(dir, 'pagemap-1.img'), `pagemap ${id}`);
  await writeFile(join(dir, 'dump.log'), `log of ${id}\n`);
  if (parent) await symlink(`../${parent}`, join(dir, 'parent'));
  const files = await checksumDir(dir);
  // (a complete manifest: the store reads manifests through a schema, see layout.ts)
  const manifest = { ...fakeManifest(id, 'disk'), parent, createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, seed)).toISOString(), algorithm: HASH_ALGORITHM, files, bytes: 0 };
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest));
}

async function withStores(fn: (src: Store, dst: Store) => Promise<void>): Promise<void> {
  await withTempDir('receive', async (dir) => {
    const src = new Store({ root: join(dir, 'src'), memoryDir: join(dir, 'src-mem') });
    const dst = new Store({ root: join(dir, 'dst'), memoryDir: join(dir, 'dst-mem') });
    await dst.ensure('disk');
    await fn(src, dst);
  });
}

async function leftovers(store: Store): Promise<string[]> {
  return readdir(store.tierDir('disk'));
}

/** Sends snapshot `id` of `src` member by member to a receiver, with an optional edit per member. */
async function send(src: Store, dst: Store, id: string, edit: (name: string, body: Buffer) => Buffer | undefined = (_n, b) => b) {
  const s = await src.get(id);
  const members = await planSnapshot(s);
  const manifest = await readFile(join(s.dir, 'manifest.json'));
  const rx = await beginSnapshotReceive(dst, manifest);
  try {
    for (const m of members) {
      const file = m.name.slice(id.length + 1);
      if (m.type === 'directory' || file === 'manifest.json') continue;
      if (m.type === 'symlink') { await rx.addLink(file, m.linkname ?? ''); continue; }
      const body = edit(file, await readFile(m.path ?? ''));
      if (body === undefined) continue;
      // Streams and buffers both work; image files go as streams.
      if (file.endsWith('.log')) await rx.addFile(file, body, body.length);
      else { await writeFile(join(src.root, 'tmp-member'), body); await rx.addFile(file, createReadStream(join(src.root, 'tmp-member')), body.length); }
    }
    return await rx.commit();
  } catch (err) {
    await rx.abort();
    throw err;
  }
}

describe('receiving snapshots (no tar)', () => {
  it('a snapshot and then its child arrive whole, with their parent link, committed into the store', async () => {
    await withStores(async (src, dst) => {
      await makeSnapshot(src, 'base', undefined, 1);
      await makeSnapshot(src, 'tip', 'base', 2);
      assert.deepEqual((await resolveChain(src, 'tip')).map((s) => s.manifest.id), ['base', 'tip']);
      const r1 = await send(src, dst, 'base');
      assert.deepEqual([r1.snapshot, r1.imported, r1.present, r1.tier], ['base', ['base'], [], 'disk']);
      const r2 = await send(src, dst, 'tip');
      assert.deepEqual(r2.imported, ['tip']);
      const tip = await dst.get('tip');
      assert.equal(tip.manifest.parent, 'base');
      assert.deepEqual(await readFile(join(tip.dir, 'pages-1.img')), Buffer.alloc(8192, 2));
      assert.deepEqual((await leftovers(dst)).sort(), ['base', 'tip']);
    });
  });

  const refusals: [string, (name: string, body: Buffer) => Buffer | undefined, string, RegExp][] = [
    ['a file of another size', (n, b) => (n === 'pages-1.img' ? b.subarray(1) : b), 'ERR_RECEIVE_INVALID', /pages-1\.img has 8191 bytes, its manifest says 8192/],
    ['a file with other bytes', (n, b) => (n === 'pages-1.img' ? Buffer.alloc(b.length, 0xee) : b), 'ERR_RECEIVE_CORRUPT', /pages-1\.img fails its checksum/],
    ['a missing file', (n, b) => (n === 'pagemap-1.img' ? undefined : b), 'ERR_RECEIVE_CORRUPT', /pagemap-1\.img is missing/],
  ];
  for (const [what, edit, code, pattern] of refusals) {
    it(`refuses ${what}, and leaves nothing in the store`, async () => {
      await withStores(async (src, dst) => {
        await makeSnapshot(src, 'base');
        await assert.rejects(send(src, dst, 'base', edit), (e) => isFerryError(e) && e.code === code && pattern.test(e.message) && /^received snapshot rejected: /.test(e.message));
        assert.deepEqual(await leftovers(dst), []);
      });
    });
  }

  it('refuses members that are not the manifest\'s: unlisted, unsafe names, wrong links, twice, before the manifest', async () => {
    await withStores(async (_src, dst) => {
      const manifest = Buffer.from(JSON.stringify({ id: 'snap', parent: 'base', tier: 'disk', algorithm: HASH_ALGORITHM, files: { 'a.img': { size: 1, hash: '00' } } }));
      await makeSnapshot(dst, 'base');
      const rx = await beginSnapshotReceive(dst, manifest);
      const refused = async (p: Promise<void>, pattern: RegExp) => assert.rejects(p, (e) => isFerryError(e) && e.code === 'ERR_RECEIVE_INVALID' && pattern.test(e.message));
      await refused(rx.addFile('b.img', Buffer.from('x'), 1), /"snap\/b\.img" is not listed in snap\/manifest\.json/);
      await refused(rx.addFile('../escape', Buffer.from('x'), 1), /is not a plain file name/);
      await refused(rx.addFile('parent', Buffer.from('x'), 1), /must be a link/);
      await refused(rx.addLink('parent', '../other'), /the only link allowed/);
      await refused(rx.addLink('evil', '../base'), /the only link allowed/);
      await rx.addLink('parent', '../base');
      await refused(rx.addLink('parent', '../base'), /appears twice/);
      await rx.addFile('a.img', Buffer.from('x'), 1);
      await refused(rx.addFile('a.img', Buffer.from('x'), 1), /appears twice/);
      await refused(rx.setManifest(manifest), /manifest\.json" appears twice/);
      await rx.abort();
      assert.deepEqual(await leftovers(dst), ['base']);
      // A declared chain refuses an undeclared snapshot, and a member before its manifest.
      const chain = await beginReceive(dst, { chain: [{ id: 'x', parent: null }] });
      assert.throws(() => chain.snapshot('y'), (e) => isFerryError(e) && /"y" is not one it declared/.test(e.message));
      await refused(chain.snapshot('x').addFile('a.img', Buffer.from('x'), 1), /comes before x\/manifest\.json/);
      await assert.rejects(chain.commit(), (e) => isFerryError(e) && /holds no manifest for x/.test(e.message));
      assert.deepEqual(await leftovers(dst), ['base']);
    });
  });

  it('refuses a parent that is not in the store, and an id already there', async () => {
    await withStores(async (_src, dst) => {
      await makeSnapshot(dst, 'base');
      const orphan = Buffer.from(JSON.stringify({ id: 'snap', parent: 'gone', files: {} }));
      await assert.rejects(beginSnapshotReceive(dst, orphan), (e) => isFerryError(e) && e.code === 'ERR_RECEIVE_INVALID' && /builds on gone, which is neither/.test(e.message));
      const again = await readFile(join(dst.tierDir('disk'), 'base', 'manifest.json'));
      await assert.rejects(beginSnapshotReceive(dst, again), (e) => isFerryError(e) && e.code === 'ERR_SNAPSHOT_EXISTS');
      assert.deepEqual(await leftovers(dst), ['base']);
    });
  });

  it('validates manifests: id, parent, file names, sizes', () => {
    const m = (o: object) => Buffer.from(JSON.stringify(o));
    const ok = parseReceivedManifest(m({ id: 'a', files: { 'x.img': { size: 3, hash: 'ab' } } }), 'a', null);
    assert.equal(ok.files['x.img']?.size, 3);
    const bad: [object, RegExp][] = [
      [{ id: 'b', files: {} }, /belongs to another snapshot/],
      [{ id: 'a', parent: 'p', files: {} }, /names parent p, the sender none/],
      [{ id: 'a' }, /lists no files/],
      [{ id: 'a', files: { '../x': { size: 1, hash: '' } } }, /invalid file name "\.\.\/x"/],
      [{ id: 'a', files: { 'dump.log': { size: 1, hash: '' } } }, /invalid file name "dump\.log"/],
      [{ id: 'a', files: { parent: { size: 1, hash: '' } } }, /invalid file name "parent"/],
      [{ id: 'a', files: { 'x.img': { size: -1, hash: '' } } }, /invalid files\.x\.img\.size/],
      [{ id: 'a', files: { 'x.img': { size: 1.5, hash: '' } } }, /invalid files\.x\.img\.size/],
      [{ id: 'a', files: { 'x.img': { size: 1 } } }, /invalid files\.x\.img\.hash/],
    ];
    for (const [o, pattern] of bad) assert.throws(() => parseReceivedManifest(m(o), 'a', null), pattern, JSON.stringify(o));
    assert.throws(() => parseReceivedManifest(Buffer.from('{'), 'a', null), /a\/manifest\.json is not JSON/);
  });
});
