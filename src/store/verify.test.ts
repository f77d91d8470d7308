import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, open, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FerryError } from '../util/errors.js';
import { checksumDir, HASH_ALGORITHM } from './checksums.js';
import { verifyForRestore, type VerifiableSnapshot } from './verify.js';

/** A synthetic snapshot directory: a few small "images" and a pages image of `pagesBytes`. */
async function snapshot(root: string, id: string, pagesBytes: number, extraPages: string[] = []): Promise<VerifiableSnapshot> {
  const dir = join(root, id);
  await mkdir(dir);
  await writeFile(join(dir, 'inventory.img'), `inventory of ${id}`);
  await writeFile(join(dir, 'core-1.img'), Buffer.alloc(5000, id.length));
  await writeFile(join(dir, 'pagemap-1.img'), `pagemap ${id}`);
  await writeFile(join(dir, 'manifest.json'), '{}');
  await writeFile(join(dir, 'dump.log'), 'a log is not an image');
  for (const name of ['pages-1.img', ...extraPages]) {
    const data = Buffer.allocUnsafe(pagesBytes);
    for (let i = 0; i < pagesBytes; i += 4) data.writeUInt32LE(Math.imul(i + id.length, 2654435761) >>> 0, Math.min(i, pagesBytes - 4));
    await writeFile(join(dir, name), data);
  }
  return { dir, manifest: { id, files: await checksumDir(dir), algorithm: HASH_ALGORITHM } };
}

async function flipByte(path: string, at: number): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, at);
    b[0] = b[0]! ^ 0x01;
    await fh.write(b, 0, 1, at);
  } finally {
    await fh.close();
  }
}

const corrupt = (pattern: RegExp) => (e: unknown) => e instanceof FerryError && e.code === 'ERR_SNAPSHOT_DAMAGED' && pattern.test(e.message);

async function tmp(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'ferry-verify-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  return root;
}

test('an intact chain: both phases resolve and report their times', async (t) => {
  const root = await tmp(t);
  const chain = [await snapshot(root, 'child', 3 << 20), await snapshot(root, 'parent', 1 << 20)];
  const v = verifyForRestore(chain);
  await v.small;
  await v.pages;
  assert.ok(v.timings.smallMs !== undefined && v.timings.pagesMs !== undefined);
  v.cancel(); // a no-op once done
  await v.pages;
});

test('one flipped byte in a pages image: the small images pass, the pages phase names the file and the snapshot', async (t) => {
  const root = await tmp(t);
  // (a damaged pages image never fails the small phase, whichever finishes first)
  const s = await snapshot(root, 'snap-a', 3 << 20);
  await flipByte(join(s.dir, 'pages-1.img'), (2 << 20) + 17);
  const v = verifyForRestore([s]);
  await v.small;
  await assert.rejects(v.pages, corrupt(/^snapshot snap-a is damaged: pages-1\.img fails its checksum/));
  const criuSaid = new FerryError('ERR_NOTIFY_HANDLER', 'the post-restore handler failed');
  assert.equal(v.explain(criuSaid), criuSaid, 'not the reason until post-restore was answered with it');
  await assert.rejects(v.postRestore(), corrupt(/pages-1\.img/));
  // The restore reports the damaged file, not the CRIU error it caused.
  const shown = v.explain(criuSaid);
  assert.ok(shown instanceof FerryError && shown.code === 'ERR_SNAPSHOT_DAMAGED' && /pages-1\.img/.test(shown.message));
});

test('a flipped byte in an image CRIU parses fails the small phase, before CRIU would start, and stops the pages phase', async (t) => {
  const root = await tmp(t);
  const s = await snapshot(root, 'snap-b', 128 << 20);
  await flipByte(join(s.dir, 'core-1.img'), 100);
  const v = verifyForRestore([s], { parallel: 1 });
  await assert.rejects(v.small, corrupt(/^snapshot snap-b is damaged: core-1\.img fails its checksum/));
  // The pages phase is stopped (unless it had already finished: a busy machine may order them
  // either way); the answer to CRIU is a refusal naming the damaged file whichever happened.
  await v.pages.then(() => undefined, (e: unknown) => assert.match(String((e as Error).message), /core-1\.img/));
  await assert.rejects(v.postRestore(), corrupt(/core-1\.img/));
});

test('a truncated, missing or added file is refused by the small phase without hashing the pages', async (t) => {
  const root = await tmp(t);
  const a = await snapshot(root, 'short', 1 << 20);
  await truncate(join(a.dir, 'pages-1.img'), (1 << 20) - 4096);
  await assert.rejects(verifyForRestore([a]).small, corrupt(/pages-1\.img has 1044480 bytes, expected 1048576/));
  const b = await snapshot(root, 'gone', 1 << 20);
  await unlink(join(b.dir, 'pages-1.img'));
  await assert.rejects(verifyForRestore([b]).small, corrupt(/pages-1\.img is missing/));
  const c = await snapshot(root, 'added', 4096);
  await writeFile(join(c.dir, 'pages-9.img'), 'x');
  await assert.rejects(verifyForRestore([c]).small, corrupt(/pages-9\.img was added after the checkpoint/));
});

test('a chain: a damaged pages image of the parent is named with the parent\'s id', async (t) => {
  const root = await tmp(t);
  const child = await snapshot(root, 'child', 2 << 20);
  const parent = await snapshot(root, 'parent', 1 << 20);
  await flipByte(join(parent.dir, 'pages-1.img'), 4096 * 7);
  const v = verifyForRestore([child, parent]);
  await v.small;
  await assert.rejects(v.pages, corrupt(/^snapshot parent is damaged: pages-1\.img fails its checksum/));
});

test('a snapshot checksummed with an older algorithm is refused as incompatible', async (t) => {
  const root = await tmp(t);
  const s = await snapshot(root, 'old', 4096);
  const { algorithm: _, ...rest } = s.manifest;
  await assert.rejects(verifyForRestore([{ dir: s.dir, manifest: rest }]).small, (e: unknown) => e instanceof FerryError && e.code === 'ERR_SNAPSHOT_INCOMPATIBLE');
});

test('a pages image that cannot be read when its turn comes fails with its name (no wait)', async (t) => {
  const root = await tmp(t);
  // The first pages image takes a while to hash; the second disappears meanwhile.
  const s = await snapshot(root, 'vanish', 160 << 20, ['pages-2.img']);
  const v = verifyForRestore([s], { parallel: 1 });
  await v.small;
  await rm(join(s.dir, 'pages-2.img'));
  await assert.rejects(v.pages, corrupt(/^snapshot vanish is damaged: pages-2\.img cannot be read/));
});

test('the watchdog: a phase that cannot finish in time fails with ERR_VERIFY_TIMEOUT', async (t) => {
  const root = await tmp(t);
  const s = await snapshot(root, 'slow', 128 << 20);
  const v = verifyForRestore([s], { timeoutMs: 1, parallel: 1 });
  // (whichever phase runs out first stops the other with its error)
  const timedOut = (e: unknown) => e instanceof FerryError && e.code === 'ERR_VERIFY_TIMEOUT' && /^verifying the (small|pages) images did not finish within 1 ms$/.test(e.message);
  await assert.rejects(v.pages, timedOut);
});

test('cancel: a restore that ended early stops the hashing; its own error is kept', async (t) => {
  const root = await tmp(t);
  const s = await snapshot(root, 'cancelled', 128 << 20);
  const v = verifyForRestore([s], { parallel: 1 });
  v.cancel();
  await assert.rejects(v.pages, (e: unknown) => e instanceof FerryError && e.code === 'ERR_VERIFY_CANCELLED');
  const own = new Error('CRIU failed before post-restore');
  assert.equal(v.explain(own), own);
});
