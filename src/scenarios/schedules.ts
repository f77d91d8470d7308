import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import type { Engine } from '../engine/engine.js';
import { writeFileAtomic } from '../store/layout.js';
import { isErrorCode } from '../util/error-codes.js';
import { errorJson, FerryError } from '../util/errors.js';
import { jobError, type JobRunner } from './job-runner.js';
import { DEFAULT_REPLICA_TRANSPORT, type ReplicaTransport } from './replicate-snapshot.js';

/**
 * `ferry schedule`: periodic `--leave-running` snapshots of one workload, run by the agent, with
 * retention (the schedule's newest `keep` snapshots stay; older ones of *its own* are removed —
 * the user's other snapshots are never touched) and, optionally, each new snapshot replicated to
 * a standby host (replicate-snapshot.ts), where `ferry failover` restores the newest complete
 * one. Snapshots use the `newest-flat` page dedup: unchanged pages are stored once, and the
 * newest stays whole (the one that is sent, and the one a crash recovery restores).
 *
 * A schedule is persisted in `<store>/schedules/<id>.json` (atomically, mode 0600: it may hold
 * the standby's token) with what it took, so an agent restarted finds it, keeps its retention
 * and goes on. Runs are fixed-rate and never overlap: a run that takes longer than the interval
 * starts the next one at once. A failed snapshot or replication is counted and shown (`schedule
 * ls`, /metrics) and the schedule goes on; the workload is never stopped by it.
 */
export const SCHEDULE_ID = /^s-[0-9a-f]{12}$/;

const Peer = z.strictObject({ url: z.string().max(2048), token: z.string().max(4096).optional(), name: z.string().max(64).optional() });
const Err = z.object({ code: z.string(), message: z.string(), hint: z.string().optional() });

export const ScheduleStateSchema = z.object({
  format: z.literal(1),
  id: z.string().regex(SCHEDULE_ID),
  target: z.string().min(1).max(300),
  everyMs: z.number().int().min(1),
  keep: z.number().int().min(1).max(10_000),
  tier: z.enum(['memory', 'disk']),
  replicateTo: Peer.optional(),
  createdAt: z.string(),
  /** The schedule's own snapshots here, oldest first. */
  snapshots: z.array(z.object({ id: z.string(), takenAt: z.string() })),
  /** Its replicas on the standby, oldest first: the standby's snapshot id and when the source took it. */
  replicas: z.array(z.object({ replica: z.string(), snapshot: z.string(), takenAt: z.string(), sentAt: z.string() })),
  runs: z.number().int().min(0),
  failures: z.number().int().min(0),
  replicationFailures: z.number().int().min(0),
  lastRunAt: z.string().optional(),
  lastError: Err.optional(),
  lastReplicationError: Err.optional(),
});
export type ScheduleState = z.infer<typeof ScheduleStateSchema>;

export interface ScheduleInput {
  target: string;
  everyMs: number;
  keep?: number;
  tier?: 'memory' | 'disk';
  replicateTo?: { url: string; token?: string | undefined; name?: string | undefined };
}

/** What `schedule ls` shows: the state without the token, with ages computed now. */
export interface ScheduleView extends Omit<ScheduleState, 'replicateTo' | 'format'> {
  replicateTo: { url: string; name: string | null } | null;
  lastSnapshot: string | null;
  lastSnapshotAt: string | null;
  /** Seconds since the newest snapshot was taken (null: none yet). */
  lastSnapshotAgeSeconds: number | null;
  /** Seconds of state a failover on the standby would lose now: since the newest replicated snapshot was taken. */
  replicationLagSeconds: number | null;
}

export interface SchedulesOptions {
  engine: Engine;
  run: JobRunner;
  /** This agent's URL, as the standby's replica records name the source. */
  selfUrl?: string;
  /** How replicas travel and are removed on the standby (default: replicate-snapshot.ts over the migration wire). */
  replicas?: ReplicaTransport;
  /** Fewer than this between runs is refused (default 1 s; tests may go lower). */
  minEveryMs?: number;
}

interface Live {
  state: ScheduleState;
  stop: AbortController;
  /** The loop; resolves once it stopped (its current run finished). */
  loop: Promise<void>;
}

export class Schedules {
  private readonly all = new Map<string, Live>();
  private readonly dir: string;
  private readonly transport: ReplicaTransport;
  private closed = false;
  /** This agent's URL (known once it listens), as the standby's replica records name the source. */
  selfUrl: string | undefined;

  constructor(private readonly o: SchedulesOptions) {
    this.selfUrl = o.selfUrl;
    this.dir = join(o.engine.store.root, 'schedules');
    this.transport = o.replicas ?? DEFAULT_REPLICA_TRANSPORT;
  }

  /** Starts the schedules an earlier agent left (an unreadable record is reported, and kept for a person to look at). */
  async load(): Promise<{ loaded: string[]; unreadable: { file: string; reason: string }[] }> {
    const loaded: string[] = [];
    const unreadable: { file: string; reason: string }[] = [];
    for (const n of await readdir(this.dir).catch(() => [] as string[])) {
      if (!n.endsWith('.json') || n.startsWith('.')) continue;
      try {
        const s = ScheduleStateSchema.parse(JSON.parse(await readFile(join(this.dir, n), 'utf8')));
        if (`${s.id}.json` !== n || this.all.has(s.id)) continue;
        this.begin(s, true);
        loaded.push(s.id);
      } catch (err) {
        const reason = err instanceof z.ZodError ? `${err.issues[0]?.path.join('.') ?? ''}: ${err.issues[0]?.message ?? 'invalid'}` : err instanceof Error ? err.message : String(err);
        unreadable.push({ file: join(this.dir, n), reason: reason.slice(0, 300) });
      }
    }
    return { loaded, unreadable };
  }

  /**
   * Adds a schedule. Its first snapshot is taken now: a target that cannot be checkpointed (no
   * such workload, not running) is refused with that error and nothing is kept. A first
   * replication that fails does not refuse it (the standby may come up later): the view says so.
   */
  async add(input: ScheduleInput): Promise<ScheduleView> {
    if (this.closed) throw new FerryError('ERR_USAGE', 'the agent is stopping: no new schedules');
    const min = this.o.minEveryMs ?? 1000;
    if (!Number.isFinite(input.everyMs) || input.everyMs < min) throw new FerryError('ERR_BAD_OPTION', `--every must be at least ${min} ms, not ${input.everyMs} ms`, { hint: 'e.g. --every 30s' });
    const keep = input.keep ?? 3;
    if (!Number.isInteger(keep) || keep < 1) throw new FerryError('ERR_BAD_OPTION', `--keep must be a whole number ≥ 1, not ${keep}`);
    for (const l of this.all.values()) {
      if (l.state.target === input.target) throw new FerryError('ERR_ALREADY_RUNNING', `${input.target} already has schedule ${l.state.id}`, { hint: `remove it first (\`ferry schedule rm ${l.state.id}\`)` });
    }
    const s: ScheduleState = {
      format: 1, id: `s-${randomBytes(6).toString('hex')}`, target: input.target, everyMs: input.everyMs, keep, tier: input.tier ?? 'disk',
      ...(input.replicateTo ? { replicateTo: clean(input.replicateTo) } : {}),
      createdAt: new Date().toISOString(), snapshots: [], replicas: [], runs: 0, failures: 0, replicationFailures: 0,
    };
    const first = await this.snapshot(s, undefined);
    if ('error' in first) {
      const code = isErrorCode(first.error.code) ? first.error.code : 'ERR_INTERNAL';
      throw new FerryError(code, `cannot schedule ${input.target}: ${first.error.message}`, first.error.hint !== undefined ? { hint: first.error.hint } : {});
    }
    this.all.set(s.id, { state: s, stop: new AbortController(), loop: Promise.resolve() });
    await this.save(s);
    // Its first replication is the loop's first step (a standby that is slow to answer must not hold this answer).
    this.begin(s, false);
    return this.view(s);
  }

  /** Stops a schedule (its run in progress finishes) and forgets it; its snapshots and replicas stay. */
  async remove(id: string): Promise<ScheduleView> {
    const l = this.get(id);
    l.stop.abort();
    await l.loop;
    this.all.delete(id);
    await rm(join(this.dir, `${id}.json`), { force: true });
    return this.view(l.state);
  }

  list(): ScheduleView[] {
    return [...this.all.values()].map((l) => this.view(l.state)).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** Stops every loop, waiting for runs in progress (agent shutdown); the records stay for the next agent. */
  async close(): Promise<void> {
    this.closed = true;
    for (const l of this.all.values()) l.stop.abort();
    await Promise.all([...this.all.values()].map((l) => l.loop));
  }

  private get(id: string): Live {
    const l = this.all.get(id);
    if (!l) throw new FerryError('ERR_NO_SCHEDULE', `no schedule '${id.slice(0, 80)}' on this agent`, { hint: 'list them with `ferry schedule ls`' });
    return l;
  }

  /** Starts the loop: the next run one interval after the last (at once when that is past). */
  private begin(s: ScheduleState, reloaded: boolean): void {
    const stop = this.all.get(s.id)?.stop ?? new AbortController();
    const live: Live = { state: s, stop, loop: Promise.resolve() };
    this.all.set(s.id, live);
    live.loop = (async () => {
      if (!reloaded) {
        await this.replicateNewest(s, stop.signal).catch(() => undefined);
        await this.save(s).catch(() => undefined);
      }
      let last = s.lastRunAt !== undefined ? Date.parse(s.lastRunAt) : reloaded ? 0 : Date.now();
      while (!stop.signal.aborted) {
        await sleep(Math.max(0, last + s.everyMs - Date.now()), stop.signal);
        if (stop.signal.aborted) break;
        last = Date.now();
        // (Its errors are in its state; a record that cannot be written is retried next run.)
        await this.runOnce(s, stop.signal).catch(() => undefined);
      }
    })();
  }

  private async runOnce(s: ScheduleState, signal: AbortSignal): Promise<void> {
    const r = await this.snapshot(s, signal);
    if (!('error' in r)) {
      await this.retain(s);
      await this.replicateNewest(s, signal);
    }
    await this.save(s);
  }

  /** One snapshot, as a checkpoint job (the freeze scheduler admits it like any other). */
  private async snapshot(s: ScheduleState, signal: AbortSignal | undefined): Promise<{ id: string } | { error: NonNullable<ScheduleState['lastError']> }> {
    s.runs++;
    s.lastRunAt = new Date().toISOString();
    if (signal?.aborted) return { error: { code: 'ERR_INTERRUPTED', message: 'the schedule stopped' } };
    let err: NonNullable<ScheduleState['lastError']>;
    try {
      const job = await this.o.run('checkpoint', { target: s.target, tier: s.tier, leaveRunning: true, dedup: 'newest-flat', memoryBudget: { spillToDisk: true } });
      const id = job.result?.['snapshot'];
      if (job.state === 'succeeded' && typeof id === 'string') {
        s.snapshots.push({ id, takenAt: await this.takenAt(id) });
        delete s.lastError;
        return { id };
      }
      err = jobError(job);
    } catch (e) {
      const j = errorJson(e) as { code: string; message: string; hint?: string };
      err = { code: j.code, message: j.message, ...(j.hint !== undefined ? { hint: j.hint } : {}) };
    }
    s.failures++;
    s.lastError = err;
    return { error: err };
  }

  private async takenAt(id: string): Promise<string> {
    try {
      return (await this.o.engine.inspect(id)).manifest.createdAt;
    } catch {
      return new Date().toISOString();
    }
  }

  /** Keeps the schedule's newest `keep` snapshots; the older ones of its own go (a failed removal is retried next run). */
  private async retain(s: ScheduleState): Promise<void> {
    const old = s.snapshots.slice(0, Math.max(0, s.snapshots.length - s.keep));
    if (!old.length) return;
    const out = await this.o.engine.remove(old.map((x) => x.id));
    const gone = new Set(out.filter((r) => r.ok || isFerryCode(r.error, 'ERR_NO_SNAPSHOT')).map((r) => r.id));
    s.snapshots = s.snapshots.filter((x) => !gone.has(x.id));
  }

  private async replicateNewest(s: ScheduleState, signal: AbortSignal | undefined): Promise<void> {
    const to = s.replicateTo;
    const newest = s.snapshots.at(-1);
    if (!to || !newest || s.replicas.some((r) => r.snapshot === newest.id)) return;
    try {
      const r = await this.transport.send({
        engine: this.o.engine, snapshot: newest.id, to, from: { host: hostname(), url: this.selfUrl, schedule: s.id },
        ...(signal ? { signal } : {}),
      });
      s.replicas.push({ replica: r.replica, snapshot: newest.id, takenAt: newest.takenAt, sentAt: new Date().toISOString() });
      delete s.lastReplicationError;
    } catch (e) {
      const j = errorJson(e) as { code: string; message: string; hint?: string };
      s.replicationFailures++;
      s.lastReplicationError = { code: j.code, message: j.message, ...(j.hint !== undefined ? { hint: j.hint } : {}) };
      return;
    }
    // The standby keeps as many as here; one it cannot remove now is retried next run.
    const old = s.replicas.slice(0, Math.max(0, s.replicas.length - s.keep));
    for (const r of old) {
      try {
        await this.transport.drop(to, r.replica);
      } catch (e) {
        if (!isFerryCode(e, 'ERR_NO_SNAPSHOT') && !isFerryCode(e, 'ERR_NO_REPLICA')) continue;
      }
      s.replicas = s.replicas.filter((x) => x !== r);
    }
  }

  private async save(s: ScheduleState): Promise<void> {
    if (!this.all.has(s.id)) return; // removed meanwhile: no record comes back
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(join(this.dir, `${s.id}.json`), JSON.stringify(s, null, 2));
  }

  private view(s: ScheduleState): ScheduleView {
    const { format: _, replicateTo, ...rest } = s;
    const newest = s.snapshots.at(-1);
    const replicated = s.replicas.at(-1);
    const age = (t: string | undefined) => (t === undefined ? null : Math.max(0, (Date.now() - Date.parse(t)) / 1000));
    return {
      ...structuredClone(rest),
      replicateTo: replicateTo ? { url: replicateTo.url, name: replicateTo.name ?? null } : null,
      lastSnapshot: newest?.id ?? null, lastSnapshotAt: newest?.takenAt ?? null,
      lastSnapshotAgeSeconds: age(newest?.takenAt),
      replicationLagSeconds: replicateTo ? age(replicated?.takenAt) : null,
    };
  }
}

const clean = (p: NonNullable<ScheduleInput['replicateTo']>) => ({ url: p.url, ...(p.token !== undefined ? { token: p.token } : {}), ...(p.name !== undefined ? { name: p.name } : {}) });

function isFerryCode(e: unknown, code: string): boolean {
  return e instanceof FerryError && e.code === code;
}

/** Waits `ms`, or less when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    t.unref();
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
