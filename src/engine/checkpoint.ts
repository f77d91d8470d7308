import { mkdir, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { CriuClient, CRIU_MIN } from '../criu/client.js';
import { FollowingHasher, type Prehashed } from '../store/checksums.js';
import { DEFAULT_POLICY, dependentDepth, findParent, newestOf } from '../store/chain.js';
import { rebaseOnto, storeImages } from '../store/dedup.js';
import type { SnapshotManifest, Tier } from '../store/manifest.js';
import { placeSnapshot, type BudgetOverrides, type TierPlacement } from '../store/budget.js';
import { Store } from '../store/store.js';
import { OperationRecorder, type OperationTelemetry } from '../telemetry/operation.js';
import { checkCheckpointable, treeRssBytes } from '../targets/process.js';
import { readWorkload } from '../targets/run.js';
import { FerryError } from '../util/errors.js';
import { sealSnapshot } from './seal.js';

export interface CheckpointRequest {
  /** A pid, or the name of a workload started with `ferry run`. */
  target: string | number;
  name?: string;
  leaveRunning?: boolean;
  tier?: Tier;
  tcpEstablished?: boolean;
  extUnixSk?: boolean;
  fileLocks?: boolean;
  shellJob?: boolean;
  /**
   * Page dedup with the workload's previous snapshot in the same tier. 'newest-flat' (default):
   * the new snapshot stays whole and the previous one is rewritten to read its unchanged pages
   * from it; 'forward': the new one reads unchanged pages from the previous one; false: off.
   */
  dedup?: boolean | DedupMode;
  /** The compaction policy at checkpoint time: the most parents any snapshot may read through. */
  maxDepth?: number;
  /** Overrides of the memory tier's budget (else FERRY_MEMORY_BUDGET, then <store>/config.json). */
  memoryBudget?: BudgetOverrides;
}

export type DedupMode = 'newest-flat' | 'forward';

export interface CheckpointResult {
  /** newest-flat dedup: the previous snapshot, rewritten to build on this one (or why not). */
  rebased?: { id: string; savedBytes: number; inParent: number; pages: number; ms: number } | { id: string; error: string };
  snapshot: string;
  dir: string;
  manifest: SnapshotManifest;
  /** Phase timings, CRIU's stats, host CPU/memory and the tree's RSS sampled while it ran. */
  telemetry: OperationTelemetry;
  /** Where the snapshot went and why (a memory request may have spilled to disk). */
  placement: TierPlacement;
}

/** Resolves a pid or workload name to a pid. */
export async function resolveTarget(store: Store, target: string | number): Promise<{ pid: number; workload: string | undefined }> {
  if (typeof target === 'number' || /^\d+$/.test(target)) {
    const pid = Number(target);
    if (!Number.isSafeInteger(pid) || pid <= 0) throw new FerryError('ERR_USAGE', `'${target}' is not a valid pid`);
    return { pid, workload: undefined };
  }
  const rec = await readWorkload(store.workloadsDir, target);
  if (!rec) {
    throw new FerryError('ERR_NO_WORKLOAD', `no pid or workload named '${target}'`, { hint: 'give a pid, or the --name of a workload started with `ferry run`' });
  }
  return { pid: rec.pid, workload: rec.name };
}

/**
 * Checkpoints a process tree into the store. Everything that can be refused is refused
 * before CRIU runs; if CRIU fails, it has resumed the tree and the half-written snapshot is
 * removed, so the workload keeps running and the store holds only complete snapshots.
 */
export async function checkpoint(store: Store, req: CheckpointRequest, criu = new CriuClient()): Promise<CheckpointResult> {
  return OperationRecorder.run('checkpoint', (rec) => checkpointRecorded(store, req, criu, rec));
}

async function checkpointRecorded(store: Store, req: CheckpointRequest, criu: CriuClient, rec: OperationRecorder): Promise<CheckpointResult> {
  const started = Date.now();
  await store.ensure(req.tier ?? 'disk');
  const { pid, workload } = await resolveTarget(store, req.target);
  rec.watch(pid);
  // The VERSION round trip with CRIU overlaps ferry's own checks of the target.
  const versionP = criu.requireVersion(CRIU_MIN.ferry, 'checkpoints');
  versionP.catch(() => undefined);
  const info = await checkCheckpointable(pid, { shellJob: req.shellJob === true });
  const version = await versionP;
  // The memory tier's budget: stay, spill to disk, or refuse — before anything is written.
  const need = await treeRssBytes(pid);
  const placement = await placeSnapshot(store, req.tier ?? 'disk', need, req.memoryBudget);
  const tier = placement.tier;
  if (placement.spilled) await store.ensure(tier);
  const pending = await store.begin(tier, req.name);
  try {
    const fs = await statfs(pending.dir);
    const free = fs.bavail * fs.bsize;
    if (need > free) {
      throw new FerryError('ERR_STORE_FULL', `the ${tier} tier has ${Math.floor(free / 2 ** 20)} MiB free; pid ${pid} holds about ${Math.ceil(need / 2 ** 20)} MiB`, {
        hint: tier === 'memory' ? 'use --tier disk, or free memory-tier space (`ferry snapshots rm`)' : 'free space in the store, or use --store on a larger file system',
      });
    }
    // CRIU's log and stats go to a work dir outside the snapshot, so a failed checkpoint's
    // log survives the removal of its half-written images; on success they are copied in.
    const workDir = join(store.root, 'logs', `checkpoint-${pending.id}`);
    await mkdir(workDir, { recursive: true, mode: 0o700 });
    // While CRIU dumps: the dedup partner is looked up, and the pages images are hashed as
    // CRIU appends to them (on the other core), so little hashing is left once it is done.
    const mode: DedupMode | 'off' = req.dedup === false ? 'off' : req.dedup === 'forward' ? 'forward' : 'newest-flat';
    const who = { workload, pid, command: info.command };
    const policy = { maxDepth: req.maxDepth ?? (mode === 'forward' ? DEFAULT_POLICY.maxDepth : Infinity) };
    // One listing of the store serves the partner lookup and the depth policy.
    const allP = mode === 'off' ? Promise.resolve([]) : store.list().catch(() => []);
    const parentP = mode === 'forward' ? allP.then((all) => findParent(store, who, tier, policy, all)).catch(() => undefined) : Promise.resolve(undefined);
    const previousP = mode === 'newest-flat' ? allP.then((all) => newestOf(store, who, tier, all)).catch(() => undefined) : Promise.resolve(undefined);
    const follower = new FollowingHasher(pending.dir).start();
    const criuStarted = Date.now();
    let prehashed: Prehashed;
    try {
      await criu.dump({
        pid,
        imagesDir: pending.dir,
        workDir,
        ...(req.leaveRunning ? { leaveRunning: true } : {}),
        ...(req.tcpEstablished ? { tcpEstablished: true } : {}),
        ...(req.extUnixSk ? { extUnixSk: true } : {}),
        ...(req.fileLocks ? { fileLocks: true } : {}),
        ...(req.shellJob ? { shellJob: true } : {}),
      });
    } finally {
      prehashed = await follower.finish();
    }
    const criuMs = Date.now() - criuStarted;
    // Checksums, the page index, and page dedup with this workload's newest snapshot.
    const [parent, previous] = await Promise.all([parentP, previousP]);
    const { manifest, dir, checksumMs } = await sealSnapshot({
      pending, workDir, started, criuMs, criuVersion: version.text, name: req.name,
      target: { kind: 'process', pid, workload, command: info.command, ownPidNamespace: info.nsPid === 1 },
      options: {
        tcpEstablished: req.tcpEstablished === true,
        extUnixSk: req.extUnixSk === true,
        fileLocks: req.fileLocks === true,
        shellJob: req.shellJob === true,
      },
      images: async () => {
        const stored = await storeImages(pending.dir, parent, prehashed);
        return { files: stored.files, parent: stored.dedup?.parent, dedup: stored.dedup, logicalBytes: stored.logicalBytes };
      },
    });
    // The new snapshot is complete and listed; rewriting the previous one cannot lose it, and a
    // failure leaves the previous one as it was (whole).
    let rebased: CheckpointResult['rebased'];
    // The depth policy: rebasing the previous snapshot makes everything that reads through it one
    // level deeper; past maxDepth it stays whole and starts a new segment.
    const deepest = previous && Number.isFinite(policy.maxDepth) ? await dependentDepth(store, previous.manifest.id, await allP).catch(() => Infinity) : 0;
    if (previous && deepest + 1 <= policy.maxDepth) {
      try {
        const m = await rebaseOnto(previous, { manifest, dir });
        if (m?.dedup) rebased = { id: previous.manifest.id, savedBytes: m.dedup.savedBytes, inParent: m.dedup.inParent, pages: m.dedup.pages, ms: m.dedup.ms };
      } catch (e) {
        rebased = { id: previous.manifest.id, error: e instanceof Error ? e.message : String(e) };
      }
    }
    const telemetry = rec.finish({ ok: true, criu: manifest.stats, phasesMs: { total: manifest.timings.totalMs, criu: criuMs, checksum: checksumMs } });
    return { snapshot: pending.id, dir, manifest, telemetry, placement, ...(rebased ? { rebased } : {}) };
  } catch (err) {
    await pending.abandon().catch((e: unknown) => { if (err instanceof FerryError) err.addCleanupError(e); });
    throw err;
  }
}
