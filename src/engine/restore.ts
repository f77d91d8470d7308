import { CriuClient, CRIU_MIN } from '../criu/client.js';
import type { RestoreStats } from '../criu/images/stats.js';
import type { NotifyHandlers } from '../criu/notify.js';
import { ancestors, checkParentLink } from '../store/chain.js';
import { verifyChecksums } from '../store/checksums.js';
import { verifyForRestore } from '../store/verify.js';
import { acquireLock } from '../store/locks.js';
import type { Store } from '../store/store.js';
import { OperationRecorder, type OperationTelemetry } from '../telemetry/operation.js';
import { checkRestorable } from '../targets/compat.js';
import { isRuntime, parseContainerTarget, type Runtime } from '../targets/container.js';
import type { RestoreCall } from '../targets/driver.js';
import { driverForManifest } from '../targets/drivers.js';
import { validWorkloadName } from '../targets/run.js';
import { FerryError } from '../util/errors.js';
import { throwIfInterrupted } from './interrupt.js';
import { driverPaths, operationDir } from './paths.js';
import { Phases } from './phases.js';

export interface RestoreRequest {
  snapshot: string;
  /**
   * Restore as a copy under this name: a `ferry run` workload name for process snapshots,
   * `container:<id>` (or just the id) for container snapshots. Needed while the original runs.
   */
  as?: string;
  /** Restore a copy under a generated name (a workload's `<name>-<suffix>`). */
  clone?: boolean;
  /** Containers: another bundle, runtime or runtime root than the recorded ones. */
  bundle?: string;
  runtime?: string;
  runtimeRoot?: string;
  /** Restore established TCP connections as closed (`--tcp-close`): their peers are gone. */
  tcpClose?: boolean;
  interrupt?: AbortSignal;
  /**
   * A migration's hold on the destination: awaited at CRIU's post-restore notification (memory
   * in place and verified, tasks parked in CRIU's restorer, no program code run yet). If it
   * throws — or ferry dies while it waits — CRIU kills the restored tasks. Only where ferry
   * drives CRIU (processes, crun).
   */
  beforeResume?: (r: { pid: number | undefined }) => Promise<void>;
  /**
   * The snapshot (no ancestors) was verified file by file as it arrived, just now (a migration's
   * receive): its pages are not hashed again in the read path.
   */
  imagesJustVerified?: boolean;
  /**
   * With imagesJustVerified: ancestors that were verified the same way during the same migration
   * (an incremental migration's rounds): a chain made only of them is not hashed again either.
   */
  ancestorsJustVerified?: readonly string[];
  /**
   * Post-copy: restore with `--lazy-pages`. `beforeCriu` gets the restore's work dir, where the
   * page handler must listen on lazy-pages.socket before CRIU starts (CRIU connects to it there).
   */
  lazyPages?: { beforeCriu(workDir: string): Promise<void> };
}

export interface RestoreResult {
  pid: number;
  snapshot: string;
  kind: 'process' | 'container';
  /** The restored workload's name or container id, when it has one. */
  name: string | undefined;
  /** Containers: runtime, id and where stdout/stderr go. */
  container?: { id: string; runtime: Runtime; stdout: string; stderr: string };
  stats: RestoreStats | undefined;
  timings: { totalMs: number; verifyMs: number; criuMs: number };
  logPath: string;
  /** Phase timings, CRIU's stats, host CPU/memory and the restored tree's RSS sampled while it ran. */
  telemetry: OperationTelemetry;
}

/**
 * Restores a snapshot (a process tree or a container), detached. Before CRIU runs: the checksums
 * of the images CRIU parses, the CRIU line, the CPU features, the pids and the target's own
 * conditions (a workload or container id still in use) are checked; each refusal says why and
 * what to do. The pages images are verified while CRIU restores, and CRIU's post-restore (memory
 * in place, tasks still parked in CRIU's restorer, no program code run yet) is answered only once
 * they have: a damaged one makes CRIU kill the restored tasks. runc runs CRIU itself and ferry
 * cannot answer it: for runc every image is verified before it starts.
 */
export async function restore(store: Store, req: RestoreRequest | string, criu = new CriuClient()): Promise<RestoreResult> {
  const r = typeof req === 'string' ? { snapshot: req } : req;
  return OperationRecorder.run('restore', (rec) => restoreRecorded(store, r, criu, new Phases('restore', rec)));
}

async function restoreRecorded(store: Store, req: RestoreRequest, criu: CriuClient, phases: Phases): Promise<RestoreResult> {
  const started = Date.now();
  const id = req.snapshot;
  const self = await store.get(id);
  const { manifest, dir } = self;
  let runtime: Runtime | undefined;
  if (req.runtime !== undefined) {
    if (!isRuntime(req.runtime)) throw new FerryError('ERR_USAGE', `--runtime must be runc or crun, not '${req.runtime}'`);
    runtime = req.runtime;
  }
  const driver = driverForManifest(manifest, runtime);
  const as = restoreName(manifest.target, req);
  if (manifest.target.kind === 'process' && (req.bundle !== undefined || req.runtimeRoot !== undefined)) {
    throw new FerryError('ERR_USAGE', `${id} is a process snapshot; --bundle, --runtime and --runtime-root apply to container snapshots`);
  }
  const lock = await acquireLock(store.root, `snapshot-${id}`, `a restore of snapshot ${id}`);
  try {
    // The VERSION round trip with CRIU overlaps the checksum verification.
    const versionP = criu.requireVersion(CRIU_MIN.ferry, 'restores');
    versionP.catch(() => undefined);
    // A deduped snapshot reads pages from its chain: every snapshot in it is checked. Where ferry
    // drives CRIU, the pages images are checked in the read path (store/verify.ts).
    const chain = [self, ...await ancestors(store, self)];
    for (const s of chain) await checkParentLink(s);
    // A migration's images were checked as they arrived, moments ago (every chunk and file
    // against the sender's hashes): hashing their pages again would only lengthen the downtime.
    const justVerified = req.imagesJustVerified === true && chain.every((s, i) => i === 0 || req.ancestorsJustVerified?.includes(s.manifest.id) === true);
    const v = driver.ownsCriu && !justVerified ? verifyForRestore(chain) : undefined;
    try {
      const verifyMs = await phases.run('verify', async () => {
        const t0 = Date.now();
        if (v) await v.small;
        else if (!justVerified) await Promise.all(chain.map((s) => verifyChecksums(s.dir, s.manifest.files, s.manifest.id, s.manifest.algorithm)));
        return Date.now() - t0;
      });
      const version = await versionP;
      const workDir = await operationDir(store, 'restore', id);
      // The restored tasks stay parked in CRIU until the pages images verified; a damaged one fails this.
      let pagesVerified = false;
      let holdError: unknown;
      const beforeResume = req.beforeResume;
      if (beforeResume && !driver.ownsCriu) throw new FerryError('ERR_USAGE', `snapshot ${id} is restored by ${driver.name}, which runs CRIU itself: its restore cannot be held before the tasks resume`);
      const handlers: NotifyHandlers = v || beforeResume ? {
        'post-restore': async (ctx) => {
          await v?.postRestore();
          pagesVerified = true;
          if (beforeResume) {
            try {
              await phases.run('hold', () => beforeResume({ pid: ctx.pid }));
            } catch (e) {
              holdError = e;
              throw e;
            }
          }
        },
      } : {};
      const call: RestoreCall = {
        manifest, dir, workDir, criu, handlers, control: {},
        ...(as !== undefined ? { as } : {}),
        ...(req.bundle !== undefined ? { bundle: req.bundle } : {}),
        ...(runtime !== undefined ? { runtime } : {}),
        ...(req.runtimeRoot !== undefined ? { runtimeRoot: req.runtimeRoot } : {}),
        extra: { ...(req.tcpClose ? { tcpClose: true } : {}), ...(req.lazyPages ? { lazyPages: true } : {}) },
        paths: driverPaths(store),
      };
      await phases.run('preflight', async () => {
        await checkRestorable(manifest, version.text, { imagesDir: dir });
        await driver.preflightRestore(call);
      });
      throwIfInterrupted(req.interrupt, `snapshot ${id} was not restored`);
      if (req.lazyPages) await req.lazyPages.beforeCriu(workDir);
      const r = await phases.run('criu', () => driver.restore(call)).catch((e: unknown) => {
        throw holdError ?? e;
      });
      if (v && !pagesVerified) {
        // CRIU always sends it (restore_root_task); without it nothing held the tasks for the check.
        try { process.kill(r.pid, 'SIGKILL'); } catch { /* gone */ }
        throw new FerryError('ERR_INTERNAL', `CRIU resumed snapshot ${id} without answering post-restore, so its memory was not verified; ferry killed it`);
      }
      phases.rec.watch(r.pid);
      const criuMs = phases.rec.phasesSoFar()['criu'] ?? 0;
      const timings = { totalMs: Date.now() - started, verifyMs, criuMs };
      const telemetry = phases.rec.finish({ ok: true, criu: r.stats, phasesMs: { total: timings.totalMs, ...(v?.timings.pagesMs !== undefined ? { verifyPages: v.timings.pagesMs } : {}) } });
      return {
        pid: r.pid, snapshot: id, kind: manifest.target.kind, name: r.name, stats: r.stats, timings, logPath: r.logPath, telemetry,
        ...(r.container ? { container: r.container } : {}),
      };
    } catch (err) {
      // A damaged pages image is the reason, not CRIU's "post-restore handler failed".
      throw v ? v.explain(err) : err;
    } finally {
      v?.cancel();
    }
  } finally {
    await lock.release();
  }
}

/** The name a restore runs under: --as (validated), a generated one for --clone, or the recorded one. */
function restoreName(target: { kind: string; workload?: string | undefined; id?: string }, req: RestoreRequest): string | undefined {
  if (req.as !== undefined && req.clone) throw new FerryError('ERR_USAGE', '--as and --clone contradict each other', { hint: 'give one of them' });
  if (target.kind === 'container') {
    if (req.as !== undefined) return parseContainerTarget(req.as.startsWith('container:') ? req.as : `container:${req.as}`);
    if (req.clone) return `${target.id ?? 'container'}-${suffix()}`;
    return undefined;
  }
  if (req.as !== undefined) {
    if (!validWorkloadName(req.as)) throw new FerryError('ERR_USAGE', `invalid workload name '${req.as}'`, { hint: 'use letters, digits, dot, dash and underscore (max 64)' });
    return req.as;
  }
  if (req.clone) return `${target.workload ?? 'clone'}-${suffix()}`;
  return undefined;
}

function suffix(): string {
  return Date.now().toString(36).slice(-5);
}
