import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createEngine, type Engine } from '../engine/engine.js';
import { acquireLock } from '../store/locks.js';
import type { Tier } from '../store/manifest.js';
import type { Store } from '../store/store.js';
import { readWorkload, runWorkload, workloadIsRunning, type RunOptions } from '../targets/run.js';
import { stopWorkload } from '../targets/workload-stop.js';
import { FerryError, InterruptedError, isFerryError } from '../util/errors.js';
import { identityChanges, runIdentity, type RunIdentity } from './warm-identity.js';
import { parseReadyProbe, waitReady, type ProbeContext, type ReadyProbe } from './warm-ready.js';
import { checkWarmKey, readWarm, writeWarm, type WarmRecord } from './warm-store.js';

/**
 * `ferry run --ready PROBE [--warm KEY]`: start a program and return once it is ready; with a
 * key, restore it from the snapshot taken the last time it became ready instead of booting it.
 *
 * A warm start must never be worse than a cold one: every way a warm start can go wrong (no
 * record, a damaged record, the identity changed, the snapshot gone, the restore failed, the
 * restored program not ready in time) ends in a cold boot, which takes a fresh snapshot. The old
 * snapshot is removed only once the new one is committed.
 */
export interface ReadyRunRequest {
  store: Store;
  name: string;
  command: string[];
  /** The probe's spec (warm-ready.ts); required with `warm`. */
  ready?: string;
  readyTimeoutMs: number;
  /** The warm key. */
  warm?: string;
  /** Files whose content decides the program's state (`--input`). */
  inputs?: string[];
  /** Where the warm snapshot goes (default memory, spilling to disk when the memory tier is full). */
  tier?: Tier;
  /** The environment and working directory the program runs with (default: this process's). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  run?: RunOptions;
  interrupt?: AbortSignal;
  /** Progress lines (the CLI shows them on stderr). */
  say?: (line: string) => void;
  engine?: Engine;
  /**
   * When the run began on the performance.now() clock (default: when runReady was called); the
   * CLI gives 0, its process's start, so readyMs includes ferry's own start-up.
   */
  since?: number;
}

export interface ReadyRunResult {
  pid: number;
  name: string;
  /** Restored from the key's snapshot (true), or booted. */
  warm: boolean;
  /** From the start of the run (`since`) until the probe passed; null without a probe. */
  readyMs: number | null;
  stdout: string;
  stderr: string;
  /** Why a warm run booted cold (no snapshot yet, what changed, the failed restore). */
  coldReasons?: string[];
  /** The snapshot a warm start restored, or the one this cold boot took for the next. */
  snapshot?: string;
  /** A cold boot's snapshot failed (the program runs on; the next run boots cold again). */
  snapshotError?: { code: string; message: string };
}

/** The most a restored program gets to pass its probe before the run boots cold instead. */
function warmReadyBudget(rec: WarmRecord, timeoutMs: number): number {
  return Math.min(timeoutMs, Math.max(2000, 2 * rec.coldReadyMs));
}

async function logSizes(store: Store, name: string): Promise<ProbeContext['logs']> {
  const out: ProbeContext['logs'] = [];
  for (const f of ['stdout.log', 'stderr.log']) {
    const path = join(store.workloadsDir, name, f);
    out.push({ path, from: (await stat(path).catch(() => undefined))?.size ?? 0 });
  }
  return out;
}

export async function runReady(req: ReadyRunRequest): Promise<ReadyRunResult> {
  const t0 = req.since ?? performance.now();
  const probe = req.ready !== undefined ? parseReadyProbe(req.ready) : undefined;
  if (req.warm === undefined) return coldBoot(req, probe, t0);
  const key = checkWarmKey(req.warm);
  if (!probe) throw new FerryError('ERR_USAGE', '--warm needs --ready: the snapshot is taken once the program is ready', { hint: "e.g. ferry run --warm KEY --ready tcp:6379 -- redis-server …" });
  if (req.run?.address) throw new FerryError('ERR_USAGE', '--warm and --ip do not go together yet: a restored program would need its service address before its sockets', { hint: 'run it without --ip, or without --warm' });
  const say = req.say ?? (() => undefined);
  const store = req.store;
  const engine = req.engine ?? createEngine({ store });
  const lock = await acquireLock(store.root, `warm-${key}`, `a warm run of key ${key}`);
  try {
    let rec: WarmRecord | undefined;
    const reasons: string[] = [];
    try {
      rec = await readWarm(store.root, key);
    } catch (err) {
      reasons.push(isFerryError(err) ? err.message : String(err));
    }
    const spec = { command: req.command, env: req.env ?? process.env, cwd: req.cwd ?? process.cwd(), inputs: req.inputs ?? [] };
    const identity = await runIdentity(spec, rec?.identity);
    if (!rec && reasons.length === 0) reasons.push(`no warm snapshot for key ${key} yet`);
    if (rec) {
      reasons.push(...identityChanges(rec.identity, identity));
      if (reasons.length === 0 && !(await store.find(rec.snapshot))) reasons.push(`its snapshot ${rec.snapshot} is gone`);
      if (reasons.length === 0) {
        const warm = await tryWarm(req, engine, rec, probe, t0, say);
        if ('pid' in warm) return warm;
        reasons.push(warm.failure);
        rec = { ...rec, lastFailure: { at: new Date().toISOString(), reason: warm.failure } };
        await writeWarm(store.root, rec).catch(() => undefined);
      }
    }
    say(`booting cold: ${reasons.join('; ')}`);
    const cold = await coldBoot(req, probe, t0);
    return { ...cold, coldReasons: reasons, ...await takeWarmSnapshot(req, engine, key, rec, identity, cold, say) };
  } finally {
    await lock.release();
  }
}

/** Restores the key's snapshot and waits for the probe; on any failure the restored copy is ended and why is returned. */
async function tryWarm(req: ReadyRunRequest, engine: Engine, rec: WarmRecord, probe: ReadyProbe, t0: number, say: (l: string) => void): Promise<ReadyRunResult | { failure: string }> {
  say(`restoring ${rec.snapshot}`);
  let pid: number;
  try {
    // Connections the program had when the snapshot was taken belong to the past: closed.
    const r = await engine.restore({ snapshot: rec.snapshot, as: req.name, tcpClose: true, ...(req.interrupt ? { interrupt: req.interrupt } : {}) });
    pid = r.pid;
  } catch (err) {
    if (isFerryError(err) && ['ERR_INTERRUPTED', 'ERR_WORKLOAD_RUNNING'].includes(err.code)) throw err;
    return { failure: `the restore of ${rec.snapshot} failed: ${(err as Error).message}` };
  }
  const w = await readWorkload(req.store.workloadsDir, req.name);
  const budget = warmReadyBudget(rec, req.readyTimeoutMs);
  const ctx: ProbeContext = { logs: await logSizes(req.store, req.name), startedAt: Date.now(), restored: true, pid, name: req.name };
  const alive = async () => (w ? workloadIsRunning(w) : false);
  const ready = await waitReady(probe, ctx, budget, alive, t0, req.interrupt);
  if (!ready.ready && ready.why === 'interrupted' && req.interrupt) {
    throw interrupted(req.interrupt, `${req.name} (pid ${pid}) was restored from ${rec.snapshot} and is left running; its probe had not passed yet`, req.name);
  }
  // (A log probe holds at once after a restore: the program must still be there for it to count.)
  if (ready.ready && w && await workloadIsRunning(w)) {
    return { pid, name: req.name, warm: true, readyMs: Math.round(ready.ms), stdout: w.stdout, stderr: w.stderr, snapshot: rec.snapshot };
  }
  // Not ready where a restored program should be at once: end the copy, boot cold instead.
  await stopWorkload(req.store.workloadsDir, req.name, 0).catch(() => undefined);
  return { failure: ready.ready ? `the program restored from ${rec.snapshot} is not running` : ready.why === 'exited'
    ? `the program restored from ${rec.snapshot} exited before it was ready`
    : `the program restored from ${rec.snapshot} was not ready within ${budget} ms (${ready.ms.toFixed(0)} ms since the start)` };
}

/** An interrupted wait leaves the program running: the error says so, and how to end it. */
function interrupted(signal: AbortSignal, what: string, name: string): InterruptedError {
  const sig = (typeof signal.reason === 'string' ? signal.reason : 'SIGINT') as NodeJS.Signals;
  return new InterruptedError(sig, `interrupted by ${sig}: ${what}`, { hint: `\`ferry ps\` shows it; \`ferry stop ${name}\` ends it` });
}

/** Starts the program and waits for its probe (if any). Not ready in time: ERR_NOT_READY, the program left running. */
async function coldBoot(req: ReadyRunRequest, probe: ReadyProbe | undefined, t0: number): Promise<ReadyRunResult> {
  const logs = await logSizes(req.store, req.name);
  const startedAt = Date.now();
  const rec = await runWorkload(req.store.workloadsDir, req.name, req.command, req.run ?? {});
  const base = { pid: rec.pid, name: rec.name, warm: false, stdout: rec.stdout, stderr: rec.stderr };
  if (!probe) return { ...base, readyMs: null };
  const ctx: ProbeContext = { logs, startedAt, restored: false, pid: rec.pid, name: rec.name };
  const ready = await waitReady(probe, ctx, req.readyTimeoutMs, () => workloadIsRunning(rec), t0, req.interrupt);
  if (ready.ready) return { ...base, readyMs: Math.round(ready.ms) };
  if (ready.why === 'interrupted' && req.interrupt) {
    throw interrupted(req.interrupt, `${req.name} (pid ${rec.pid}) was started and is left running; it was not ready yet (no warm snapshot taken)`, req.name);
  }
  if (ready.why === 'exited') {
    throw new FerryError('ERR_RUN', `${req.name} (pid ${rec.pid}) exited before it was ready (${req.ready ?? ''})`, {
      hint: `see its logs: ${rec.stdout}, ${rec.stderr}`,
    });
  }
  // Decision: the program is left running (it may only be slow; ending it could lose its work).
  throw new FerryError('ERR_NOT_READY', `${req.name} (pid ${rec.pid}) was not ready (${req.ready ?? ''}) within ${req.readyTimeoutMs} ms; it was left running`, {
    hint: `give it longer (--ready-timeout), check the probe against its logs (${rec.stdout}, ${rec.stderr}), and end it with \`ferry stop ${req.name}\``,
  });
}

/** The cold boot's `--leave-running` snapshot, recorded under the key; the key's old snapshot goes once it is in. */
async function takeWarmSnapshot(req: ReadyRunRequest, engine: Engine, key: string, old: WarmRecord | undefined, identity: RunIdentity, cold: ReadyRunResult, say: (l: string) => void): Promise<Pick<ReadyRunResult, 'snapshot' | 'snapshotError'>> {
  const tier = req.tier ?? 'memory';
  say(`ready after ${cold.readyMs ?? 0} ms: taking the warm snapshot`);
  try {
    const c = await engine.checkpoint({
      target: { kind: 'workload', name: cold.name },
      leaveRunning: true,
      tier,
      // Whole, not a chain: a warm snapshot outlives whatever else is taken of the workload.
      dedup: false,
      // A client connected at that moment (the probe's own connection closing) must not fail the dump.
      tcpEstablished: true,
      ...(tier === 'memory' ? { memoryBudget: { spillToDisk: true } } : {}),
      ...(req.interrupt ? { interrupt: req.interrupt } : {}),
    });
    await writeWarm(req.store.root, {
      format: 1, key, snapshot: c.snapshot, tier: c.manifest.tier, createdAt: new Date().toISOString(),
      command: req.command, ready: req.ready ?? '', coldReadyMs: cold.readyMs ?? 0, identity,
    });
    if (old && old.snapshot !== c.snapshot) await engine.remove([old.snapshot]);
    return { snapshot: c.snapshot };
  } catch (err) {
    if (isFerryError(err) && err.code === 'ERR_INTERRUPTED') throw err;
    // The program runs on, ready: the run succeeded; only the next one will not be warm.
    return { snapshotError: { code: isFerryError(err) ? err.code : 'ERR_INTERNAL', message: (err as Error).message } };
  }
}
