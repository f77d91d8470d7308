/**
 * Removing snapshots without breaking chains, retention policies, and the garbage collector.
 */
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ancestors, children, foldInto } from './chain.js';
import type { SnapshotManifest } from './manifest.js';
import type { Store, StoredSnapshot } from './store.js';

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
  const s = await store.get(id);
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
  /** Leftovers of interrupted operations (.tmp-*, .rm-*, .fold-*) older than this are swept. */
  staleMs?: number;
}

export interface GcPlan {
  remove: string[];
  keep: string[];
  /** Snapshots whose chains are folded to stay within maxDepth: id → ancestors folded. */
  fold: { id: string; levels: number }[];
}

export interface GcResult extends GcPlan {
  compacted: string[];
  swept: string[];
  freedBytes: number;
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

/** Applies a retention policy: removes (folding dependants first), folds deep chains, sweeps leftovers. */
export async function gc(store: Store, policy: RetentionPolicy, dryRun = false): Promise<GcResult> {
  const all = await store.list();
  const plan = await planGc(store, policy, all);
  const result: GcResult = { ...plan, compacted: [], swept: [], freedBytes: 0, dryRun };
  const sizeOf = new Map(all.map((s) => [s.manifest.id, s.manifest.bytes]));
  const createdAt = new Map(all.map((s) => [s.manifest.id, s.manifest.createdAt]));
  if (dryRun) {
    result.freedBytes = plan.remove.reduce((a, id) => a + (sizeOf.get(id) ?? 0), 0);
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
  result.swept = await sweep(store, policy.staleMs ?? 3_600_000);
  return result;
}

/** Removes leftovers of interrupted operations, older than `staleMs`. */
export async function sweep(store: Store, staleMs: number): Promise<string[]> {
  const out: string[] = [];
  for (const tier of ['memory', 'disk'] as const) {
    const base = store.tierDir(tier);
    let names: string[];
    try { names = await readdir(base); } catch { continue; }
    for (const n of names) {
      if (!/^\.(tmp|rm|fold|tmp-import)-/.test(n)) continue;
      const p = join(base, n);
      const st = await stat(p).catch(() => undefined);
      if (!st || Date.now() - st.mtimeMs < staleMs) continue;
      await rm(p, { recursive: true, force: true });
      out.push(p);
    }
  }
  return out;
}
