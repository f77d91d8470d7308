/**
 * The "need" side of an incremental transfer: from a flat dump (CRIU's image directory) and what
 * the destination holds (a HaveSet, pages-have.ts), the image set to send — a CRIU-native child
 * of the destination's snapshot. Pages whose content equals the destination's page at the same
 * address become PE_PARENT runs (CRIU reads them from the `parent` the destination links, at
 * restore, itself); only the others stay in the pages images. Every other image file is sent as
 * it is, and the full page index (every logical page's hash) goes with it, so the destination's
 * snapshot can be the base of the next round.
 *
 * Nothing in the dump is changed: the set is built in a staging directory beside it (same file
 * system), unchanged files hard-linked, rewritten pagemaps and pages images written anew.
 */
import { link, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PE_PRESENT, readPagemap, writePagemap, type PagemapRun } from '../criu/images/pagemap.js';
import { BLOCK, checksumDirWithBlocks, digestOfBlocks, hashFile, type FileSums, type Prehashed } from '../store/checksums.js';
import { diffPagemap, encodeIndex, logicalHashes, PAGE_INDEX, pagemapIdsOf, totalPages, type IndexSection } from '../store/page-index.js';
import { copyKept } from '../store/rewrite.js';
import type { HaveSection, HaveSet } from './pages-have.js';

/** Files of a dump that never travel: the store's own and CRIU's logs. */
const NOT_SENT = /^(manifest\.json|parent|.*\.log)$/;

export interface Delta {
  /** The staging directory holding the set (remove it with `dispose`). */
  dir: string;
  /** The files to send, with their sizes and hashes (the wire checks them end to end). */
  files: FileSums;
  /** The destination snapshot the set builds on, if any (else it is flat). */
  parent: string | undefined;
  /** Bytes of the files to send. */
  bytes: number;
  /** Bytes of the same dump sent flat. */
  flatBytes: number;
  /** Pages in the dump's pages images. */
  pages: number;
  /** Of those, pages the destination holds at the same address (not sent). */
  inParent: number;
  /** What the destination holds once the set is in (the base of the next round). */
  have: Map<number, HaveSection>;
  ms: number;
  dispose(): Promise<void>;
}

/**
 * Builds the set to send for the flat dump in `dumpDir` against `have` (undefined: a flat set,
 * the first transfer). `stage` must not exist and must be on `dumpDir`'s file system. `pre`: the
 * pages images' ranges hashed while CRIU wrote them (only the rest is hashed here).
 */
export async function buildDelta(dumpDir: string, stage: string, have: HaveSet | undefined, pre?: Prehashed): Promise<Delta> {
  const started = Date.now();
  await mkdir(stage, { mode: 0o700 });
  const dispose = () => rm(stage, { recursive: true, force: true });
  try {
    const names = (await readdir(dumpDir)).filter((n) => !NOT_SENT.test(n) && n !== PAGE_INDEX);
    const pagemaps = new Map<number, { entries: PagemapRun[]; pagesId: number }>();
    for (const id of pagemapIdsOf(names)) pagemaps.set(id, await readPagemap(join(dumpDir, `pagemap-${id}.img`)));
    const pagesFiles = new Set([...pagemaps.values()].map((p) => `pages-${p.pagesId}.img`));
    const { sums, blocks } = await checksumDirWithBlocks(dumpDir, (n) => pagesFiles.has(n), pre);
    const flatBytes = Object.entries(sums).filter(([n]) => !NOT_SENT.test(n) && n !== PAGE_INDEX).reduce((a, [, f]) => a + f.size, 0);
    const rewritten = new Set<string>();
    const sections: IndexSection[] = [];
    const next = new Map<number, HaveSection>();
    let pages = 0, inParent = 0;
    for (const [id, pm] of pagemaps) {
      const pagesName = `pages-${pm.pagesId}.img`;
      const logical = logicalHashes(pm.entries, blocks.get(pagesName) ?? Buffer.alloc(0));
      sections.push({ id, hashes: logical });
      next.set(id, { entries: pm.entries, hashes: logical });
      pages += totalPages(pm.entries.filter((e) => e.flags & PE_PRESENT));
      const base = have?.sections.get(id);
      const d = base ? diffPagemap(pm.entries, logical, base.entries, base.hashes) : undefined;
      if (!d) continue;
      inParent += d.inParent;
      copyKept(join(dumpDir, pagesName), join(stage, pagesName), d.keep);
      await writePagemap(join(stage, `pagemap-${id}.img`), { pagesId: pm.pagesId }, d.out);
      sums[pagesName] = { size: d.kept.length / 16 * BLOCK, hash: digestOfBlocks(d.kept) };
      const h = await hashFile(join(stage, `pagemap-${id}.img`));
      sums[`pagemap-${id}.img`] = { size: h.size, hash: h.hash };
      rewritten.add(pagesName).add(`pagemap-${id}.img`);
    }
    for (const n of names) {
      if (!rewritten.has(n) && sums[n]) await link(join(dumpDir, n), join(stage, n));
    }
    const index = encodeIndex(sections);
    await writeFile(join(stage, PAGE_INDEX), index, { mode: 0o600 });
    const files: FileSums = {};
    for (const n of [...names.filter((x) => sums[x]), PAGE_INDEX].sort()) {
      files[n] = n === PAGE_INDEX ? { size: index.length, hash: (await hashFile(join(stage, PAGE_INDEX))).hash } : sums[n]!;
    }
    const parent = have && inParent > 0 ? have.base : undefined;
    return {
      dir: stage, files, parent, bytes: Object.values(files).reduce((a, f) => a + f.size, 0), flatBytes,
      pages, inParent, have: next, ms: Date.now() - started, dispose,
    };
  } catch (err) {
    await dispose().catch(() => undefined);
    throw err;
  }
}
