import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { errorJson, FerryError, isFerryError } from '../util/errors.js';
import { LimitAdmission, type Admission } from './admission.js';
import type { JobJournal } from './job-journal.js';
import type { Admission as FreezeScheduler } from '../scheduler/admission.js';
import { pagesProgress } from '../scheduler/pages-progress.js';
import { engineChannels, type PhaseEvent, type TransferEvent } from './channels.js';
import type { CheckpointRequest, Engine, RestoreRequest } from './engine.js';
import type { FreezeRequest } from './checkpoint.js';
import { checkpointJson, restoreJson } from './result-json.js';

/**
 * Jobs: every checkpoint and restore as a record that can be queued, watched, cancelled and
 * measured — what the agent serves. A job runs its operation inside an AsyncLocalStorage scope,
 * so the engine's phase events (published synchronously, in the operation's async context) are
 * attributed to it without the engine knowing about jobs. Records live in memory only (surviving
 * a restart is a later slice).
 */
export type JobKind = 'checkpoint' | 'restore' | 'migrate';
export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export const FINAL_STATES: readonly JobState[] = ['succeeded', 'failed', 'cancelled'];

export type JobRequest = Omit<CheckpointRequest, 'interrupt'> | Omit<RestoreRequest, 'interrupt'> | MigrateJobRequest;

/** A migration job's request: what the migration runner (migrate/migrate.ts, given by the agent) takes. */
export interface MigrateJobRequest { migrate: Record<string, unknown> }

/** Runs a migration job (kept out of the engine: the agent passes migrate/migrate.ts in). */
export type MigrationRunner = (req: MigrateJobRequest, interrupt: AbortSignal) => Promise<Record<string, unknown>>;

export interface JobPhase {
  name: string;
  state: 'running' | 'done';
  startedAt: string;
  ms?: number;
}

export interface JobError {
  code: string;
  message: string;
  hint?: string;
  /** The phase that was running when it failed. */
  phase?: string;
  /** Migrations: where the workload is now ("running on source", …). */
  workload?: string;
}

export interface Job {
  id: string;
  kind: JobKind;
  state: JobState;
  /** Higher is admitted first (default 0); present when the request gave one. */
  priority?: number;
  /**
   * Queued jobs only: the place in the agent's waiting line, 1 = next. The line is the checkpoints
   * waiting for a freeze slot (their CRIU started, their workloads running), then the jobs not
   * started yet; a place can change as jobs of a higher priority arrive.
   */
  queuePosition?: number;
  /** Queued jobs only: how many wait in that line. */
  queueLength?: number;
  phases: JobPhase[];
  /** The same shape as the CLI's `--json` output for the command. */
  result?: Record<string, unknown>;
  error?: JobError;
  createdAt: string;
  startedAt?: string;
  endedAt?: string;
}

/**
 * What a job's stream says: its state changes (with the job), its engine phases, and — while it
 * waits — its place in the line whenever that moves (`progress`).
 */
export type JobEvent =
  | { type: 'state'; state: JobState; job: Job }
  | { type: 'phase'; phase: string; state: 'start' | 'end'; ms?: number }
  | { type: 'progress'; queuePosition: number; queueLength: number }
  /** A migration's images on their way: bytes sent so far of about totalBytes. */
  | { type: 'transfer'; bytes: number; totalBytes: number };

export interface SubmitOptions {
  /** Higher is admitted first, by the job admission and by the freeze scheduler (default 0). */
  priority?: number;
}

interface Entry {
  job: Job;
  request: JobRequest;
  controller: AbortController;
  cancelRequested: boolean;
  events: JobEvent[];
  emitter: EventEmitter;
  done: Promise<void>;
  /** The place last reported, `position/length` (so only moves are sent). */
  reportedPlace?: string | undefined;
}

export interface JobsOptions {
  engine: Engine;
  /** When a job may start. Default: one operation at a time. */
  admission?: Admission;
  /**
   * The freeze scheduler (src/scheduler/): a checkpoint job's CRIU starts, then waits at CRIU's
   * pre-dump for its turn, so a waiting workload is not frozen; its slot is freed at post-dump,
   * when its images are complete. Without it, only `admission` orders jobs.
   */
  scheduler?: FreezeScheduler;
  /** Finished jobs kept for GET (oldest dropped first). */
  keepFinished?: number;
  /** Runs migration jobs (without it, a migration job fails: this agent cannot migrate). */
  migrate?: MigrationRunner;
  /**
   * Where job records outlive this process. At start-up, jobs a previous process left queued or
   * running are reported failed with ERR_INTERRUPTED (their checkpoints were finished or undone
   * by the engine's crash recovery).
   */
  journal?: JobJournal<Job>;
}

const JOB_ID = /^j-[0-9a-f]{16}$/;

/** Job ids are `j-` and 16 hex digits. */
export function isJobId(id: string): boolean {
  return JOB_ID.test(id);
}

export class Jobs {
  readonly admission: Admission;
  readonly scheduler: FreezeScheduler | undefined;
  private readonly engine: Engine;
  private readonly keepFinished: number;
  private readonly migrator: MigrationRunner | undefined;
  private readonly journal: JobJournal<Job> | undefined;
  private readonly entries = new Map<string, Entry>();
  private readonly scope = new AsyncLocalStorage<string>();
  /** Telemetry id → job id, learnt from the first phase event seen in a job's scope. */
  private readonly byOperation = new Map<number, string>();
  private readonly onPhase = (m: unknown) => this.phaseEvent(m as PhaseEvent);
  private readonly onTransfer = (m: unknown) => this.transferEvent(m as TransferEvent);
  private readonly observers = new Set<(job: Job, e: JobEvent) => void>();
  private readonly unwatch: (() => void)[] = [];

  constructor(options: JobsOptions) {
    this.engine = options.engine;
    this.admission = options.admission ?? new LimitAdmission(1);
    this.scheduler = options.scheduler;
    this.keepFinished = options.keepFinished ?? 1000;
    this.migrator = options.migrate;
    this.journal = options.journal;
    if (this.journal) this.reload(this.journal);
    engineChannels.phase.subscribe(this.onPhase);
    engineChannels.transfer.subscribe(this.onTransfer);
    const moved = () => this.lineMoved();
    if (this.admission.onChange) this.unwatch.push(this.admission.onChange(moved));
    if (this.scheduler) this.unwatch.push(this.scheduler.onChange(moved));
  }

  /**
   * The waiting line, next first: checkpoints at their freeze gate (CRIU started, the workload
   * running), then jobs not started yet.
   */
  queue(): string[] {
    return [...(this.scheduler?.waiting() ?? []), ...this.admission.waiting()];
  }

  /** Tells each queued job whose place moved. */
  private lineMoved(): void {
    const line = this.queue();
    for (const entry of this.entries.values()) {
      // (A job joins the line before its first event, which then carries its place.)
      if (entry.job.state !== 'queued' || entry.events.length === 0) continue;
      const i = line.indexOf(entry.job.id);
      if (i < 0) continue; // just admitted: its 'running' follows
      const place = `${i + 1}/${line.length}`;
      if (place === entry.reportedPlace) continue;
      entry.reportedPlace = place;
      this.emit(entry, { type: 'progress', queuePosition: i + 1, queueLength: line.length });
    }
  }

  /** Jobs of earlier agents: finished ones as they were; unfinished ones failed, interrupted. */
  private reload(journal: JobJournal<Job>): void {
    for (const job of journal.load()) {
      if (!FINAL_STATES.includes(job.state)) {
        job.state = 'failed';
        job.endedAt = new Date().toISOString();
        job.error = {
          code: 'ERR_INTERRUPTED',
          message: 'the agent stopped while this job was queued or running',
          hint: job.kind === 'checkpoint'
            ? 'the workload runs on, or its complete snapshot was committed by the store\'s crash recovery: see the store\'s snapshots and workloads'
            : 'see the store\'s workloads: the restore may or may not have happened',
        };
        delete job.queuePosition;
        delete job.queueLength;
        journal.save(job);
      }
      const entry: Entry = {
        job, request: {} as JobRequest, controller: new AbortController(), cancelRequested: false,
        events: [{ type: 'state', state: job.state, job: structuredClone(job) }], emitter: new EventEmitter(), done: Promise.resolve(),
      };
      this.entries.set(job.id, entry);
    }
    this.prune();
  }

  /** Every event of every job (metrics and logs). */
  observe(fn: (job: Job, e: JobEvent) => void): () => void {
    this.observers.add(fn);
    return () => this.observers.delete(fn);
  }

  submit(kind: JobKind, request: JobRequest, options: SubmitOptions = {}): Job {
    const id = `j-${randomBytes(8).toString('hex')}`;
    const entry: Entry = {
      job: { id, kind, state: 'queued', ...(options.priority !== undefined ? { priority: options.priority } : {}), phases: [], createdAt: new Date().toISOString() },
      request, controller: new AbortController(), cancelRequested: false, events: [], emitter: new EventEmitter(),
      done: Promise.resolve(),
    };
    this.entries.set(id, entry);
    try {
      this.journal?.save(entry.job);
    } catch {
      // history only (see setState)
    }
    entry.done = this.run(entry); // joins the admission's line at once
    this.emitState(entry);
    return this.view(entry);
  }

  get(id: string): Job | undefined {
    const e = this.entries.get(id);
    return e && this.view(e);
  }

  list(): Job[] {
    return [...this.entries.values()].map((e) => this.view(e));
  }

  /** Resolves when the job has reached its final state. */
  async settled(id: string): Promise<Job | undefined> {
    const e = this.entries.get(id);
    if (!e) return undefined;
    await e.done;
    return this.view(e);
  }

  /**
   * Cancels a job: a queued one at once; a running one through its operation's interrupt (a
   * checkpoint stops at its safe point: CRIU resumes the tree, or the commit finishes first and
   * the job succeeds). False when the job had already finished.
   */
  cancel(id: string, reason: NodeJS.Signals = 'SIGTERM'): boolean | undefined {
    const e = this.entries.get(id);
    if (!e) return undefined;
    if (FINAL_STATES.includes(e.job.state)) return false;
    e.cancelRequested = true;
    e.controller.abort(reason);
    return true;
  }

  /**
   * The job's events so far, then each new one, until its final state. Returns an unsubscribe.
   * `onEvent` is called synchronously for the replayed ones.
   */
  subscribe(id: string, onEvent: (e: JobEvent) => void): (() => void) | undefined {
    const e = this.entries.get(id);
    if (!e) return undefined;
    for (const ev of e.events) onEvent(ev);
    e.emitter.on('event', onEvent);
    return () => e.emitter.off('event', onEvent);
  }

  /** Cancels every unfinished job and waits for all to settle (graceful shutdown). */
  async close(reason: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    for (const id of this.entries.keys()) this.cancel(id, reason);
    await Promise.all([...this.entries.values()].map((e) => e.done));
    engineChannels.phase.unsubscribe(this.onPhase);
    engineChannels.transfer.unsubscribe(this.onTransfer);
    for (const u of this.unwatch.splice(0)) u();
  }

  private async run(entry: Entry): Promise<void> {
    const { job, controller } = entry;
    let release: (() => void) | undefined;
    try {
      release = await this.admission.acquire(job, controller.signal);
    } catch {
      return this.finish(entry, 'cancelled', { error: { code: 'ERR_CANCELLED', message: 'cancelled while queued; the operation never started' } });
    }
    try {
      job.startedAt = new Date().toISOString();
      this.setState(entry, 'running');
      const result = await this.scope.run(job.id, () => this.operate(entry));
      this.finish(entry, 'succeeded', { result });
    } catch (err) {
      // The phase it failed in: the last one that started (its end is published as the error unwinds).
      const last = job.phases.at(-1);
      const { code, message, hint, phase, workload } = errorJson(err) as { code: string; message: string; hint?: string; phase?: string; workload?: string };
      const named = phase ?? last?.name;
      const error: JobError = { code, message, ...(hint ? { hint } : {}), ...(named ? { phase: named } : {}), ...(workload ? { workload } : {}) };
      const cancelled = entry.cancelRequested && isFerryError(err, 'ERR_INTERRUPTED');
      this.finish(entry, cancelled ? 'cancelled' : 'failed', { error });
    } finally {
      release();
    }
  }

  private async operate(entry: Entry): Promise<Record<string, unknown>> {
    const interrupt = entry.controller.signal;
    if (entry.job.kind === 'checkpoint') {
      const req = entry.request as CheckpointRequest;
      const sched = this.scheduler;
      let release: (() => void) | undefined;
      // Ends a request still waiting when the checkpoint ends another way (its target died, CRIU failed).
      const over = new AbortController();
      const gate = sched ? {
        // CRIU has started and waits at pre-dump with the tree running: the job is queued again,
        // with its place in the line, until the scheduler's budgets admit its bytes.
        beforeFreeze: async (dump: FreezeRequest) => {
          // (Its progress — the share of its pages written — is what a staggered policy admits the next freeze by.)
          const p = sched.acquire({
            bytes: dump.bytes, tier: dump.tier, priority: entry.job.priority ?? 0, signal: AbortSignal.any([interrupt, over.signal]), id: entry.job.id,
            progress: pagesProgress(dump.imagesDir, dump.bytes),
          });
          const waits = (sched.queuePosition(entry.job.id) ?? 0) > 0;
          if (waits) this.setState(entry, 'queued');
          // (Should the wait end otherwise — cancelled, the target died — the job's end follows.)
          const r = await p;
          if (over.signal.aborted) r();
          else release = r;
          if (waits) this.setState(entry, 'running');
        },
        afterFreeze: () => release?.(),
      } : {};
      try {
        const r = await this.engine.checkpoint({ ...req, ...gate, interrupt });
        return checkpointJson(r, interrupt.aborted ? { deferredInterrupt: String(interrupt.reason) } : {});
      } finally {
        over.abort();
        release?.();
      }
    }
    if (entry.job.kind === 'migrate') {
      if (!this.migrator) throw new FerryError('ERR_USAGE', 'this agent does not run migrations');
      return this.migrator(entry.request as MigrateJobRequest, interrupt);
    }
    return restoreJson(await this.engine.restore({ ...(entry.request as RestoreRequest), interrupt }));
  }

  private transferEvent(e: TransferEvent): void {
    const id = this.scope.getStore() ?? this.byOperation.get(e.id);
    const entry = id === undefined ? undefined : this.entries.get(id);
    if (!entry || FINAL_STATES.includes(entry.job.state)) return;
    this.emit(entry, { type: 'transfer', bytes: e.bytes, totalBytes: e.totalBytes });
  }

  private phaseEvent(e: PhaseEvent): void {
    let id = this.scope.getStore();
    if (id !== undefined) this.byOperation.set(e.id, id);
    else id = this.byOperation.get(e.id);
    const entry = id === undefined ? undefined : this.entries.get(id);
    if (!entry || FINAL_STATES.includes(entry.job.state)) return;
    if (e.state === 'start') entry.job.phases.push({ name: e.phase, state: 'running', startedAt: new Date().toISOString() });
    else {
      const p = entry.job.phases.findLast((x) => x.name === e.phase && x.state === 'running');
      if (p) {
        p.state = 'done';
        if (e.ms !== undefined) p.ms = e.ms;
      }
    }
    this.emit(entry, { type: 'phase', phase: e.phase, state: e.state, ...(e.ms !== undefined ? { ms: e.ms } : {}) });
  }

  private finish(entry: Entry, state: JobState, out: { result?: Record<string, unknown>; error?: JobError }): void {
    const { job } = entry;
    // A mark (a phase without an end) is done when the job is.
    for (const p of job.phases) if (p.state === 'running') p.state = 'done';
    if (out.result) job.result = out.result;
    if (out.error) job.error = out.error;
    job.endedAt = new Date().toISOString();
    this.setState(entry, state);
    for (const [op, id] of this.byOperation) if (id === job.id) this.byOperation.delete(op);
    this.prune();
  }

  private setState(entry: Entry, state: JobState): void {
    entry.job.state = state;
    // Recorded before anyone hears of it: a state reported is a state that survives a crash.
    try {
      this.journal?.save(entry.job);
    } catch {
      // a full or failing disk must not fail the job itself; the record is only history
    }
    this.emitState(entry);
  }

  private emitState(entry: Entry): void {
    const job = this.view(entry);
    entry.reportedPlace = job.queuePosition !== undefined ? `${job.queuePosition}/${job.queueLength}` : undefined;
    this.emit(entry, { type: 'state', state: job.state, job });
  }

  private emit(entry: Entry, e: JobEvent): void {
    entry.events.push(e);
    entry.emitter.emit('event', e);
    for (const fn of this.observers) fn(entry.job, e);
  }

  private view(entry: Entry): Job {
    const job = structuredClone(entry.job);
    if (job.state === 'queued') {
      const line = this.queue();
      const i = line.indexOf(job.id);
      if (i >= 0) {
        job.queuePosition = i + 1;
        job.queueLength = line.length;
      }
    }
    return job;
  }

  private prune(): void {
    const finished = [...this.entries.values()].filter((e) => FINAL_STATES.includes(e.job.state));
    for (const e of finished.slice(0, Math.max(0, finished.length - this.keepFinished))) {
      this.entries.delete(e.job.id);
      this.journal?.forget(e.job.id);
    }
  }
}
