import { defaultReserveBytes } from '../store/budget.js';
import { readMeminfo } from '../telemetry/proc.js';
import { FerryError, InterruptedError } from '../util/errors.js';

/**
 * Admission control for checkpoints (Han & Choi: concurrent dumps interfere — each workload stays
 * frozen while the others compete for CPU, memory bandwidth and I/O). A request waits in a queue,
 * *not frozen*, until the budgets allow it. Where to wait: best at CRIU's pre-dump notification
 * (the engine's CheckpointRequest.beforeFreeze: CRIU has started, the tree still runs), releasing
 * at post-dump (afterFreeze: images complete), so CRIU's start-up overlaps the previous freeze;
 * or around the whole checkpoint. Budgets:
 * - `dumps`: CRIU dumps frozen (gated at pre-dump) or running at once;
 * - `memoryBytes`: bytes in flight into the memory tier (the sum of the running requests'
 *   estimates, e.g. the trees' resident memory);
 * - `diskBytes` (optional): bytes in flight into the disk tier — the tier's write bandwidth times
 *   the time one is willing to let a dump take.
 * - `memoryBandwidth` / `diskBandwidth` (optional, bytes per second): paces admissions into a
 *   tier — after a request of b bytes, the next one into that tier waits b / bandwidth (unless
 *   nothing runs), so dumps start staggered and their freezes barely overlap.
 * - `stagger` (optional, a fraction in (0, 1]): a request joins running ones only once the one
 *   admitted last is that far through its hold — by its own `progress()` (e.g. the share of its
 *   pages written) when it has one, else by its time held against its expected hold (its bytes ×
 *   the hold time per byte learned from the holds this controller saw, starting from a prior).
 *   With `dumps: 2`, each freeze overlaps another only for its start and its end.
 *
 * Order: higher `priority` first, FIFO within a priority. The head of the queue is never
 * overtaken by a smaller request behind it (no backfilling), so a large request cannot starve.
 * A request larger than a whole byte budget is admitted alone (when nothing else runs) rather
 * than never. Releasing (the job ended, well or not) frees its share and admits the next ones.
 */

export type AdmissionTier = 'memory' | 'disk';

export interface AdmissionRequest {
  /** Bytes the dump will write (an estimate: the tree's resident memory). */
  bytes: number;
  tier: AdmissionTier;
  /** Higher is admitted first; default 0. */
  priority?: number;
  /** Aborting it while the request waits removes it from the queue and rejects acquire(). */
  signal?: AbortSignal;
  /** A caller's id for queuePosition() and the snapshot (default: a generated one). */
  id?: string;
  /**
   * Once admitted: how far its hold is, 0…1 (e.g. the share of its pages CRIU has written), for
   * the `stagger` budget; polled every few ms while a request waits on it. Without it (or when it
   * throws), the time held against the expected hold stands in.
   */
  progress?: () => number;
}

export interface AdmissionBudgets {
  /** CRIU dumps at once (≥ 1). */
  dumps: number;
  /** Bytes in flight into the memory tier. */
  memoryBytes: number;
  /** Bytes in flight into the disk tier; undefined: no limit. */
  diskBytes?: number | undefined;
  /** Admission pace into the memory tier, bytes per second; undefined: none. */
  memoryBandwidth?: number | undefined;
  /** Admission pace into the disk tier, bytes per second; undefined: none. */
  diskBandwidth?: number | undefined;
  /** Admit beside running requests only once the last admitted is this far through its hold (0 < f ≤ 1); undefined: at once. */
  stagger?: number | undefined;
}

/**
 * The freeze policies, by name (the agent's `scheduler.policy`): 'one' freeze at a time, 'two'
 * at once, or 'staggered' — at most two, the second admitted once the first is `stagger` through.
 */
export const FREEZE_POLICIES = ['one', 'two', 'staggered'] as const;
export type FreezePolicy = (typeof FREEZE_POLICIES)[number];
/** Where a staggered policy admits the next freeze, as a share of the running one's hold. */
export const DEFAULT_STAGGER = 0.5;

/** The budgets a named policy sets. */
export function policyBudgets(policy: FreezePolicy, stagger = DEFAULT_STAGGER): Pick<AdmissionBudgets, 'dumps' | 'stagger'> {
  switch (policy) {
    case 'one': return { dumps: 1, stagger: undefined };
    case 'two': return { dumps: 2, stagger: undefined };
    case 'staggered': return { dumps: 2, stagger };
  }
}

/**
 * The hold time per byte assumed before any hold was seen: 0.6 ms per MiB (a 256 MiB freeze
 * into the memory tier, alone, on the 2-core host of the README: ≈ 120–160 ms).
 */
export const PRIOR_MS_PER_BYTE = 0.6 / 2 ** 20;
/** Holds shorter than this many bytes teach nothing about the rate (fixed costs dominate). */
const LEARN_MIN_BYTES = 2 ** 20;
/** The weight of a new hold in the learned rate (an exponential moving average). */
const LEARN_WEIGHT = 0.5;
/** How often a request held back by another's progress() looks again. */
const PROGRESS_POLL_MS = 5;

/** Frees the request's share of the budgets; calling it again does nothing. */
export type Release = () => void;

export interface QueueEntry { id: string; bytes: number; tier: AdmissionTier; priority: number; waitingMs: number; position: number }
export interface RunningEntry { id: string; bytes: number; tier: AdmissionTier; priority: number; runningMs: number }
export interface AdmissionSnapshot {
  budgets: AdmissionBudgets;
  inUse: { dumps: number; memoryBytes: number; diskBytes: number };
  running: RunningEntry[];
  queued: QueueEntry[];
}

interface Waiter {
  id: string; bytes: number; tier: AdmissionTier; priority: number; seq: number; since: number;
  admit: () => void; reject: (err: Error) => void; detach: () => void;
}
interface Holder { id: string; bytes: number; tier: AdmissionTier; priority: number; since: number; seq: number; progress: (() => number) | undefined }

/**
 * The default freeze policy: one dump frozen at a time, its CRIU started at once and gated at its
 * pre-dump notification (CheckpointRequest.beforeFreeze/afterFreeze), so the next freeze starts
 * as the last one ends while the CRIU start-ups overlap. Measured (README, "Concurrent
 * checkpoints"; `ferry bench concurrency`), eight 256 MiB checkpoints on a 2-core host: p95
 * frozen 0.28× all at once, makespan 1.22–1.31×; two at once: 0.98–1.07× makespan but 0.44× p95
 * frozen; 'staggered' (by pages) lies on the line between them (0.5: ≈ 1.04×, 0.43×; 0.85:
 * ≈ 1.19×, 0.33×) — none met both of issue 12's targets on 2 cores. The default favours short
 * freezes; 'staggered' at 0.5 trades the other way, better than 'two'.
 */
export const DEFAULT_POLICY: FreezePolicy = 'one';

/** The default dumps budget (DEFAULT_POLICY's). */
export const defaultDumps = (): number => policyBudgets(DEFAULT_POLICY).dumps;

/** Budgets from the host: `dumps` (and `stagger`) DEFAULT_POLICY's, memory = MemAvailable − reserve (store/budget.ts). */
export function hostBudgets(overrides: Partial<AdmissionBudgets> = {}): AdmissionBudgets {
  const mi = readMeminfo();
  const memoryBytes = mi ? Math.max(0, mi.availableBytes - defaultReserveBytes(mi.totalBytes)) : 0;
  return { ...policyBudgets(DEFAULT_POLICY), memoryBytes, ...overrides };
}

function checkBudgets(b: AdmissionBudgets): void {
  const bad = (what: string) => new FerryError('ERR_BAD_OPTION', `the scheduler's ${what}`, { hint: 'give a dumps budget of at least 1, byte budgets of 0 or more and a stagger in (0, 1]' });
  if (!Number.isInteger(b.dumps) || b.dumps < 1) throw bad(`dumps budget must be a whole number ≥ 1, not ${b.dumps}`);
  if (!(b.memoryBytes >= 0)) throw bad(`memory budget must be ≥ 0 bytes, not ${b.memoryBytes}`);
  if (b.diskBytes !== undefined && !(b.diskBytes >= 0)) throw bad(`disk budget must be ≥ 0 bytes, not ${b.diskBytes}`);
  for (const k of ['memoryBandwidth', 'diskBandwidth'] as const) {
    const v = b[k];
    if (v !== undefined && !(v > 0)) throw bad(`${k} must be more than 0 bytes per second, not ${v}`);
  }
  if (b.stagger !== undefined && !(b.stagger > 0 && b.stagger <= 1)) throw bad(`stagger must be a share of a hold in (0, 1], not ${b.stagger}`);
}

export class Admission {
  readonly budgets: AdmissionBudgets;
  private readonly queue: Waiter[] = [];
  private readonly running = new Map<string, Holder>();
  private seq = 0;
  /** Per tier: when (this.now()) the pace lets the next request in. */
  private readonly paceAt: Record<AdmissionTier, number> = { memory: -Infinity, disk: -Infinity };
  private paceTimer: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  private readonly listeners = new Set<() => void>();
  /** Hold time per byte: the prior, then learned from every release of a hold of ≥ 1 MiB. */
  private msPerByte: number;
  private staggerTimer: NodeJS.Timeout | undefined;

  constructor(budgets: AdmissionBudgets, opts: { now?: () => number; msPerByte?: number } = {}) {
    checkBudgets(budgets);
    this.budgets = { ...budgets };
    this.now = opts.now ?? (() => performance.now());
    this.msPerByte = opts.msPerByte ?? PRIOR_MS_PER_BYTE;
  }

  /** The hold time per byte the stagger expects now (learned; the prior until a hold was seen). */
  get learnedMsPerByte(): number {
    return this.msPerByte;
  }

  /** Waits until the budgets admit the request; resolves with its Release. */
  acquire(req: AdmissionRequest): Promise<Release> {
    if (!(req.bytes >= 0)) {
      return Promise.reject(new FerryError('ERR_BAD_OPTION', `a scheduler request needs its bytes (0 or more), not ${req.bytes}`));
    }
    const id = req.id ?? `req-${++this.seq}`;
    if (this.running.has(id) || this.queue.some((w) => w.id === id)) {
      return Promise.reject(new FerryError('ERR_ALREADY_RUNNING', `a scheduler request with id '${id}' is already queued or running`));
    }
    const aborted = cancelledError(req.signal, id);
    if (aborted) return Promise.reject(aborted);
    return new Promise<Release>((resolve, reject) => {
      const w: Waiter = {
        id, bytes: req.bytes, tier: req.tier, priority: req.priority ?? 0, seq: ++this.seq, since: this.now(),
        admit: () => {
          w.detach();
          const t = this.now();
          this.running.set(id, { id, bytes: w.bytes, tier: w.tier, priority: w.priority, since: t, seq: w.seq, progress: req.progress });
          const bw = w.tier === 'memory' ? this.budgets.memoryBandwidth : this.budgets.diskBandwidth;
          if (bw !== undefined) this.paceAt[w.tier] = Math.max(t, this.paceAt[w.tier]) + (w.bytes / bw) * 1000;
          let done = false;
          resolve(() => {
            if (done) return;
            done = true;
            this.running.delete(id);
            this.learn(w.bytes, this.now() - t);
            this.pump();
          });
        },
        reject: (err) => { w.detach(); reject(err); },
        detach: () => undefined,
      };
      if (req.signal) {
        const signal = req.signal;
        const onAbort = (): void => {
          const i = this.queue.indexOf(w);
          if (i < 0) return;
          this.queue.splice(i, 1);
          w.reject(cancelledError(signal, id)!);
          this.pump(); // the head may have been what held the others back
        };
        signal.addEventListener('abort', onAbort, { once: true });
        w.detach = () => signal.removeEventListener('abort', onAbort);
      }
      // Insert keeping the order: priority descending, then arrival.
      let i = this.queue.length;
      while (i > 0 && this.queue[i - 1]!.priority < w.priority) i--;
      this.queue.splice(i, 0, w);
      this.pump();
    });
  }

  /** 1-based place in the queue; 0 when admitted (running); undefined when unknown or gone. */
  queuePosition(id: string): number | undefined {
    if (this.running.has(id)) return 0;
    const i = this.queue.findIndex((w) => w.id === id);
    return i < 0 ? undefined : i + 1;
  }

  /** Calls `fn` whenever the queue or the running set may have changed (e.g. to show queue positions); returns the unsubscribe. */
  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** The ids waiting, in the order they will be admitted. */
  waiting(): string[] {
    return this.queue.map((w) => w.id);
  }

  snapshot(): AdmissionSnapshot {
    const t = this.now();
    return {
      budgets: { ...this.budgets },
      inUse: this.inUse(),
      running: [...this.running.values()].map((h) => ({ id: h.id, bytes: h.bytes, tier: h.tier, priority: h.priority, runningMs: t - h.since })),
      queued: this.queue.map((w, i) => ({ id: w.id, bytes: w.bytes, tier: w.tier, priority: w.priority, waitingMs: t - w.since, position: i + 1 })),
    };
  }

  private inUse(): AdmissionSnapshot['inUse'] {
    let memoryBytes = 0;
    let diskBytes = 0;
    for (const h of this.running.values()) {
      if (h.tier === 'memory') memoryBytes += h.bytes; else diskBytes += h.bytes;
    }
    return { dumps: this.running.size, memoryBytes, diskBytes };
  }

  private fits(w: Waiter): boolean {
    const use = this.inUse();
    if (use.dumps >= this.budgets.dumps) return false;
    if (use.dumps === 0) return true; // alone, even a request larger than a byte budget runs
    if (this.now() < this.paceAt[w.tier]) return false;
    if (this.staggerWait() !== 0) return false;
    if (w.tier === 'memory') return use.memoryBytes + w.bytes <= this.budgets.memoryBytes;
    return this.budgets.diskBytes === undefined || use.diskBytes + w.bytes <= this.budgets.diskBytes;
  }

  /**
   * The stagger's hold on the next admission: 0 when it lets one in, else how many ms until it
   * should look again (its estimate, or a poll of the last admitted's progress()).
   */
  private staggerWait(): number {
    const f = this.budgets.stagger;
    if (f === undefined || this.running.size === 0) return 0;
    let last: Holder | undefined;
    for (const h of this.running.values()) if (!last || h.seq > last.seq) last = h;
    const h = last!;
    if (h.progress) {
      let p: number;
      try { p = h.progress(); } catch { p = NaN; }
      if (Number.isFinite(p)) return p >= f ? 0 : PROGRESS_POLL_MS;
    }
    const due = h.since + f * h.bytes * this.msPerByte - this.now();
    return due <= 0 ? 0 : due;
  }

  /** A released hold teaches the rate (a failed or cancelled one too: it held the slot that long). */
  private learn(bytes: number, heldMs: number): void {
    if (bytes < LEARN_MIN_BYTES || !(heldMs > 0)) return;
    this.msPerByte += LEARN_WEIGHT * (heldMs / bytes - this.msPerByte);
  }

  /** Admits from the head while the head fits; when only the pace or the stagger holds it, looks again then. */
  private pump(changed = true): void {
    let admitted = 0;
    while (this.queue.length > 0 && this.fits(this.queue[0]!)) {
      this.queue.shift()!.admit();
      admitted++;
    }
    clearTimeout(this.paceTimer);
    this.paceTimer = undefined;
    clearTimeout(this.staggerTimer);
    this.staggerTimer = undefined;
    // (A timer's look that admitted nothing changed nothing: no news for the listeners.)
    if (changed || admitted > 0) for (const fn of this.listeners) fn();
    const head = this.queue[0];
    if (head === undefined) return;
    const wait = this.paceAt[head.tier] - this.now();
    if (wait > 0) {
      // Bounded by one request's bytes / bandwidth (and a pace only holds while something runs).
      this.paceTimer = setTimeout(() => this.pump(false), Math.ceil(wait));
    }
    // Only while something runs (its release pumps too), and only while a slot is free for the head.
    if (this.running.size > 0 && this.running.size < this.budgets.dumps) {
      const s = this.staggerWait();
      if (s > 0) this.staggerTimer = setTimeout(() => this.pump(false), Math.ceil(s));
    }
  }
}

/** The error of a request whose signal aborted: ERR_INTERRUPTED for a signal's name (the CLI's), ERR_CANCELLED otherwise. */
function cancelledError(signal: AbortSignal | undefined, id: string): FerryError | undefined {
  if (!signal?.aborted) return undefined;
  const what = `request '${id}' left the scheduler's queue before it ran; nothing was checkpointed`;
  if (typeof signal.reason === 'string' && /^SIG[A-Z0-9]+$/.test(signal.reason)) {
    return new InterruptedError(signal.reason as NodeJS.Signals, `interrupted by ${signal.reason}: ${what}`);
  }
  return new FerryError('ERR_CANCELLED', `cancelled: ${what}`);
}
