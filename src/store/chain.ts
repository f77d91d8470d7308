/**
 * Snapshot chains: a deduped snapshot names its parent (manifest.parent, and a `parent` link in
 * its directory that CRIU follows). This module finds a parent for a new snapshot, walks chains,
 * and folds parents into children (compaction) so that a chain can be shortened or a parent
 * removed without breaking anything that depends on it.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { PAGE_SIZE, PE_PARENT, PE_PRESENT, readPagemap, writePagemap, type PagemapRun } from '../criu/images/pagemap.js';
import { FerryError } from '../util/errors.js';
import { PARENT_LINK, restage, writeAll } from './dedup.js';
import type { SnapshotManifest, Tier } from './manifest.js';
import type { Store, StoredSnapshot } from './store.js';

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
  const candidates = (all ?? await store.list()).filter((s) => same(s.manifest) && s.manifest.files['ferry-pages.idx'] !== undefined);
  candidates.sort((a, b) => (a.manifest.createdAt < b.manifest.createdAt ? 1 : -1));
  return candidates[0];
}

/** Where one logical page's data lives: the snapshot (index in the chain) and byte offset in its pages file. */
interface Resolved { level: number; offset: number; flags: number }

/** A pagemap's runs with their pages-file offsets, sorted by address. */
interface Level {
  pagesPath: string;
  runs: { start: number; end: number; flags: number; offset: number }[];
}

async function loadLevel(dir: string, id: number): Promise<Level | undefined> {
  let pm;
  try {
    pm = await readPagemap(join(dir, `pagemap-${id}.img`));
  } catch {
    return undefined;
  }
  const runs: Level['runs'] = [];
  let offset = 0;
  for (const e of pm.entries) {
    const start = Number(e.vaddr / BigInt(PAGE_SIZE));
    runs.push({ start, end: start + e.nrPages, flags: e.flags, offset: e.flags & PE_PRESENT ? offset : -1 });
    if (e.flags & PE_PRESENT) offset += e.nrPages * PAGE_SIZE;
  }
  runs.sort((a, b) => a.start - b.start);
  return { pagesPath: join(dir, `pages-${pm.pagesId}.img`), runs };
}

function findRun(level: Level, pfn: number) {
  let lo = 0, hi = level.runs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const r = level.runs[mid]!;
    if (pfn < r.start) hi = mid - 1;
    else if (pfn >= r.end) lo = mid + 1;
    else return r;
  }
  return undefined;
}

/** Follows PE_PARENT down the chain `levels` (levels[0] = the parent of the snapshot being folded). */
function resolve(levels: (Level | undefined)[], pfn: number, from = 0): Resolved | undefined {
  for (let l = from; l < levels.length; l++) {
    const lv = levels[l];
    if (!lv) return undefined;
    const r = findRun(lv, pfn);
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
  const pagemapIds = Object.keys(s.manifest.files).map((f) => /^pagemap-(\d+)\.img$/.exec(f)).filter((m) => m !== null).map((m) => Number(m[1]));
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
  // Synchronous I/O through one 4 MiB buffer: a chain has thousands of short runs per level, and
  // an await per run costs more than its copy (tmpfs).
  const fds = new Map<number, number>();
  const own = openSync(join(s.dir, `pages-${pm.pagesId}.img`), 'r');
  const dst = openSync(pagesOut, 'wx', 0o600);
  const buf = Buffer.allocUnsafe(4 << 20);
  let fill = 0;
  const copy = (fd: number, off: number, bytes: number) => {
    while (bytes > 0) {
      if (fill === buf.length) { writeAll(dst, buf, fill); fill = 0; }
      const got = readSync(fd, buf, fill, Math.min(buf.length - fill, bytes), off);
      if (got === 0) throw new FerryError('ERR_SNAPSHOT_CORRUPT', `snapshot ${s.manifest.id}: a pages image of its chain is shorter than its pagemap says`);
      fill += got; off += got; bytes -= got;
    }
  };
  try {
    let ownOff = 0;
    for (const e of pm.entries) {
      if (e.flags & PE_PRESENT) {
        copy(own, ownOff, e.nrPages * PAGE_SIZE);
        ownOff += e.nrPages * PAGE_SIZE;
        out.push(e);
        continue;
      }
      if (!(e.flags & PE_PARENT)) { out.push(e); continue; }
      const pfn0 = Number(e.vaddr / BigInt(PAGE_SIZE));
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
        let fd = fds.get(pend.level);
        if (fd === undefined) { fd = openSync(levels[pend.level]!.pagesPath, 'r'); fds.set(pend.level, fd); }
        copy(fd, pend.offset, pend.bytes);
        pend = undefined;
      };
      for (let k = 0; k < e.nrPages; k++) {
        const r = resolve(levels, pfn0 + k);
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
    writeAll(dst, buf, fill);
  } finally {
    closeSync(own);
    closeSync(dst);
    for (const fd of fds.values()) closeSync(fd);
  }
  await writePagemap(pagemapOut, { pagesId: pm.pagesId }, mergeRuns(out));
}

/** Joins adjacent runs with the same flags (CRIU reads either form). */
function mergeRuns(runs: PagemapRun[]): PagemapRun[] {
  const out: PagemapRun[] = [];
  for (const r of runs) {
    const last = out[out.length - 1];
    if (last && last.flags === r.flags && last.vaddr + BigInt(last.nrPages * PAGE_SIZE) === r.vaddr) last.nrPages += r.nrPages;
    else out.push({ ...r });
  }
  return out;
}

/** Checks that a snapshot's `parent` link matches its manifest (a tampered link is refused). */
export async function checkParentLink(s: StoredSnapshot): Promise<void> {
  let target: string | undefined;
  try {
    target = await readlink(join(s.dir, PARENT_LINK));
  } catch {
    target = undefined;
  }
  const want = s.manifest.parent === undefined ? undefined : `../${s.manifest.parent}`;
  if (target !== want) {
    throw new FerryError('ERR_SNAPSHOT_CORRUPT', `snapshot ${s.manifest.id} is damaged: its parent link is ${target ?? 'missing'}, expected ${want ?? 'none'}`, {
      hint: 'restore another snapshot, or take a new one',
    });
  }
}
