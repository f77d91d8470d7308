import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hash128, hashBlocks } from '../native/index.js';
import { BLOCK, checksumDirWithBlocks, digestOfBlocks, FollowingHasher, hashFile, verifyChecksums } from './checksums.js';
import { FerryError } from '../util/errors.js';

test('hash128 matches the XXH3-128 reference value of empty input', () => {
  // XXH3_128bits("", 0) with seed 0, canonical (big-endian) form, from xxHash's own test vectors.
  assert.equal(hash128(new Uint8Array(0)).toString('hex'), '99aa06d3014798d86001c324468d497f');
  assert.notEqual(hash128(Buffer.from('a')).toString('hex'), hash128(Buffer.from('b')).toString('hex'));
});

test('block hashes: one per 4 KiB block, a short last block, any range split gives the same hashes', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-sum-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const data = Buffer.alloc(3 * BLOCK + 100);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >> 12)) & 0xff;
  const p = join(dir, 'pages-1.img');
  await writeFile(p, data);
  const fh = await open(p, 'r');
  try {
    const all = await hashBlocks(fh.fd, 0, data.length, BLOCK);
    assert.equal(all.length, 4 * 16);
    for (let b = 0; b < 4; b++) {
      const want = hash128(data.subarray(b * BLOCK, Math.min(data.length, (b + 1) * BLOCK)));
      assert.deepEqual(all.subarray(b * 16, b * 16 + 16), want, `block ${b}`);
    }
    const tail = await hashBlocks(fh.fd, 2 * BLOCK, data.length - 2 * BLOCK, BLOCK);
    assert.deepEqual(tail, all.subarray(32));
    // The mapped path (used on huge-page tmpfs) gives the same hashes, and refuses to map past the end.
    assert.deepEqual(await hashBlocks(fh.fd, 0, data.length, BLOCK, true), all);
    assert.deepEqual(await hashBlocks(fh.fd, 2 * BLOCK, data.length - 2 * BLOCK, BLOCK, true), all.subarray(32));
    await assert.rejects(hashBlocks(fh.fd, 0, data.length + BLOCK, BLOCK, true), (e: unknown) => e instanceof FerryError && e.code === 'ERR_NATIVE_IO');
    // Reading past the end of the file is an error, not a silent short hash.
    await assert.rejects(hashBlocks(fh.fd, 0, data.length + BLOCK, BLOCK), (e: unknown) => e instanceof FerryError && e.code === 'ERR_NATIVE_IO');
  } finally {
    await fh.close();
  }
  await assert.rejects(hashBlocks(1 << 20, 0, 10, BLOCK), (e: unknown) => e instanceof FerryError && /EBADF/.test(e.message));
  const h = await hashFile(p);
  assert.equal(h.size, data.length);
  assert.equal(h.hash, digestOfBlocks(h.blocks));
});

test('a large file is hashed in parallel ranges with the same result as block by block', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-sum-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const size = (64 << 20) * 2 + 3 * BLOCK + 7; // three 64 MiB ranges, the last short
  const data = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i += 4) data.writeUInt32LE((Math.imul(i, 2654435761) >>> 0), Math.min(i, size - 4));
  const p = join(dir, 'pages-2.img');
  await writeFile(p, data);
  const h = await hashFile(p);
  const blocks = Math.ceil(size / BLOCK);
  assert.equal(h.blocks.length, blocks * 16);
  for (const b of [0, 16383, 16384, 32768, blocks - 1]) {
    assert.deepEqual(h.blocks.subarray(b * 16, b * 16 + 16), hash128(data.subarray(b * BLOCK, Math.min(size, (b + 1) * BLOCK))), `block ${b}`);
  }
});

test('verifyChecksums catches one flipped byte, a missing file and an added one', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-sum-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'core-1.img'), Buffer.alloc(300, 7));
  await writeFile(join(dir, 'pages-1.img'), Buffer.alloc(5 * BLOCK, 9));
  await writeFile(join(dir, 'dump.log'), 'not checksummed');
  const { sums, blocks } = await checksumDirWithBlocks(dir, (n) => n.startsWith('pages-'));
  assert.deepEqual(Object.keys(sums), ['core-1.img', 'pages-1.img']);
  assert.equal(blocks.get('pages-1.img')?.length, 5 * 16);
  assert.equal(blocks.has('core-1.img'), false);
  await verifyChecksums(dir, sums, 'x');
  const fh = await open(join(dir, 'pages-1.img'), 'r+');
  await fh.write(Buffer.from([8]), 0, 1, 3 * BLOCK + 17);
  await fh.close();
  await assert.rejects(verifyChecksums(dir, sums, 'x'), /pages-1\.img fails its checksum/);
  await writeFile(join(dir, 'pages-1.img'), Buffer.alloc(5 * BLOCK, 9));
  await writeFile(join(dir, 'extra.img'), 'x');
  await assert.rejects(verifyChecksums(dir, sums, 'x'), /extra\.img was added/);
  await rm(join(dir, 'extra.img'));
  await rm(join(dir, 'core-1.img'));
  await assert.rejects(verifyChecksums(dir, sums, 'x'), /core-1\.img is missing/);
  await assert.rejects(verifyChecksums(dir, sums, 'x', 'sha256'), (e: unknown) => e instanceof FerryError && e.code === 'ERR_SNAPSHOT_INCOMPATIBLE');
});

test('FollowingHasher: ranges hashed while a file grows give the same sums; a replaced file is hashed anew', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-follow-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const chunk = Buffer.alloc(16 << 20);
  const path = join(dir, 'pages-1.img');
  const follower = new FollowingHasher(dir, /^pages-\d+\.img$/, 5).start();
  const fh = await open(path, 'w');
  for (let i = 0; i < 9; i++) { // 144 MiB: two whole 64 MiB ranges and a tail
    chunk.fill(i * 7 + 1);
    await fh.write(chunk, 0, chunk.length, i * chunk.length);
    await new Promise((r) => setTimeout(r, 30));
  }
  await fh.close();
  const pre = await follower.finish();
  assert.equal(pre.get(path)?.ranges.size, 2, 'both whole ranges were hashed while the file grew');
  const fresh = await checksumDirWithBlocks(dir, () => true);
  const followed = await checksumDirWithBlocks(dir, () => true, pre);
  assert.deepEqual(followed.sums, fresh.sums);
  assert.deepEqual(followed.blocks.get('pages-1.img'), fresh.blocks.get('pages-1.img'));
  // A prehashed range of another inode (the file was replaced) must not be used.
  const bogus = new Map([[path, { ino: -1, ranges: new Map([[0, Buffer.alloc(16 * 16384)]]) }]]);
  assert.deepEqual((await checksumDirWithBlocks(dir, () => true, bogus)).sums, fresh.sums);
  // Nor a range whose inode matches but that holds other data would go unnoticed by a later verify:
  // the sums are over what was hashed, so corrupting `pre` changes the result (the test can fail).
  const tampered = new Map([[path, { ino: pre.get(path)!.ino, ranges: new Map([[0, Buffer.alloc(16 * 16384)]]) }]]);
  assert.notDeepEqual((await checksumDirWithBlocks(dir, () => true, tampered)).sums, fresh.sums);
});
