/**
 * Removing snapshots without breaking chains, retention policies, and the garbage collector.
 */
import { lstat, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError, isFerryError } from '../util/errors.js';
import { storedBytes } from './budget.js';
import { ancestors, children, foldInto } from './chain.js';
import { readStoreConfig } from './config.js';
import { BACK_POINTER_FILE, MANIFEST_FILE, STORE_FILE, readBackPointer, readIdentity } from './layout.js';
import type { SnapshotManifest } from './manifest.js';
import { DEFAULT_LOGS_KEEP, DEFAULT_LOGS_MAX_AGE_MS, sweepLogs } from './log-retention.js';

export { DEFAULT_LOGS_KEEP, DEFAULT_LOGS_MAX_AGE_MS, sweepLogs };
import type { DamagedSnapshot, Leftover, Store, StoredSnapshot } from './store.js';

/** Leftovers no intent record explains are swept once unchanged this long (`gc --stale-after`). */
export const DEFAULT_STALE_AFTER_MS = 10 * 60_000;

export interface RemoveResult {
  removed: string;
  /** Children that took over the removed snapshot's pages (they now build on its parent). */
  compacted: string[];
}

/**
 * Removes a snapshot. Snapshots that build on it first fold its pages into themselves, so
 * nothing that depended on it breaks; if a fold fails, nothing is removed.
 */
export async function removeSnapshot(store: Store, id: string, all?: StoredSnapshot[]): Promise<RemoveResult> {
  let s: StoredSnapshot;
  try {
    s = await store.get(id);
  } catch (err) {
    if (!isFerryError(err, 'ERR_SNAPSHOT_CORRUPT')) throw err;
    // A damaged snapshot's pages cannot be folded into anything; removing it is fine unless
    // others read through it (they would break silently: refuse, naming them).
    const kids = (all ?? await store.list()).filter((k) => k.manifest.parent === id).map((k) => k.manifest.id);
    if (kids.length) {
      throw new FerryError('ERR_SNAPSHOT_CORRUPT', `${err.message}; ${kids.join(', ')} build${kids.length === 1 ? 's' : ''} on it`, {
        cause: err, hint: `they cannot be restored without it either; remove them first (\`ferry snapshots rm ${kids[0]!}\`), then ${id}`,
      });
    }
    await store.remove(id);
    return { removed: id, compacted: [] };
  }
  const kids = await children(store, s.manifest.id, all);
  const compacted: string[] = [];
  for (const k of kids) {
    await foldInto(store, k, 1);
    compacted.push(k.manifest.id);
  }
  await store.remove(s.manifest.id);
  return { removed: s.manifest.id, compacted };
}

export interface RetentionPolicy {
  /** Keep the newest N snapshots of each workload. */
  keepLast?: number;
  /** Also keep the newest snapshot of each interval of this many ms (per workload). */
  keepEveryMs?: number;
  /** Fold chains deeper than this (restore reads every level). */
  maxDepth?: number;
  /** Make snapshots older than this many ms flat (fold their whole chain into them). */
  flattenOlderThanMs?: number;
  /** Leftovers no intent record explains (.tmp-*, .rm-*, .fold-*) unchanged this long are swept. */
  staleMs?: number;
  /** Operation logs older than this are swept. */
  logsMaxAgeMs?: number;
  /** At most this many operation logs are kept. */
  logsKeep?: number;
}

export interface GcPlan {
  remove: string[];
  keep: string[];
  /** Snapshots whose chains are folded to stay within maxDepth: id → ancestors folded. */
  fold: { id: string; levels: number }[];
}

/** A memory-tier directory whose store is gone (deleted, or given a new identity). */
export interface OrphanMemoryDir {
  dir: string;
  storeId: string | undefined;
  /** The store it belonged to, per its back-pointer. */
  root: string | undefined;
  bytes: number;
  reason: string;
}

export interface GcResult extends GcPlan {
  compacted: string[];
  /** Paths of leftovers removed (or, dry run, to remove). */
  swept: string[];
  /** Leftovers removed (or to remove): owner gone, or no owner and stale. */
  leftovers: Leftover[];
  /** Leftovers kept: their owner still runs, or they are younger than the stale threshold. */
  keptLeftovers: Leftover[];
  /** Operation log directories removed (or to remove). */
  logs: string[];
  /** Memory-tier directories of stores that no longer exist, removed (or to remove). */
  orphans: OrphanMemoryDir[];
  /** Damaged snapshots: never removed by gc (`snapshots rm ID` does). */
  damaged: DamagedSnapshot[];
  /** Bytes of snapshots removed. */
  freedBytes: number;
  /** Bytes of leftovers and orphans removed. */
  sweptBytes: number;
  dryRun: boolean;
}

/** Which workload a snapshot belongs to, for per-workload retention. */
export function workloadKey(m: SnapshotManifest): string {
  const t = m.target as { kind: string; workload?: string; pid?: number; command?: string[]; id?: string };
  if (t.kind === 'process') return t.workload !== undefined ? `workload:${t.workload}` : `pid:${t.pid}:${(t.command ?? []).join(' ')}`;
  return `${t.kind}:${t.id ?? ''}`;
}

/** Decides what gc would do, without doing it. */
export async function planGc(store: Store, policy: RetentionPolicy, all?: StoredSnapshot[]): Promise<GcPlan> {
  const snaps = all ?? await store.list();
  const keep = new Set<string>();
  const groups = new Map<string, StoredSnapshot[]>();
  for (const s of snaps) {
    const k = workloadKey(s.manifest);
    groups.set(k, [...(groups.get(k) ?? []), s]);
  }
  const retaining = policy.keepLast !== undefined || policy.keepEveryMs !== undefined;
  for (const list of groups.values()) {
    const newest = [...list].sort((a, b) => b.manifest.createdAt.localeCompare(a.manifest.createdAt));
    if (!retaining) { newest.forEach((s) => keep.add(s.manifest.id)); continue; }
    newest.slice(0, policy.keepLast ?? 0).forEach((s) => keep.add(s.manifest.id));
    if (policy.keepEveryMs !== undefined) {
      const seen = new Set<number>();
      for (const s of newest) {
        const bucket = Math.floor(Date.parse(s.manifest.createdAt) / policy.keepEveryMs);
        if (!seen.has(bucket)) { seen.add(bucket); keep.add(s.manifest.id); }
      }
    }
  }
  const remove = snaps.filter((s) => !keep.has(s.manifest.id)).map((s) => s.manifest.id);
  const fold: GcPlan['fold'] = [];
  if (policy.maxDepth !== undefined || policy.flattenOlderThanMs !== undefined) {
    const removed = new Set(remove);
    const now = Date.now();
    for (const s of snaps) {
      if (removed.has(s.manifest.id)) continue;
      // depth after the removals (removed ancestors are folded into their children anyway)
      const depth = (await ancestors(store, s, snaps)).filter((a) => !removed.has(a.manifest.id)).length;
      const old = policy.flattenOlderThanMs !== undefined && now - Date.parse(s.manifest.createdAt) > policy.flattenOlderThanMs;
      if (depth > 0 && old) fold.push({ id: s.manifest.id, levels: depth });
      else if (policy.maxDepth !== undefined && depth > policy.maxDepth) fold.push({ id: s.manifest.id, levels: depth - policy.maxDepth });
    }
  }
  return { remove, keep: [...keep], fold };
}

/** Applies a retention policy: removes (folding dependants first), folds deep chains, sweeps leftovers, logs and orphans. */
export async function gc(store: Store, policy: RetentionPolicy, dryRun = false): Promise<GcResult> {
  const scan = await store.scan();
  const all = scan.snapshots;
  const plan = await planGc(store, policy, all);
  const config = await readStoreConfig(store.root);
  const staleMs = policy.staleMs ?? config.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
  const { remove: leftovers, keep: keptLeftovers } = classifyLeftovers(scan.leftovers, staleMs);
  const orphans = await orphanMemoryDirs(store);
  const result: GcResult = {
    ...plan, compacted: [], swept: leftovers.map((l) => l.dir ?? l.intentPath ?? l.id), leftovers, keptLeftovers, logs: [], orphans,
    damaged: scan.damaged, freedBytes: 0, sweptBytes: [...leftovers, ...orphans].reduce((a, l) => a + l.bytes, 0), dryRun,
  };
  const sizeOf = new Map(all.map((s) => [s.manifest.id, s.manifest.bytes]));
  const createdAt = new Map(all.map((s) => [s.manifest.id, s.manifest.createdAt]));
  if (dryRun) {
    result.freedBytes = plan.remove.reduce((a, id) => a + (sizeOf.get(id) ?? 0), 0);
    result.logs = await sweepLogs(store, policy, [], true);
    return result;
  }
  // Oldest first: each removal folds into the next survivor of the chain.
  const order = [...plan.remove].sort((a, b) => (createdAt.get(a) ?? '').localeCompare(createdAt.get(b) ?? ''));
  for (const id of order) {
    const r = await removeSnapshot(store, id);
    result.compacted.push(...r.compacted);
    result.freedBytes += sizeOf.get(id) ?? 0;
  }
  // Deepest first is not needed: each fold reads through the chain as it is at that moment.
  for (const f of plan.fold) {
    const s = await store.find(f.id);
    if (!s) continue;
    const depth = (await ancestors(store, s)).length;
    const old = policy.flattenOlderThanMs !== undefined && Date.now() - Date.parse(s.manifest.createdAt) > policy.flattenOlderThanMs;
    const excess = old ? depth : depth - (policy.maxDepth ?? depth);
    if (excess > 0) {
      await foldInto(store, s, excess);
      result.compacted.push(f.id);
    }
  }
  result.compacted = [...new Set(result.compacted)];
  for (const l of leftovers) await store.removeLeftover(l);
  for (const o of orphans) await rm(o.dir, { recursive: true, force: true });
  result.logs = await sweepLogs(store, policy);
  return result;
}

/**
 * Which leftovers gc removes: those whose owner is gone, and those no record explains once
 * unchanged for `staleMs`. A leftover whose owner still runs is always kept.
 */
export function classifyLeftovers(all: Leftover[], staleMs: number): { remove: Leftover[]; keep: Leftover[] } {
  const remove: Leftover[] = [];
  const keep: Leftover[] = [];
  for (const l of all) {
    const gone = l.ownerAlive === false || (l.ownerAlive === undefined && l.ageMs >= staleMs);
    (gone ? remove : keep).push(l);
  }
  return { remove, keep };
}

/**
 * Removes leftovers of interrupted operations (see classifyLeftovers); returns their paths.
 * Kept for callers of the old API.
 */
export async function sweep(store: Store, staleMs: number): Promise<string[]> {
  const { remove } = classifyLeftovers(await store.leftovers(), staleMs);
  for (const l of remove) await store.removeLeftover(l);
  return remove.map((l) => l.dir ?? l.intentPath ?? l.id);
}


/**
 * Memory-tier directories under this store's base whose store is gone: the back-pointer names a
 * store root whose store.json is missing or has another id. (Deleting a store directory used to
 * leave its RAM snapshots behind forever.) Directories without a back-pointer are not touched.
 */
export async function orphanMemoryDirs(store: Store): Promise<OrphanMemoryDir[]> {
  const base = store.memoryBase;
  let names: string[];
  try { names = await readdir(base); } catch { return []; }
  const out: OrphanMemoryDir[] = [];
  for (const n of names) {
    const dir = join(base, n);
    const bp = readBackPointer(dir);
    if (!bp) continue;
    let reason: string | undefined;
    try {
      const id = readIdentity(bp.root);
      if (!id) reason = `its store ${bp.root} no longer exists (no ${join(bp.root, STORE_FILE)})`;
      else if (id.id !== bp.storeId) reason = `its store ${bp.root} now has another identity (${id.id})`;
    } catch {
      continue; // a damaged store.json: not proof that the store is gone
    }
    if (reason) out.push({ dir, storeId: bp.storeId, root: bp.root, bytes: await storedBytes(dir).catch(() => 0), reason });
  }
  return out;
}

/** Bytes every store's memory tier holds under this store's base (all stores on this host using it). */
export async function memoryBaseUsage(store: Store): Promise<{ base: string; bytes: number; stores: number }> {
  const base = store.memoryBase;
  let names: string[];
  try { names = await readdir(base); } catch { return { base, bytes: 0, stores: 0 }; }
  let bytes = 0;
  let stores = 0;
  for (const n of names) {
    const dir = join(base, n);
    if (await lstat(join(dir, BACK_POINTER_FILE)).then(() => true, () => false)) stores++;
    else if (!await lstat(join(dir, MANIFEST_FILE)).then(() => true, () => false)) continue;
    bytes += await storedBytes(dir).catch(() => 0);
  }
  return { base, bytes, stores };
}
