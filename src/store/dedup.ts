/**
 * Content-addressed page dedup into CRIU-native image chains: what a checkpoint does with a
 * fresh dump (storeImages) and the "newest stays flat" rebase of the previous snapshot.
 *
 * CRIU dumps every page (no soft-dirty here, so no incremental dump). Afterwards ferry hashes
 * each 4 KiB page (the same pass that checksums the images) and compares it with the hash of
 * the page at the same virtual address in the parent snapshot, read from the parent's page
 * index (page-index.ts). Runs of unchanged pages become PE_PARENT pagemap entries, only changed
 * pages stay in the pages image, and a relative `parent -> ../<parentId>` link lets CRIU itself
 * read the rest from the parent at restore (criu/pagemap.c follows `parent` for PE_PARENT runs,
 * recursively). No reassembly step. The staged rewrite itself is rewrite.ts.
 */
import { rename, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readPagemap, writePagemap, type PagemapRun } from '../criu/images/pagemap.js';
import { BLOCK, checksumDirWithBlocks, digestOfBlocks, hashFile, type FileSums, type Prehashed } from './checksums.js';
import type { SnapshotManifest } from './manifest.js';
import { diffPagemap, encodeIndex, logicalHashes, PAGE_INDEX, pagemapIds, readIndex, type IndexSection } from './page-index.js';
import { PARENT_LINK, parentLinkTarget } from './parent-link.js';
import { copyKept, discardFile, restage } from './rewrite.js';

export interface DedupStats {
  parent: string;
  /** Pages the dump held. */
  pages: number;
  /** Of those, pages now read from the parent chain. */
  inParent: number;
  /** Bytes no longer stored in this snapshot. */
  savedBytes: number;
  ms: number;
}

export interface StoreImagesResult {
  files: FileSums;
  /** Bytes of a flat snapshot with the same content (what restoring materialises). */
  logicalBytes: number;
  dedup: DedupStats | undefined;
  /** Time spent hashing and rewriting, in ms. */
  ms: number;
}

/**
 * Checksums a freshly dumped snapshot directory and writes its page index; when `parent` is
 * given (a committed snapshot in the same tier directory, with a page index), also rewrites its
 * pagemaps and pages images so that unchanged pages come from the parent ("forward" chains).
 * Returns the final per-file checksums.
 */
export async function storeImages(dir: string, parent?: { id: string; dir: string }, pre?: Prehashed): Promise<StoreImagesResult> {
  const started = Date.now();
  const ids = await pagemapIds(dir);
  const pagemaps = new Map<number, { entries: PagemapRun[]; pagesId: number }>();
  for (const id of ids) pagemaps.set(id, await readPagemap(join(dir, `pagemap-${id}.img`)));
  const pagesFiles = new Set([...pagemaps.values()].map((p) => `pages-${p.pagesId}.img`));
  const { sums, blocks } = await checksumDirWithBlocks(dir, (n) => pagesFiles.has(n), pre);
  const logicalBytes = Object.values(sums).reduce((a, f) => a + f.size, 0);

  const parentIndex = parent ? await readIndex(parent.dir) : undefined;
  const sections: IndexSection[] = [];
  let pages = 0, inParent = 0, savedBytes = 0;
  for (const [id, pm] of pagemaps) {
    const pagesName = `pages-${pm.pagesId}.img`;
    const logical = logicalHashes(pm.entries, blocks.get(pagesName) ?? Buffer.alloc(0));
    sections.push({ id, hashes: logical });
    const ph = parentIndex?.get(id);
    if (!parent || !ph) continue;
    const parentMap = await readPagemap(join(parent.dir, `pagemap-${id}.img`)).catch(() => undefined);
    if (!parentMap) continue;
    const d = diffPagemap(pm.entries, logical, parentMap.entries, ph);
    if (!d) continue;
    pages += d.pages;
    inParent += d.inParent;
    const oldPath = join(dir, pagesName);
    copyKept(oldPath, `${oldPath}.dedup`, d.keep);
    await discardFile(dir, pagesName);
    await rename(`${oldPath}.dedup`, oldPath);
    await writePagemap(join(dir, `pagemap-${id}.img`), { pagesId: pm.pagesId }, d.out);
    const before = sums[pagesName]!.size;
    sums[pagesName] = { size: d.kept.length / 16 * BLOCK, hash: digestOfBlocks(d.kept) };
    savedBytes += before - sums[pagesName].size;
    const pmFile = `pagemap-${id}.img`;
    const h = await hashFile(join(dir, pmFile));
    sums[pmFile] = { size: h.size, hash: h.hash };
  }
  const index = encodeIndex(sections);
  await writeFile(join(dir, PAGE_INDEX), index, { mode: 0o600 });
  sums[PAGE_INDEX] = { size: index.length, hash: (await hashFile(join(dir, PAGE_INDEX))).hash };
  let dedup: DedupStats | undefined;
  if (parent && inParent > 0) {
    await symlink(parentLinkTarget(parent.id), join(dir, PARENT_LINK));
    dedup = { parent: parent.id, pages, inParent, savedBytes, ms: 0 };
  }
  const ms = Date.now() - started;
  if (dedup) dedup.ms = ms;
  return { files: sorted(sums), logicalBytes, dedup, ms };
}

/**
 * "Newest stays flat" chains: rewrites `older` (a flat snapshot) so that its pages equal to
 * `newer`'s pages at the same addresses are read from `newer` (PE_PARENT, `parent -> ../newer`).
 * The newest snapshot — the one restored after a crash or migrated — stays whole and restores at
 * full speed; an older one reads its unchanged pages through the chain of its successors.
 * Built in a staging directory (unchanged files hard-linked), checked against the page index,
 * then swapped in by two renames: `older` stays intact until then. Returns the new manifest,
 * or undefined when nothing could be shared.
 */
export async function rebaseOnto(older: { manifest: SnapshotManifest; dir: string }, newer: { manifest: SnapshotManifest; dir: string }): Promise<SnapshotManifest | undefined> {
  const started = Date.now();
  if (older.manifest.parent !== undefined) return undefined;
  const [olderIndex, newerIndex] = await Promise.all([readIndex(older.dir), readIndex(newer.dir)]);
  if (!olderIndex || !newerIndex) return undefined;
  let pages = 0, inParent = 0;
  return restage(older, newer.manifest.id, 'rebase', async (stage) => {
    const rewritten = new Set<string>();
    for (const [pmId, logical] of olderIndex) {
      const nh = newerIndex.get(pmId);
      if (!nh) continue;
      const pm = await readPagemap(join(older.dir, `pagemap-${pmId}.img`));
      const nm = await readPagemap(join(newer.dir, `pagemap-${pmId}.img`)).catch(() => undefined);
      if (!nm) continue;
      const d = diffPagemap(pm.entries, logical, nm.entries, nh);
      if (!d) continue;
      const pagesName = `pages-${pm.pagesId}.img`;
      copyKept(join(older.dir, pagesName), join(stage, pagesName), d.keep);
      await writePagemap(join(stage, `pagemap-${pmId}.img`), { pagesId: pm.pagesId }, d.out);
      rewritten.add(pagesName).add(`pagemap-${pmId}.img`);
      pages += d.pages;
      inParent += d.inParent;
    }
    return inParent === 0 ? undefined : rewritten;
  }, (files, bytes) => ({
    ...older.manifest,
    parent: newer.manifest.id,
    files,
    bytes,
    logicalBytes: older.manifest.logicalBytes ?? older.manifest.bytes,
    dedup: { parent: newer.manifest.id, pages, inParent, savedBytes: older.manifest.bytes - bytes, ms: Date.now() - started },
  }));
}

function sorted(sums: FileSums): FileSums {
  return Object.fromEntries(Object.entries(sums).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
