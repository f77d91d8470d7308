import { statfs } from 'node:fs/promises';
import { CriuClient, CRIU_MIN } from '../criu/client.js';
import type { NotifyHandlers } from '../criu/notify.js';
import { placeSnapshot, type BudgetOverrides, type TierPlacement } from '../store/budget.js';
import { DEFAULT_POLICY, dependentDepth, findParent, newestOf } from '../store/chain.js';
import { checksumDir, FollowingHasher, type Prehashed } from '../store/checksums.js';
import { rebaseOnto, storeImages } from '../store/dedup.js';
import { acquireLock, withSnapshotLock } from '../store/locks.js';
import type { SnapshotManifest, Tier } from '../store/manifest.js';
import { sealSnapshot } from '../store/seal.js';
import type { Store } from '../store/store.js';
import { OperationRecorder, type OperationTelemetry } from '../telemetry/operation.js';
import type { TargetRef } from '../targets/driver.js';
import { parseTargetRef, resolveLive } from '../targets/drivers.js';
import { hostFacts } from '../targets/host.js';
import { liveStartTime, treeRssBytes } from '../targets/process.js';
import { recordOptions, type RecordedOptions } from '../targets/recorded-options.js';
import { FerryError, isFerryError } from '../util/errors.js';
import { interruptedError, throwIfInterrupted } from './interrupt.js';
import { Phases } from './phases.js';
import { driverPaths, operationDir } from './paths.js';
import { Watchdog } from './watchdog.js';

export interface CheckpointRequest extends Partial<RecordedOptions> {
  /** A pid, a `ferry run` workload name, `container:<id>`, or a parsed reference. */
  target: string | number | TargetRef;
  /** Containers: the runtime (else found: runc, then crun) and its state directory. */
  runtime?: string;
  runtimeRoot?: string;
  name?: string;
  leaveRunning?: boolean;
  tier?: Tier;
  /**
   * Page dedup with the workload's previous snapshot in the same tier. 'newest-flat' (default):
   * the new snapshot stays whole and the previous one is rewritten to read its unchanged pages
   * from it; 'forward': the new one reads unchanged pages from the previous one; false: off.
   * (Process trees only.)
   */
  dedup?: boolean | DedupMode;
  /** The compaction policy at checkpoint time: the most parents any snapshot may read through. */
  maxDepth?: number;
  /** Overrides of the memory tier's budget (else FERRY_MEMORY_BUDGET, then <store>/config.json). */
  memoryBudget?: BudgetOverrides;
  /** Aborted (reason: the signal's name) when the user interrupts; see engine/interrupt.ts. */
  interrupt?: AbortSignal;
  /**
   * Awaited at CRIU's pre-dump notification, before CRIU freezes the tree (CRIU-run dumps only):
   * a scheduler's admission gate (scheduler/admission.ts). The tree runs while it waits; if it
   * throws, CRIU aborts the dump and the tree runs on. `dump`: what the dump will write — the
   * tree's resident memory (an estimate) into the tier it was placed in.
   */
  beforeFreeze?: (dump: FreezeRequest) => Promise<void>;
  /** Called at CRIU's post-dump notification (images complete; the tree resumes or ends on the answer): frees the gate's slot. */
  afterFreeze?: () => void;
  /**
   * A migration's hold of the commit point: awaited at CRIU's post-dump notification, with the
   * tree frozen and its images complete in `imagesDir`, before CRIU is answered. If it returns,
   * CRIU ends the tree (the workload lives on elsewhere) and the snapshot is sealed here as usual;
   * if it throws, CRIU resumes the tree, the partial snapshot is removed and its error is the
   * checkpoint's. Not with leaveRunning, and only where ferry drives CRIU (processes, crun).
   */
  handoff?: (h: Handoff) => Promise<void>;
  /** Called once CRIU reports the dump done (with a handoff: the tree has ended), before the seal. */
  onDumped?: () => void;
  /**
   * Called once with the directory CRIU will write the images into, before CRIU starts (a
   * streaming migration follows the images as they are written). Not awaited; it must not throw.
   */
  onImagesDir?: (dir: string) => void;
  /**
   * With a handoff: hash the pages images as CRIU writes them (on the other core) even without
   * dedup, and give the handoff what was hashed (Handoff.prehashed) — an incremental migration
   * diffs every page while the tree is frozen.
   */
  followPages?: boolean;
  /**
   * Post-copy: anonymous memory is left out of the images (PE_LAZY) and, once the post-dump
   * notification is answered, CRIU serves it from the frozen tree on `port` (RPC binds
   * 0.0.0.0:port) until the destination closes the session; only then does the dump end.
   */
  lazyPages?: { port: number };
  /** Called just after a handoff's post-dump answer went to CRIU (post-copy commits here, not at onDumped). */
  onHandedOff?: () => void;
}

export type DedupMode = 'newest-flat' | 'forward';

/** What a migration's handoff gets at the commit point: the complete images and what they are. */
export interface Handoff {
  imagesDir: string;
  snapshotId: string;
  rootPid: number;
  target: SnapshotManifest['target'];
  options: RecordedOptions;
  criuVersion: string;
  name: string | undefined;
  /** The pages images' ranges hashed while CRIU wrote them (with followPages or dedup). */
  prehashed?: Prehashed;
}

/** What a checkpoint tells its freeze gate: the bytes it will write and where. */
/** What a dump at its freeze gate will write: `bytes` (the tree's resident memory) into `tier`, its images appearing in `imagesDir`. */
export interface FreezeRequest { bytes: number; tier: Tier; imagesDir: string }

/** What a checkpoint's intent record carries, for engine/recover.ts. */
export interface CheckpointIntent {
  driver: string;
  label: string;
  rootPid: number;
  /** The root's start time: with the pid, it tells the original from a reused pid. */
  rootStartTime: number | null;
  leaveRunning: boolean;
  target: SnapshotManifest['target'];
  options: RecordedOptions;
  criuVersion: string;
  name: string | null;
  startedAt: number;
}

export interface CheckpointResult {
  snapshot: string;
  dir: string;
  manifest: SnapshotManifest;
  /** newest-flat dedup: the previous snapshot, rewritten to build on this one (or why not). */
  rebased?: { id: string; savedBytes: number; inParent: number; pages: number; ms: number } | { id: string; error: string };
  /** Phase timings, CRIU's stats, host CPU/memory and the tree's RSS sampled while it ran. */
  telemetry: OperationTelemetry;
  /** Where the snapshot went and why (a memory request may have spilled to disk). */
  placement: TierPlacement;
}

/**
 * Checkpoints a target (process tree or container) into the store, the same way for every
 * driver. Everything that can be refused is refused before CRIU runs. If CRIU fails, or the
 * operation is interrupted before CRIU may kill the tree, the tree keeps running and the
 * half-written snapshot is removed; from the moment CRIU may kill the tree until the snapshot
 * is committed, interrupts are deferred (engine/interrupt.ts).
 */
export async function checkpoint(store: Store, req: CheckpointRequest, criu = new CriuClient()): Promise<CheckpointResult> {
  return OperationRecorder.run('checkpoint', (rec) => checkpointRecorded(store, req, criu, new Phases('checkpoint', rec)));
}

async function checkpointRecorded(store: Store, req: CheckpointRequest, criu: CriuClient, phases: Phases): Promise<CheckpointResult> {
  const started = Date.now();
  const options = recordOptions(req);
  const ref = typeof req.target === 'object' ? req.target : parseTargetRef(req.target, { runtime: req.runtime, runtimeRoot: req.runtimeRoot });
  const requestedTier = req.tier ?? 'disk';
  await store.ensure(requestedTier);
  // The VERSION round trip with CRIU overlaps ferry's own checks of the target.
  const versionP = criu.requireVersion(CRIU_MIN.ferry, 'checkpoints');
  versionP.catch(() => undefined);
  const { driver, live } = await phases.run('resolve', () => resolveLive(ref, driverPaths(store), options));
  if (req.handoff && (req.leaveRunning || !driver.ownsCriu)) {
    throw new FerryError('ERR_USAGE', req.leaveRunning
      ? 'a migration ends the source copy: it cannot be asked to leave it running'
      : `${live.label} is run by ${driver.name}, which runs CRIU itself: its dump cannot be held at the commit point`);
  }
  phases.rec.watch(live.rootPid);
  const lock = await acquireLock(store.root, live.lockKey, `a checkpoint of ${live.label}`);
  try {
    const version = await versionP;
    // The memory tier's budget: stay, spill to disk, or refuse — before anything is written.
    const need = await treeRssBytes(live.rootPid);
    const placement = await placeSnapshot(store, requestedTier, need, req.memoryBudget);
    const tier = placement.tier;
    if (placement.spilled) await store.ensure(tier);
    throwIfInterrupted(req.interrupt, `nothing was checkpointed; ${live.label} runs on`);
    // The intent record (written before CRIU starts) lets the next command finish or undo this
    // checkpoint if ferry dies: engine/recover.ts reads what is recorded here.
    const payload: CheckpointIntent = {
      driver: driver.name, label: live.label, rootPid: live.rootPid, rootStartTime: await liveStartTime(live.rootPid) ?? null,
      leaveRunning: req.leaveRunning === true, target: live.record, options, criuVersion: version.text, name: req.name ?? null, startedAt: started,
    };
    const pending = await store.begin(tier, req.name, { op: 'checkpoint', payload: { ...payload } });
    let critical = false;
    try {
      const fs = await statfs(pending.dir);
      const free = fs.bavail * fs.bsize;
      if (need > free) {
        throw new FerryError('ERR_STORE_FULL', `the ${tier} tier has ${Math.floor(free / 2 ** 20)} MiB free; ${live.label} holds about ${Math.ceil(need / 2 ** 20)} MiB`, {
          hint: tier === 'memory' ? 'use --tier disk, or free memory-tier space (`ferry snapshots rm`)' : 'free space in the store, or use a store on a larger file system',
        });
      }
      // CRIU's log and stats go to a work dir outside the snapshot, so a failed checkpoint's
      // log survives the removal of its half-written images; on success they are copied in.
      const workDir = await operationDir(store, 'checkpoint', pending.id);
      req.onImagesDir?.(pending.dir);
      const leaveRunning = req.leaveRunning === true;
      const enterCritical = () => {
        if (leaveRunning || critical) return;
        critical = true;
        phases.critical(true, `${live.label} has been dumped and now lives only in snapshot ${pending.id}, which is being committed`);
      };
      // While CRIU dumps: the dedup partner is looked up, and the pages images are hashed as
      // CRIU appends to them (on the other core), so little hashing is left once it is done.
      const mode: DedupMode | 'off' = live.record.kind !== 'process' || req.dedup === false ? 'off' : req.dedup === 'forward' ? 'forward' : 'newest-flat';
      const who = { workload: live.record.workload, pid: live.rootPid, command: live.record.command };
      const policy = { maxDepth: req.maxDepth ?? (mode === 'forward' ? DEFAULT_POLICY.maxDepth : Infinity) };
      const allP = mode === 'off' ? Promise.resolve([]) : store.list().catch(() => []);
      const parentP = mode === 'forward' ? allP.then((all) => findParent(store, who, tier, policy, all)).catch(() => undefined) : Promise.resolve(undefined);
      const previousP = mode === 'newest-flat' ? allP.then((all) => newestOf(store, who, tier, all)).catch(() => undefined) : Promise.resolve(undefined);
      const watchdog = driver.ownsCriu ? await new Watchdog({ pid: live.rootPid, label: live.label, workDir, imagesDir: pending.dir }).start() : undefined;
      const beforeFreeze = req.beforeFreeze;
      let handoffError: unknown;
      // (Set once the follower below exists: the post-dump handler runs after that.)
      let finishFollower: () => Promise<Prehashed> = () => Promise.resolve(new Map() as Prehashed);
      const handlers: NotifyHandlers = {
        ...(beforeFreeze ? {
          'pre-dump': async () => {
            // Waiting for its turn is not a stall (the watchdog still watches the target).
            const dump: FreezeRequest = { bytes: need, tier, imagesDir: pending.dir };
            await (watchdog ? watchdog.hold(() => beforeFreeze(dump)) : beforeFreeze(dump));
            throwIfInterrupted(req.interrupt, 'stopped before the freeze');
          },
        } : {}),
        // The commit point of a dump: everything is written; answering failure makes CRIU
        // resume the tree, answering success lets it kill the tree (unless --leave-running).
        'post-dump': async () => {
          req.afterFreeze?.();
          throwIfInterrupted(req.interrupt, 'stopped before the commit point');
          const handoff = req.handoff;
          if (handoff) {
            // The tree stays frozen while the images travel and are restored elsewhere; CRIU
            // resumes it if this throws (or if ferry dies: its answer never comes).
            const hashed = follower ? await finishFollower() : undefined;
            const go = () => phases.run('handoff', () => handoff({
              imagesDir: pending.dir, snapshotId: pending.id, rootPid: live.rootPid, target: live.record, options, criuVersion: version.text, name: req.name,
              ...(hashed ? { prehashed: hashed } : {}),
            }));
            try {
              await (watchdog ? watchdog.hold(go) : go());
            } catch (e) {
              handoffError = e;
              throw e;
            }
            // (No interrupt check here: a handoff that returned has decided — the copy elsewhere
            // is the workload now; it checks the interrupt itself before it returns.)
          }
          watchdog?.disarm();
          // A lazy dump's tree lives on, frozen, while CRIU serves its memory: it ends only if the
          // page session ends well (then the dump succeeds), and CRIU resumes it otherwise.
          if (!req.lazyPages) enterCritical();
          // While CRIU serves a lazy dump's memory it writes nothing for long stretches: the page
          // stream's own watch (the destination's handler) covers that window, not the stall check.
          else watchdog?.stop();
          // (After this handler returns, its answer goes to CRIU; then the callback.)
          const handedOff = req.onHandedOff;
          if (handoff && handedOff) setImmediate(handedOff);
          // From here on the images are complete. Recorded beside the answer, not before it (the
          // tree stays frozen until CRIU hears it): should ferry die before the record lands, the
          // "Dumping finished successfully" CRIU then writes tells recovery the same.
          void pending.updateIntent({ phase: 'dumped' }).catch(() => undefined);
        },
      };
      // (Serialised with the later updates; CRIU need not wait for it.)
      void pending.updateIntent({ phase: 'dumping' }).catch(() => undefined);
      // With --leave-running the tree runs on after the dump: hashing beside CRIU would lengthen
      // its pause (≈ ×1.10 of raw CRIU's frozen time at 1 GiB, against ×1.01 without), so its
      // pages are hashed once it runs again. A stopped tree's pause is its end: there the hashing
      // overlaps the dump, which seals sooner (≈ ×1.19 of raw `criu dump`, against ×1.39).
      const follower = (mode === 'off' && !(req.followPages && req.handoff)) || leaveRunning ? undefined : new FollowingHasher(pending.dir).start();
      let finishing: Promise<Prehashed> | undefined;
      finishFollower = () => (finishing ??= follower!.finish());
      let prehashed: Prehashed | undefined;
      try {
        await phases.run('criu', () => driver.dump(live, { imagesDir: pending.dir, workDir, options, leaveRunning, criu, handlers, control: watchdog ? { kill: watchdog.kill } : {}, ...(req.lazyPages ? { lazyPages: req.lazyPages } : {}) }));
        // runc runs CRIU itself: once it reports the dump complete, without --leave-running the
        // container is gone and its images are all that is left.
        if (!driver.ownsCriu) {
          enterCritical();
          await pending.updateIntent({ phase: 'dumped' });
        }
        if (req.lazyPages) enterCritical();
        req.onDumped?.();
      } catch (err) {
        // The migration's own failure is the reason CRIU resumed the tree, not CRIU's complaint.
        if (handoffError !== undefined && !critical) throw handoffError instanceof Error ? handoffError : new FerryError('ERR_INTERNAL', 'the migration handoff failed');
        if (req.interrupt?.aborted && !critical) {
          throw interruptedError(req.interrupt, `CRIU resumed ${live.label}, which runs on; the partial snapshot was removed`);
        }
        if (!critical && !isFerryError(err, 'ERR_TARGET_DIED') && await liveStartTime(live.rootPid) === undefined) {
          // CRIU noticed first: the real cause is the target's death, not CRIU's complaint.
          throw new FerryError('ERR_TARGET_DIED', `${live.label} died while CRIU was dumping it; nothing was saved`, {
            cause: err, hint: 'something killed the workload during the checkpoint (the kernel log says whether it was the OOM killer)',
          });
        }
        throw err;
      } finally {
        watchdog?.stop();
        prehashed = follower ? await finishFollower() : undefined;
      }
      const criuMs = phases.rec.phasesSoFar()['criu'] ?? 0;
      throwIfInterrupted(critical ? undefined : req.interrupt, `${live.label} runs on; the partial snapshot was removed`);
      // Checksums, the page index, and page dedup with this workload's newest snapshot.
      const [parent, previous] = await Promise.all([parentP, previousP]);
      const { manifest, dir } = await phases.run('seal', async () => sealSnapshot({
        pending, workDir, started, criuMs, criuVersion: version.text, name: req.name,
        target: live.record, options, host: await hostFacts(), logsOptional: !driver.ownsCriu,
        images: async () => {
          if (mode === 'off') return { files: await checksumDir(pending.dir) };
          const stored = await storeImages(pending.dir, parent, prehashed);
          return { files: stored.files, parent: stored.dedup?.parent, dedup: stored.dedup, logicalBytes: stored.logicalBytes };
        },
      }));
      if (critical) phases.critical(false, `snapshot ${pending.id} is committed`);
      critical = false;
      // The new snapshot is complete and listed; rewriting the previous one cannot lose it, and a
      // failure leaves the previous one as it was (whole). The depth policy: rebasing the
      // previous snapshot makes everything that reads through it one level deeper.
      let rebased: CheckpointResult['rebased'];
      const deepest = previous && Number.isFinite(policy.maxDepth) ? await dependentDepth(store, previous.manifest.id, await allP).catch(() => Infinity) : 0;
      if (previous && deepest + 1 <= policy.maxDepth) {
        try {
          const m = await withSnapshotLock(store.root, previous.manifest.id, `a rewrite of snapshot ${previous.manifest.id}`, () => rebaseOnto(previous, { manifest, dir }));
          if (m?.dedup) rebased = { id: previous.manifest.id, savedBytes: m.dedup.savedBytes, inParent: m.dedup.inParent, pages: m.dedup.pages, ms: m.dedup.ms };
        } catch (e) {
          rebased = { id: previous.manifest.id, error: e instanceof Error ? e.message : String(e) };
        }
      }
      const telemetry = phases.rec.finish({ ok: true, criu: manifest.stats, phasesMs: { total: manifest.timings.totalMs, checksum: manifest.timings.checksumMs } });
      return { snapshot: pending.id, dir, manifest, telemetry, placement, ...(rebased ? { rebased } : {}) };
    } catch (err) {
      if (critical) {
        // CRIU has killed the tree: its images are all that is left of it. Keep them where they
        // are; the next command on this store finds the intent record and commits or reports them.
        phases.critical(false, `snapshot ${pending.id} was not committed`);
        throw new FerryError('ERR_COMMIT_FAILED', `the dump of ${live.label} is complete but snapshot ${pending.id} could not be committed: ${err instanceof Error ? err.message : String(err)}`, {
          cause: err,
          detail: `the images are kept in ${pending.dir}`,
          hint: 'fix the cause (often a full disk), then run any ferry command on this store (e.g. `ferry snapshots ls`): it commits the interrupted snapshot',
        });
      }
      await pending.abandon().catch((e: unknown) => { if (err instanceof FerryError) err.addCleanupError(e); });
      throw err;
    }
  } finally {
    await lock.release();
  }
}

