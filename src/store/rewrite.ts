/**
 * Rewriting a committed snapshot's pagemaps and pages images (dedup, rebase, fold) without ever
 * leaving it broken: the new files are built in a staging directory beside it, every page they
 * hold is checked against the page index taken at checkpoint, and the result is swapped in by
 * two renames. The old copy is freed in the background.
 */
import { spawn } from 'node:child_process';
import { link, mkdir, readdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { readPagemap } from '../criu/images/pagemap.js';
import { FerryError } from '../util/errors.js';
import { BLOCK, checksumDirWithBlocks, type FileSums } from './checksums.js';
import type { SnapshotManifest } from './manifest.js';
import { copyPages } from './page-copy.js';
import { indexMismatch, readIndex, type PagemapDiff } from './page-index.js';
import { PARENT_LINK, parentLinkTarget } from './parent-link.js';

/** Copies the kept page ranges (`keep`, in pages of `from`) of a pages image into a new file `to`. */
export function copyKept(from: string, to: string, keep: PagemapDiff['keep']): void {
  copyPages(to, (p) => `${p} is shorter than its pagemap says`, (c) => {
    for (const r of keep) c.copy(from, r.from * BLOCK, r.pages * BLOCK);
  });
}

/**
 * Rewrites a committed snapshot without ever leaving it broken: `rewrite(stage)` writes the new
 * pagemap and pages images into a staging directory beside it and returns their names
 * (undefined: nothing to do); every other file is hard-linked, `parent` points at `parentId`,
 * every page the new pages images hold is re-hashed and checked against the page index taken at
 * checkpoint, and `manifestOf` gives the new manifest. Then swapIn. Until then the original is
 * untouched; on any failure it stays as it was.
 */
export async function restage(s: { manifest: SnapshotManifest; dir: string }, parentId: string | undefined, why: string,
  rewrite: (stage: string) => Promise<Set<string> | undefined>, manifestOf: (files: FileSums, bytes: number) => SnapshotManifest): Promise<SnapshotManifest | undefined> {
  const stage = join(s.dir, '..', `.fold-${s.manifest.id}-${Date.now()}`);
  await mkdir(stage, { mode: 0o700 });
  try {
    const rewritten = await rewrite(stage);
    if (!rewritten) return undefined;
    for (const name of await readdir(s.dir)) {
      if (rewritten.has(name) || name === PARENT_LINK || name === 'manifest.json') continue;
      await link(join(s.dir, name), join(stage, name));
    }
    if (parentId !== undefined) await symlink(parentLinkTarget(parentId), join(stage, PARENT_LINK));
    const { sums, blocks } = await checksumDirWithBlocks(stage, (f) => rewritten.has(f) && f.startsWith('pages-'));
    await checkAgainstIndex(stage, blocks, s.manifest.id);
    const manifest = manifestOf(sums, Object.values(sums).reduce((a, f) => a + f.size, 0));
    await swapIn(stage, s.dir, manifest, why);
    return manifest;
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}

/**
 * Proves a rewritten snapshot holds the pages it held at checkpoint: every page now in the
 * pages images of `blocksByFile` must hash to the page index's entry for that address.
 */
export async function checkAgainstIndex(dir: string, blocksByFile: Map<string, Buffer>, id: string): Promise<void> {
  const index = await readIndex(dir);
  if (!index) throw new FerryError('ERR_SNAPSHOT_CORRUPT', `snapshot ${id} has no page index`);
  for (const [pmId, logical] of index) {
    const pm = await readPagemap(join(dir, `pagemap-${pmId}.img`));
    const blocks = blocksByFile.get(`pages-${pm.pagesId}.img`);
    if (!blocks) continue; // not rewritten
    const bad = indexMismatch(pm.entries, logical, blocks);
    if (bad && 'vaddr' in bad) {
      throw new FerryError('ERR_SNAPSHOT_CORRUPT', `snapshot ${id}: page ${bad.vaddr} does not match its page index after a rewrite`, {
        hint: 'the snapshot was left as it was; its chain may be damaged — verify it with `ferry restore`',
      });
    }
    if (bad) throw new FerryError('ERR_SNAPSHOT_CORRUPT', `snapshot ${id}: pages image and pagemap disagree after a rewrite`);
  }
}

/**
 * Replaces a snapshot directory by its rewritten copy in `stage` (same tier directory): writes
 * the manifest last, then two renames; if the second fails the original is put back. The old
 * directory is freed in the background.
 */
export async function swapIn(stage: string, dir: string, manifest: SnapshotManifest, why: string): Promise<void> {
  await writeFile(join(stage, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n', { mode: 0o600 });
  const old = join(dir, '..', `.rm-${basename(dir)}-${why}-${Date.now()}`);
  await rename(dir, old);
  try {
    await rename(stage, dir);
  } catch (err) {
    await rename(old, dir); // put the original back
    throw err;
  }
  discardInBackground(old);
}

/**
 * Moves a file out of a snapshot directory under a `.rm-` name beside it and frees it in the
 * background (the whole pages image leaves the snapshot at once).
 */
export async function discardFile(dir: string, name: string): Promise<void> {
  const doomed = join(dir, '..', `.rm-${basename(dir)}-${name}`);
  await rename(join(dir, name), doomed);
  discardInBackground(doomed);
}

/**
 * Removes an obsolete copy (a `.rm-*` directory or file) in a detached `rm -rf`, so that freeing
 * its pages (≈ 150 ms per GiB of tmpfs) does not delay the command; `ferry snapshots gc` sweeps
 * any that an interrupted rm left behind.
 */
export function discardInBackground(path: string): void {
  try {
    spawn('rm', ['-rf', '--', path], { detached: true, stdio: 'ignore' }).unref();
  } catch {
    // gc sweeps it later
  }
}
