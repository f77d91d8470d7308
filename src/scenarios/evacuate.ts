import { hostname } from 'node:os';
import type { Engine } from '../engine/engine.js';
import type { Job } from '../engine/jobs.js';
import type { MigrateBody } from '../migrate/protocol.js';
import { containerState, runtimeRoot, type Runtime } from '../targets/container.js';
import { readWorkload, workloadIsRunning } from '../targets/workload-record.js';
import { releaseEndedAddress } from '../targets/workload-address.js';
import { destinationAddressOps } from '../migrate/addresses.js';
import { FerryError } from '../util/errors.js';
import { listEvacuands, type Evacuand } from './evacuees.js';
import { newestEvacuation, newEvacuationId, writeEvacuation, type EvacuationManifest, type Evacuee } from './evacuation-manifest.js';
import { jobError, type JobRunner } from './job-runner.js';

/**
 * `ferry host evacuate` and `ferry host restore`: every ferry-managed workload and container on
 * this host, each through the agent's jobs (so checkpoints wait for the freeze scheduler as any
 * others do) —
 *
 * - to the disk tier: a checkpoint (not --leave-running: the workloads stop, as before a reboot
 *   or kernel upgrade) per workload, all submitted at once, and a manifest of what was taken
 *   (evacuation-manifest.ts) that `host restore` reads, even after a reboot;
 * - to another host: one migration (migrate/migrate.ts, behind its commit point) per workload,
 *   one at a time, since each freezes a workload and fills the destination's memory tier.
 *
 * A workload that fails is reported with its error and where it is now (a failed checkpoint or
 * migration leaves it running here); the others go on.
 */
export interface EvacuateOptions {
  /** `disk`, or another host's agent. */
  to: 'disk' | { url: string; token?: string; name?: string };
  /** Migrations only: the strategy (default: the migration's own, `auto`). */
  strategy?: MigrateBody['strategy'];
  /** Migrations only: the tier the destination receives into (default memory). */
  tier?: 'memory' | 'disk';
  /** Checkpoint/migration options every workload gets (e.g. established TCP connections). */
  tcpEstablished?: boolean;
}

export interface EvacuatedWorkload {
  target: string;
  kind: 'process' | 'container';
  ok: boolean;
  job: string | undefined;
  /** Disk: the snapshot that holds it. */
  snapshot?: string;
  /** Migrations: its pid and name on the destination. */
  destination?: { pid: number; name: string | null };
  error?: { code: string; message: string; hint?: string };
  /** Where the workload is now. */
  where: string;
}

export interface EvacuateResult {
  ok: boolean;
  /** The manifest's id (disk) — what `host restore` reads. */
  evacuation: string | null;
  to: string;
  host: string;
  workloads: EvacuatedWorkload[];
  evacuated: number;
  failed: number;
  ms: number;
}

export async function evacuate(engine: Engine, run: JobRunner, o: EvacuateOptions): Promise<EvacuateResult> {
  const t0 = Date.now();
  const list = await listEvacuands(engine);
  if (o.to === 'disk') return evacuateToDisk(engine, run, list, o, t0);
  const to = o.to;
  const out: EvacuatedWorkload[] = [];
  for (const w of list) {
    const body: MigrateBody = {
      target: w.target, to: { url: to.url, ...(to.token !== undefined ? { token: to.token } : {}), ...(to.name !== undefined ? { name: to.name } : {}) },
      ...(o.strategy !== undefined ? { strategy: o.strategy } : {}), tier: o.tier ?? 'memory', ...(o.tcpEstablished ? { tcpEstablished: true } : {}),
    };
    const job = await run('migrate', { migrate: body });
    if (job.state === 'succeeded' && job.result) {
      const d = job.result['destination'] as { pid?: number; name?: string } | undefined;
      out.push({ target: w.target, kind: w.kind, ok: true, job: job.id, destination: { pid: d?.pid ?? 0, name: d?.name ?? null }, where: `running on ${to.name ?? to.url}` });
    } else {
      out.push({ target: w.target, kind: w.kind, ok: false, job: job.id, error: jobError(job), where: job.error?.workload ?? 'running on source' });
    }
  }
  return result(null, to.name ?? to.url, out, t0);
}

async function evacuateToDisk(engine: Engine, run: JobRunner, list: Evacuand[], o: EvacuateOptions, t0: number): Promise<EvacuateResult> {
  const root = engine.store.root;
  const m: EvacuationManifest = {
    format: 1, id: newEvacuationId(), createdAt: new Date().toISOString(), host: hostname(), state: 'running',
    workloads: list.map((w) => ({ target: w.target, kind: w.kind, state: 'pending', ...(w.address ? { address: w.address } : {}) })),
  };
  await writeEvacuation(root, m);
  // Manifest writes are serialised: jobs end in any order.
  let writing = Promise.resolve();
  const save = () => { writing = writing.then(() => writeEvacuation(root, m)); return writing; };
  const out = await Promise.all(list.map(async (w, i): Promise<EvacuatedWorkload> => {
    const entry = m.workloads[i]!;
    let job: Job;
    try {
      job = await run('checkpoint', {
        target: w.target, tier: 'disk', leaveRunning: false,
        ...(w.runtime ? { runtime: w.runtime, runtimeRoot: runtimeRoot(w.runtime) } : {}),
        ...(o.tcpEstablished ? { tcpEstablished: true } : {}),
      });
    } catch (err) {
      const error = errorOf(err);
      Object.assign(entry, { state: 'failed', error } satisfies Partial<Evacuee>);
      await save();
      return { target: w.target, kind: w.kind, ok: false, job: undefined, error, where: 'running here' };
    }
    entry.job = job.id;
    if (job.state === 'succeeded' && typeof job.result?.['snapshot'] === 'string') {
      entry.state = 'evacuated';
      entry.snapshot = job.result['snapshot'];
      await save();
      // Its service address leaves with it (the restore takes it again); a failure here only delays that to the next `ferry ps`.
      if (w.address) await releaseEnded(engine, w.target).catch(() => undefined);
      return { target: w.target, kind: w.kind, ok: true, job: job.id, snapshot: entry.snapshot, where: `in snapshot ${entry.snapshot} (disk tier)` };
    }
    const error = jobError(job);
    entry.state = 'failed';
    entry.error = error;
    await save();
    // A failed checkpoint without --leave-running resumes the tree (CRIU's own rule, and ferry's).
    return { target: w.target, kind: w.kind, ok: false, job: job.id, error, where: 'running here (the checkpoint failed; CRIU resumed it)' };
  }));
  m.state = 'complete';
  m.endedAt = new Date().toISOString();
  await save();
  return result(m.id, 'disk', out, t0);
}

function result(id: string | null, to: string, workloads: EvacuatedWorkload[], t0: number): EvacuateResult {
  const failed = workloads.filter((w) => !w.ok).length;
  return { ok: failed === 0, evacuation: id, to, host: hostname(), workloads, evacuated: workloads.length - failed, failed, ms: Date.now() - t0 };
}

export interface RestoredWorkload {
  target: string;
  kind: 'process' | 'container';
  snapshot: string;
  ok: boolean;
  /** Restored earlier (by a previous `host restore`) and still running: nothing done. */
  already?: boolean;
  pid?: number;
  job?: string;
  /** The checks passed: the images verified by the restore (before the workload ran), and the workload alive after it. */
  verified: boolean;
  error?: { code: string; message: string; hint?: string };
}

export interface RestoreEvacuationResult {
  ok: boolean;
  evacuation: string;
  evacuatedAt: string;
  workloads: RestoredWorkload[];
  /** Workloads the evacuation failed to take (they were never stopped): listed, not restored. */
  notEvacuated: { target: string; error?: { code: string; message: string } }[];
  restored: number;
  failed: number;
  ms: number;
}

/** How long a restored workload must stay alive to count as restored. */
const ALIVE_AFTER_MS = 300;

/**
 * Restores every workload of the newest evacuation manifest (all submitted at once: the job
 * admission orders them), each verified — the restore checks the images against their checksums
 * and the pages before any restored code runs; then the workload must still run a moment later —
 * and records the outcome in the manifest. A workload restored by an earlier `host restore` that
 * still runs is reported, not restored twice; a failed one is reported and the others go on.
 */
export async function restoreEvacuation(engine: Engine, run: JobRunner): Promise<RestoreEvacuationResult> {
  const t0 = Date.now();
  const root = engine.store.root;
  const m = await newestEvacuation(root);
  let writing = Promise.resolve();
  const save = () => { writing = writing.then(() => writeEvacuation(root, m)); return writing; };
  const todo = m.workloads.filter((w) => w.state === 'evacuated' && w.snapshot !== undefined);
  const addressOps = destinationAddressOps(engine.store.workloadsDir);
  const out = await Promise.all(todo.map(async (w): Promise<RestoredWorkload> => {
    const snapshot = w.snapshot!;
    if (w.restored?.ok && w.restored.pid !== undefined && await stillRuns(w, w.restored.pid, engine.store.workloadsDir)) {
      return { target: w.target, kind: w.kind, snapshot, ok: true, already: true, pid: w.restored.pid, verified: true };
    }
    let job: Job;
    // Its service address comes back first, inbound traffic held until the sockets are restored.
    const address = w.address ? { address: w.address.address, prefix: w.address.prefix, ...(w.address.dev !== undefined ? { dev: w.address.dev } : {}) } : undefined;
    try {
      if (address) {
        // (Still up only if nothing released it since: then it is this workload's, which ended. Another's is refused.)
        await releaseEnded(engine, w.target).catch(() => undefined);
        await addressOps.prepare(address);
      }
      job = await run('restore', { snapshot });
    } catch (err) {
      if (address) await addressOps.remove(address).catch(() => undefined);
      const error = errorOf(err);
      w.restored = { at: new Date().toISOString(), ok: false, error };
      await save();
      return { target: w.target, kind: w.kind, snapshot, ok: false, verified: false, error };
    }
    if (job.state !== 'succeeded' || typeof job.result?.['pid'] !== 'number') {
      if (address) await addressOps.remove(address).catch(() => undefined);
      const error = jobError(job);
      w.restored = { at: new Date().toISOString(), ok: false, job: job.id, error };
      await save();
      return { target: w.target, kind: w.kind, snapshot, ok: false, job: job.id, verified: false, error };
    }
    if (address) {
      // As a migration's destination does: traffic in, the announcement sent (arping lingers: not awaited), the record told.
      await addressOps.release(address).catch(() => undefined);
      await addressOps.attach(w.target, address).catch(() => undefined);
    }
    const pid = job.result['pid'];
    await new Promise((r) => setTimeout(r, ALIVE_AFTER_MS));
    const alive = await stillRuns(w, pid, engine.store.workloadsDir);
    const error = alive ? undefined : { code: 'ERR_TARGET_DIED', message: `${w.target} was restored (pid ${pid}) but is not running ${ALIVE_AFTER_MS} ms later`, hint: `see its logs and the restore log of ${snapshot} under the store's logs/` };
    w.restored = { at: new Date().toISOString(), ok: alive, pid, job: job.id, ...(error ? { error } : {}) };
    await save();
    return { target: w.target, kind: w.kind, snapshot, ok: alive, pid, job: job.id, verified: alive, ...(error ? { error } : {}) };
  }));
  const failed = out.filter((w) => !w.ok).length;
  return {
    ok: failed === 0, evacuation: m.id, evacuatedAt: m.createdAt, workloads: out,
    notEvacuated: m.workloads.filter((w) => w.state !== 'evacuated').map((w) => ({ target: w.target, ...(w.error ? { error: { code: w.error.code, message: w.error.message } } : {}) })),
    restored: out.length - failed, failed, ms: Date.now() - t0,
  };
}

/** Does the restored workload run: its record (pid and start time) for a `ferry run` one, the runtime's state for a container. */
async function stillRuns(w: Evacuee, pid: number, storeWorkloads: string): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  if (w.kind === 'container') {
    const id = w.target.slice('container:'.length);
    for (const rt of ['crun', 'runc'] as Runtime[]) {
      const st = await containerState(rt, runtimeRoot(rt), id).catch(() => undefined);
      if (st) return st.status === 'running' && st.pid === pid;
    }
    return false;
  }
  const rec = await readWorkload(storeWorkloads, w.target);
  return rec !== undefined && rec.pid === pid && await workloadIsRunning(rec);
}

/** Removes the service address of a workload that ended (its checkpoint stopped it). */
async function releaseEnded(engine: Engine, name: string): Promise<void> {
  const rec = await readWorkload(engine.store.workloadsDir, name);
  if (rec) await releaseEndedAddress(engine.store.workloadsDir, rec);
}

function errorOf(err: unknown): { code: string; message: string; hint?: string } {
  if (err instanceof FerryError) return { code: err.code, message: err.message, ...(err.hint !== undefined ? { hint: err.hint } : {}) };
  return { code: 'ERR_INTERNAL', message: err instanceof Error ? err.message : String(err) };
}
