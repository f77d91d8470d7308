import { memoryTierUsage, readHostMemory, resolveBudget, resolveReserve, storedBytes } from '../store/budget.js';
import type { Leftover, Store } from '../store/store.js';
import { listWorkloadsReleasingEnded } from '../targets/workload-address.js';
import type { WorkloadRecord } from '../targets/workload-record.js';
import { workloadStatus, type WorkloadStatus } from '../targets/workload-status.js';
import { recoverInterrupted } from './recover.js';

/**
 * The store's listing: what `ferry snapshots ls --json` prints and the agent's GET /v1/store
 * answers (one function, so the two cannot drift): valid snapshots, damaged ones with the reason,
 * leftovers of interrupted or running operations, totals, and the memory tier's use and budget.
 * Interrupted checkpoints are finished (committed) or undone first.
 */
export async function storeListing(store: Store) {
  await recoverInterrupted(store);
  const scan = await store.scan();
  const rows = await Promise.all(scan.snapshots.map(async ({ manifest: m, dir }) => ({
    id: m.id, createdAt: m.createdAt, tier: m.tier, parent: m.parent ?? null, pid: m.target.pid, workload: m.target.workload ?? null,
    command: m.target.command, bytes: m.bytes,
    // What a restore materialises (deduped snapshots record it) vs what its own files occupy.
    logicalBytes: 'logicalBytes' in m && typeof m.logicalBytes === 'number' ? m.logicalBytes : m.bytes,
    storedBytes: await storedBytes(dir),
    criu: m.criu.version,
  })));
  const damaged = scan.damaged.map((d) => ({ id: d.id, tier: d.tier, dir: d.dir, reason: d.reason, storedBytes: d.bytes }));
  const leftovers = scan.leftovers.map(leftoverRow);
  const budget = await resolveBudget(store.root);
  const { memoryBaseUsage, orphanMemoryDirs } = await import('../store/retention.js');
  const host = await readHostMemory(store);
  const base = await memoryBaseUsage(store);
  const memoryTier = {
    dir: store.existingMemoryDir() ?? null, base: base.base, usedBytes: await memoryTierUsage(store),
    budgetBytes: budget.budgetBytes ?? null, spillToDisk: budget.spillToDisk,
    // Every store's memory tier under the same base, and what the host has left.
    allStoresBytes: base.bytes, stores: base.stores,
    hostAvailableBytes: host?.availableBytes ?? null, reserveBytes: host ? await resolveReserve(store.root, host.totalBytes) : null,
    orphans: (await orphanMemoryDirs(store)).map((o) => ({ dir: o.dir, root: o.root ?? null, bytes: o.bytes, reason: o.reason })),
  };
  const totals = {
    totalBytes: rows.reduce((a, r) => a + r.bytes, 0),
    totalLogicalBytes: rows.reduce((a, r) => a + r.logicalBytes, 0),
    totalStoredBytes: rows.reduce((a, r) => a + r.storedBytes, 0),
  };
  return { snapshots: rows, damaged, leftovers, ...totals, memoryTier };
}

export type StoreListing = Awaited<ReturnType<typeof storeListing>>;

/** A leftover as JSON (ls and gc). */
export function leftoverRow(l: Leftover) {
  return {
    id: l.id, kind: l.kind, tier: l.tier ?? null, dir: l.dir ?? null, intent: l.intentPath ?? null, op: l.op ?? null, phase: l.phase ?? null,
    bytes: l.bytes, ageMs: Math.round(l.ageMs), ownerAlive: l.ownerAlive ?? null, ...(l.damaged ? { damaged: l.damaged } : {}),
  };
}

/** What `ferry ps --json` prints and GET /v1/workloads answers: the workloads `ferry run` started in the store. */
export async function workloadListing(store: Store, warn: (rec: WorkloadRecord, err: unknown) => void): Promise<{ workloads: WorkloadStatus[]; workloadsDir: string }> {
  // A workload that ended gives up its service address when it is looked at (`warn`: when that fails).
  const records = await listWorkloadsReleasingEnded(store.workloadsDir, warn);
  const snapshots = records.length ? (await store.list()).map(({ manifest: m }) => ({ id: m.id, createdAt: m.createdAt, workload: m.target.workload })) : [];
  return { workloads: await Promise.all(records.map((r) => workloadStatus(r, snapshots))), workloadsDir: store.workloadsDir };
}
