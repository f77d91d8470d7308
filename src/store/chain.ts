/**
 * Snapshot chains: a deduped snapshot names its parent (manifest.parent, and a `parent` link in
 * its directory that CRIU follows). This module finds a parent for a new snapshot, walks chains,
 * and folds parents into children (compaction) so that a chain can be shortened or a parent
 * removed without breaking anything that depends on it.
 */
import { join } from 'node:path';
import { PAGE_SIZE, PE_PARENT, PE_PRESENT, readPagemap, writePagemap, type PagemapRun } from '../criu/images/pagemap.js';
import { FerryError } from '../util/errors.js';
import type { SnapshotManifest, Tier } from './manifest.js';
import { copyPages } from './page-copy.js';
import { PAGE_INDEX, PageRuns, pagemapIdsOf, pfnOf } from './page-index.js';
import { restage } from './rewrite.js';
import type { Store, StoredSnapshot } from './store.js';

export { checkParentLink } from './parent-link.js';

/** How deep chains may grow at checkpoint time (the compaction policy applied as they are made). */
export interface ChainPolicy {
  /**
   * The most parents any snapshot may read through. forward: a new snapshot that would be
   * deeper starts a new chain (stored whole). newest-flat: the previous snapshot is not rebased
   * when that would make an older one deeper; it stays whole and starts a new segment.
   */
  maxDepth: number;
}

export const DEFAULT_POLICY: ChainPolicy = { maxDepth: 16 };

/**
 * The chain above `id`: its parent, grandparent, … (nearest first). Throws if a link is missing.
 * `all` (a listing already in hand) spares a manifest read per level.
 */
export async function ancestors(store: Store, s: StoredSnapshot, all?: StoredSnapshot[]): Promise<StoredSnapshot[]> {
  const known = new Map(all?.map((x) => [x.manifest.id, x]));
  const out: StoredSnapshot[] = [];
  const seen = new Set([s.manifest.id]);
  let cur = s;
  while (cur.manifest.parent) {
    const pid = cur.manifest.parent;
    if (seen.has(pid)) throw new FerryError('ERR_SNAPSHOT_CORRUPT', `snapshot chain of ${s.manifest.id} loops at ${pid}`);
    seen.add(pid);
    const p = known.get(pid) ?? await store.find(pid);
    if (!p) {
      throw new FerryError('ERR_SNAPSHOT_BROKEN_CHAIN', `snapshot ${cur.manifest.id} builds on ${pid}, which is not in the store`, {
        hint: `import ${pid} from where it was exported (ferry import), or restore an older complete snapshot`,
      });
    }
    if (p.manifest.tier !== cur.manifest.tier) {
      throw new FerryError('ERR_SNAPSHOT_CORRUPT', `snapshot ${cur.manifest.id} (${cur.manifest.tier} tier) builds on ${pid} in the ${p.manifest.tier} tier`);
    }
    out.push(p);
    cur = p;
  }
  return out;
}

/**
 * How many levels of snapshots build on `id` (0: none; in newest-flat chains, how deep the
 * oldest one reading through `id` is, counted from `id`).
 */
export async function dependentDepth(store: Store, id: string, all?: StoredSnapshot[]): Promise<number> {
  const snaps = all ?? await store.list();
  let level = [id], depth = 0;
  const seen = new Set(level);
  for (;;) {
    const next = snaps.filter((s) => s.manifest.parent !== undefined && level.includes(s.manifest.parent) && !seen.has(s.manifest.id)).map((s) => s.manifest.id);
    if (!next.length) return depth;
    next.forEach((n) => seen.add(n));
    level = next;
    depth++;
  }
}

/** Snapshots whose parent is `id`. */
export async function children(store: Store, id: string, all?: StoredSnapshot[]): Promise<StoredSnapshot[]> {
  return (all ?? await store.list()).filter((s) => s.manifest.parent === id);
}

/**
 * The snapshot a new checkpoint of this target should build on: the newest one of the same
 * workload (or, for a bare pid, the same pid and command line) in the same tier that has a page
 * index, if its chain is shorter than the policy allows.
 */
export async function findParent(store: Store, target: { workload: string | undefined; pid: number; command: string[] }, tier: Tier, policy = DEFAULT_POLICY, all?: StoredSnapshot[]): Promise<{ id: string; dir: string } | undefined> {
  const snaps = all ?? await store.list();
  const newest = await newestOf(store, target, tier, snaps);
  if (!newest) return undefined;
  const depth = (await ancestors(store, newest, snaps).catch(() => undefined))?.length;
  if (depth === undefined || depth + 1 > policy.maxDepth) return undefined;
  return { id: newest.manifest.id, dir: newest.dir };
}

/** The newest snapshot of this target in this tier that has a page index (a dedup partner). */
export async function newestOf(store: Store, target: { workload: string | undefined; pid: number; command: string[] }, tier: Tier, all?: StoredSnapshot[]): Promise<StoredSnapshot | undefined> {
  const same = (m: SnapshotManifest) => m.tier === tier && m.target.kind === 'process' && (target.workload !== undefined
    ? m.target.workload === target.workload
    : m.target.workload === undefined && m.target.pid === target.pid && m.target.command.join('\0') === target.command.join('\0'));
  const candidates = (all ?? await store.list()).filter((s) => same(s.manifest) && s.manifest.files[PAGE_INDEX] !== undefined);
  candidates.sort((a, b) => (a.manifest.createdAt < b.manifest.createdAt ? 1 : -1));
  return candidates[0];
}

/** Where one logical page's data lives: the snapshot (index in the chain) and byte offset in its pages file. */
export interface Resolved { level: number; offset: number; flags: number }

/** One pagemap of a snapshot in a chain: its pages image and its runs by address. */
export interface Level {
  pagesPath: string;
  runs: PageRuns;
}

/** The pagemap `id` of the snapshot in `dir` as a Level; undefined when it has none (or it is unreadable). */
export async function loadLevel(dir: string, id: number): Promise<Level | undefined> {
  const pm = await readPagemap(join(dir, `pagemap-${id}.img`)).catch(() => undefined);
  return pm && { pagesPath: join(dir, `pages-${pm.pagesId}.img`), runs: new PageRuns(pm.entries) };
}

/**
 * Follows PE_PARENT down the chain `levels` (levels[0] = the parent of the snapshot being
 * folded) to the snapshot that holds page `pfn`; undefined when none does.
 */
export function resolvePage(levels: readonly (Level | undefined)[], pfn: number): Resolved | undefined {
  for (let l = 0; l < levels.length; l++) {
    const r = levels[l]?.runs.find(pfn);
    if (!r) return undefined;
    if (r.flags & PE_PRESENT) return { level: l, offset: r.offset + (pfn - r.start) * PAGE_SIZE, flags: r.flags };
    if (!(r.flags & PE_PARENT)) return undefined;
  }
  return undefined;
}

/**
 * Folds ancestors into `s`: every page `s` takes from one of its nearest `fold` ancestors is
 * copied into `s`'s own pages image, and `s` then builds on the ancestor after them (or on
 * nothing: flat). With fold = the whole chain, `s` becomes a flat snapshot. The content is
 * unchanged, and proven so: every page of the new images is hashed and compared with the page
 * index taken at checkpoint. The new snapshot is built in a staging directory (unchanged files
 * hard-linked) and swapped in by two renames; until then the original is untouched.
 */
export async function foldInto(store: Store, s: StoredSnapshot, fold = Infinity): Promise<SnapshotManifest> {
  const chain = await ancestors(store, s);
  const n = Math.min(fold, chain.length);
  if (n === 0) return s.manifest;
  const folded = chain.slice(0, n);
  const newParent = chain[n];
  const pagemapIds = pagemapIdsOf(Object.keys(s.manifest.files));
  const manifest = await restage(s, newParent?.manifest.id, 'fold', async (stage) => {
    const rewritten = new Set<string>();
    for (const pmId of pagemapIds) {
      const pm = await readPagemap(join(s.dir, `pagemap-${pmId}.img`));
      if (!pm.entries.some((e) => e.flags & PE_PARENT)) continue;
      const pagesName = `pages-${pm.pagesId}.img`;
      await foldPagemap(s, chain, n, pmId, pm, join(stage, pagesName), join(stage, `pagemap-${pmId}.img`));
      rewritten.add(pagesName).add(`pagemap-${pmId}.img`);
    }
    return rewritten;
  }, (files, bytes) => {
    const m: SnapshotManifest = {
      ...s.manifest,
      parent: newParent?.manifest.id,
      files,
      bytes,
      compacted: [...(s.manifest.compacted ?? []), { at: new Date().toISOString(), folded: folded.map((f) => f.manifest.id) }],
    };
    if (!newParent) delete m.dedup;
    return m;
  });
  return manifest ?? s.manifest;
}

/** Writes the folded pages image and pagemap of one pagemap id of `s` into the staging paths. */
async function foldPagemap(s: StoredSnapshot, chain: StoredSnapshot[], n: number, pmId: number, pm: { pagesId: number; entries: PagemapRun[] }, pagesOut: string, pagemapOut: string): Promise<void> {
  const levels = await Promise.all(chain.map((a) => loadLevel(a.dir, pmId)));
  const out: PagemapRun[] = [];
  const own = join(s.dir, `pages-${pm.pagesId}.img`);
  copyPages(pagesOut, () => `snapshot ${s.manifest.id}: a pages image of its chain is shorter than its pagemap says`, (c) => {
    let ownOff = 0;
    for (const e of pm.entries) {
      if (e.flags & PE_PRESENT) {
        c.copy(own, ownOff, e.nrPages * PAGE_SIZE);
        ownOff += e.nrPages * PAGE_SIZE;
        out.push(e);
        continue;
      }
      if (!(e.flags & PE_PARENT)) { out.push(e); continue; }
      const pfn0 = pfnOf(e.vaddr);
      // Pages held beyond the folded ancestors stay PE_PARENT (key -1); the others are copied in
      // with the flags of the run that held them (so runs merge back as CRIU wrote them).
      let runStart = 0, runKey: number | undefined;
      const flush = (end: number) => {
        if (end > runStart && runKey !== undefined) {
          out.push({ vaddr: e.vaddr + BigInt(runStart * PAGE_SIZE), nrPages: end - runStart, flags: runKey === -1 ? PE_PARENT : runKey });
        }
      };
      // Copies are coalesced: consecutive pages from the same ancestor's consecutive bytes.
      let pend: { level: number; offset: number; bytes: number } | undefined;
      const drain = () => {
        if (!pend) return;
        c.copy(levels[pend.level]!.pagesPath, pend.offset, pend.bytes);
        pend = undefined;
      };
      for (let k = 0; k < e.nrPages; k++) {
        const r = resolvePage(levels, pfn0 + k);
        if (!r) throw new FerryError('ERR_SNAPSHOT_BROKEN_CHAIN', `snapshot ${s.manifest.id}: page ${(pfn0 + k) * PAGE_SIZE} of pagemap ${pmId} is in no ancestor`);
        const key = r.level >= n ? -1 : r.flags;
        if (key !== runKey) { drain(); flush(k); runStart = k; runKey = key; }
        if (key === -1) continue;
        if (pend && pend.level === r.level && pend.offset + pend.bytes === r.offset) pend.bytes += PAGE_SIZE;
        else { drain(); pend = { level: r.level, offset: r.offset, bytes: PAGE_SIZE }; }
      }
      drain();
      flush(e.nrPages);
    }
  });
  await writePagemap(pagemapOut, { pagesId: pm.pagesId }, mergeRuns(out));
}

/** Joins adjacent runs with the same flags (CRIU reads either form). */
export function mergeRuns(runs: PagemapRun[]): PagemapRun[] {
  const out: PagemapRun[] = [];
  for (const r of runs) {
    const last = out[out.length - 1];
    if (last && last.flags === r.flags && last.vaddr + BigInt(last.nrPages * PAGE_SIZE) === r.vaddr) last.nrPages += r.nrPages;
    else out.push({ ...r });
  }
  return out;
}
