import { AsyncLocalStorage } from 'node:async_hooks';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { engineChannels, type PhaseEvent } from '../engine/channels.js';
import { checkpoint, type CheckpointResult, type FreezeRequest } from '../engine/checkpoint.js';
import { Admission, hostBudgets, type AdmissionRequest, type Release } from '../scheduler/admission.js';
import { pagesProgress } from '../scheduler/pages-progress.js';
import { Store } from '../store/store.js';
import { treeRssBytes } from '../targets/process.js';
import type { IsolatedRun, WorkloadInstance } from '../testing/workloads.js';
import { Live, mm, warmTmpfs, type BenchContext, type ExperimentResult } from './harness.js';
import { round, summarize } from './stats.js';

/**
 * `concurrency` (Han & Choi): N checkpoint requests of equal workloads, all sent at once, run
 * three ways — all at once, one after another, and through the scheduler's admission control
 * (scheduler/admission.ts) — measured interleaved in one run: makespan, each job's frozen time
 * (CRIU's frozen_time) and latency (request to sealed snapshot, waiting included).
 */

export interface Job { index: number; pid: number }
export interface JobResult { index: number; startMs: number; endMs: number; result: CheckpointResult }

/** What an arm may hand the engine's checkpoint (CheckpointRequest.beforeFreeze: the admission gate at CRIU's pre-dump). */
export interface JobHooks { beforeFreeze?: (dump: FreezeRequest) => Promise<void>; afterFreeze?: () => void }

/** One way of running N checkpoint jobs; `t0` is the batch's start (performance.now()). */
export interface ConcurrencyArm {
  name: string;
  run(jobs: Job[], one: (job: Job, hooks?: JobHooks) => Promise<JobResult>): Promise<JobResult[]>;
}

export const ALL_AT_ONCE = 'all at once';

/**
 * Which stretch of a scheduled job the admission controller gates: 'freeze' (the default) — CRIU
 * starts at once and waits at its pre-dump notification (tree running) for a slot, held until
 * its post-dump notification (images complete);
 * 'criu' — the whole CRIU run, from before CRIU starts until its dump ends (ferry's seal —
 * checksums, manifest, commit — runs outside the budget); 'job' — until the snapshot is sealed.
 */
export type Hold = 'freeze' | 'criu' | 'job';
export const DEFAULT_HOLD: Hold = 'freeze';

/**
 * A scheduled arm's budgets. `stagger` (with dumps 2): the next freeze is admitted once the last
 * admitted one is that far through — by time against its expected freeze (`staggerBy` 'time',
 * the rate learned by the Admission) or by the share of its pages CRIU has written ('pages';
 * only with hold 'freeze', where the dump's images dir is known at the gate).
 */
export interface Policy { dumps: number; memoryBandwidth?: number; hold?: Hold; stagger?: number; staggerBy?: 'time' | 'pages' }

export const scheduledName = (p: Policy): string =>
  `scheduled, ${p.dumps} dump${p.dumps === 1 ? '' : 's'} at once` +
  (p.stagger !== undefined ? `, staggered at ${Math.round(p.stagger * 100)} % of ${p.staggerBy === 'pages' ? 'pages' : 'time'}` : '') +
  (p.memoryBandwidth !== undefined ? `, paced ${round(p.memoryBandwidth / 2 ** 30, 2)} GiB/s` : '') +
  ({ job: ', whole job', criu: ', whole CRIU run', freeze: '' } as const)[p.hold ?? DEFAULT_HOLD];

/** How the bench's default arm staggers when the default policy does (the agent's way: by pages). */
const DEFAULT_STAGGER_BY = 'pages';

/** The scheduler's defaults (hostBudgets, DEFAULT_POLICY), as the bench's default arm. */
export const defaultPolicy = (): Policy => {
  const b = hostBudgets();
  return {
    dumps: b.dumps,
    ...(b.memoryBandwidth !== undefined ? { memoryBandwidth: b.memoryBandwidth } : {}),
    ...(b.stagger !== undefined ? { stagger: b.stagger, staggerBy: DEFAULT_STAGGER_BY } : {}),
  };
};

/** Which scheduled job an engine phase event belongs to: the job's early release, by async context. */
const jobContext = new AsyncLocalStorage<() => void>();
let phaseSubscribed = false;
function releaseWhenCriuEnds(): void {
  if (phaseSubscribed) return;
  phaseSubscribed = true;
  engineChannels.phase.subscribe((message) => {
    const e = message as PhaseEvent;
    if (e.operation === 'checkpoint' && e.phase === 'criu' && e.state === 'end') jobContext.getStore()?.();
  });
}

/**
 * The scheduler's arm: every request goes to one Admission (budgets from the host, `dumps` CRIU
 * dumps at once) with the tree's resident memory as its bytes; a job is frozen only once
 * admitted, and frees its slot when its CRIU dump ends (or when sealed, for `hold` 'job').
 */
export function scheduledArm(policy: Policy): ConcurrencyArm {
  const hold = policy.hold ?? DEFAULT_HOLD;
  return {
    name: scheduledName(policy),
    async run(jobs, one) {
      if (hold === 'criu') releaseWhenCriuEnds();
      const admission = new Admission(hostBudgets({ dumps: policy.dumps, memoryBandwidth: policy.memoryBandwidth, stagger: policy.stagger }));
      return Promise.all(jobs.map(async (job) => {
        const request: AdmissionRequest = { id: String(job.index), bytes: await treeRssBytes(job.pid), tier: 'memory' };
        if (hold === 'freeze') {
          let release: Release = () => undefined;
          const releaseLater = () => release();
          const beforeFreeze = async (dump: FreezeRequest) => {
            const progress = policy.staggerBy === 'pages' ? { progress: pagesProgress(dump.imagesDir, request.bytes) } : {};
            release = await admission.acquire({ ...request, ...progress });
          };
          try {
            return await one(job, { beforeFreeze, afterFreeze: releaseLater });
          } finally { release(); }
        }
        const release = await admission.acquire(request);
        try {
          return await (hold === 'criu' ? jobContext.run(release, () => one(job)) : one(job));
        } finally { release(); }
      }));
    },
  };
}

export const CONCURRENCY_ARMS: ConcurrencyArm[] = [
  { name: ALL_AT_ONCE, run: (jobs, one) => Promise.all(jobs.map((j) => one(j))) },
  {
    name: 'one after another',
    async run(jobs, one) {
      const out: JobResult[] = [];
      for (const j of jobs) out.push(await one(j));
      return out;
    },
  },
  scheduledArm(defaultPolicy()),
];

/**
 * The staggered policies the full run measures beside the others (README, "Concurrent
 * checkpoints"): points along the trade-off between one and two freezes at once. (Staggering by
 * time was measured too — 50 %, 70 % — and did no better than by pages at the same share.)
 */
export const STAGGERED_POLICIES: Policy[] = [
  { dumps: 2, stagger: 0.5, staggerBy: 'pages' },
  { dumps: 2, stagger: 0.7, staggerBy: 'pages' },
  { dumps: 2, stagger: 0.85, staggerBy: 'pages' },
];

/** The full run also measures neighbouring policies, so the default is checked against them in every run. */
export const policyArms = (): ConcurrencyArm[] => {
  const d = defaultPolicy();
  const others: Policy[] = [
    { dumps: 1 }, { dumps: 2 }, ...STAGGERED_POLICIES, { dumps: 1, hold: 'criu' }, { dumps: 2, hold: 'criu' },
  ];
  return others.filter((p) => scheduledName(p) !== scheduledName(d)).map(scheduledArm);
};

export interface ConcurrencySample {
  arm: string;
  n: number;
  rep: number;
  makespanMs: number;
  /** startMs: when the job's checkpoint began (after any wait); latencyMs: from the batch's start (every request is sent then) to its snapshot. */
  jobs: { index: number; latencyMs: number; startMs: number; endMs: number; frozenMs: number | undefined; criuMs: number | undefined }[];
}

export interface ConcurrencyOptions { counts: number[]; mib: number; reps: number; arms?: ConcurrencyArm[] }

export const concurrencyDefaults = (quick: boolean): ConcurrencyOptions =>
  quick ? { counts: [1, 2, 4], mib: 32, reps: 1 } : { counts: [1, 2, 4, 8], mib: 256, reps: 3, arms: [...CONCURRENCY_ARMS, ...policyArms()] };

export async function runConcurrency(ctx: BenchContext, o: ConcurrencyOptions = concurrencyDefaults(ctx.quick)): Promise<ExperimentResult> {
  const arms = o.arms ?? CONCURRENCY_ARMS;
  const live = new Live();
  const wl = join(ctx.tmpfsDir, 'workloads');
  await mkdir(wl);
  const store = new Store({ root: join(ctx.tmpfsDir, 'store'), memoryDir: join(ctx.tmpfsDir, 'memory') });
  const samples: ConcurrencySample[] = [];

  const batch = async (arm: ConcurrencyArm, n: number, rep: number): Promise<void> => {
    const ws: { inst: WorkloadInstance; run: IsolatedRun }[] = await Promise.all(Array.from({ length: n }, () => live.memcheck(wl, o.mib)));
    await warmTmpfs(ctx.tmpfsDir, Math.min(2048, n * o.mib * 2));
    const t0 = performance.now();
    const one = async (job: Job, hooks: JobHooks = {}): Promise<JobResult> => {
      const startMs = performance.now() - t0;
      const result = await checkpoint(store, { target: job.pid, tier: 'memory', ...hooks });
      return { index: job.index, startMs, endMs: performance.now() - t0, result };
    };
    const results = await arm.run(ws.map((w, index) => ({ index, pid: w.run.rootPid })), one);
    const makespanMs = performance.now() - t0;
    samples.push({
      arm: arm.name, n, rep, makespanMs: round(makespanMs, 2),
      jobs: results.map((r) => ({
        index: r.index, startMs: round(r.startMs, 2), endMs: round(r.endMs, 2), latencyMs: round(r.endMs, 2),
        frozenMs: r.result.manifest.stats ? round(r.result.manifest.stats.frozen_time / 1000, 2) : undefined,
        criuMs: r.result.telemetry.phasesMs['criu'],
      })),
    });
    for (const w of ws) await live.gone(w.run);
    for (const r of results) await store.remove(r.result.snapshot);
    for (const w of ws) await w.inst.cleanup();
  };

  try {
    await store.ensure('memory');
    ctx.say('warm-up');
    await batch(arms[0]!, 1, -1);
    samples.length = 0;
    let turn = 0;
    for (let rep = 0; rep < o.reps; rep++) {
      for (const n of o.counts) {
        const order = arms.map((_, i) => arms[(i + turn) % arms.length]!);
        turn++;
        for (const arm of order) {
          ctx.say(`rep ${rep + 1}/${o.reps}, N=${n} × ${o.mib} MiB, ${arm.name}`);
          await batch(arm, n, rep);
        }
      }
    }
  } finally {
    live.killAll();
  }
  return summarizeConcurrency(samples, { ...o, arms });
}

export function summarizeConcurrency(samples: ConcurrencySample[], o: ConcurrencyOptions & { arms: ConcurrencyArm[] }): ExperimentResult {
  const jobs = samples.flatMap((s) => s.jobs.map((j) => ({ arm: s.arm, n: s.n, rep: s.rep, ...j })));
  const armNames = o.arms.map((a) => a.name);
  const rows: (string | number)[][] = [];
  const summary: Record<string, unknown> = {};
  for (const n of o.counts) {
    for (const arm of armNames) {
      const s = samples.filter((x) => x.arm === arm && x.n === n);
      const js = jobs.filter((j) => j.arm === arm && j.n === n);
      if (!s.length) continue;
      const frozen = js.map((j) => j.frozenMs).filter((v): v is number => v !== undefined);
      const latency = js.map((j) => j.latencyMs);
      rows.push([n, arm, mm(s.map((x) => x.makespanMs)), mm(frozen), round(percentile(frozen, 0.95), 1), mm(latency), round(percentile(latency, 0.95), 1)]);
      summary[`${arm} N=${n}`] = {
        makespanMs: summarize(s.map((x) => x.makespanMs)), frozenMs: summarize(frozen), latencyMs: summarize(latency),
        frozenP95Ms: round(percentile(frozen, 0.95), 2), latencyP95Ms: round(percentile(latency, 0.95), 2),
      };
    }
  }
  summary['targets'] = targets(samples, Math.max(...o.counts), armNames);
  const color = { field: 'arm', type: 'nominal', title: 'arm', scale: { domain: armNames } };
  const xN = { field: 'n', type: 'ordinal', title: 'concurrent checkpoints (N)' };
  return {
    name: 'concurrency',
    title: 'Concurrent checkpoints',
    question: 'Han & Choi: checkpoints run concurrently interfere — does starting N at once finish sooner, and what does it do to each job\'s frozen time?',
    params: { counts: o.counts, mib: o.mib, reps: o.reps, arms: armNames },
    durationMs: 0,
    summary,
    charts: [
      {
        id: 'concurrency-makespan', title: 'Is the batch done sooner when all N start at once?',
        caption: `Makespan: from the first request to the last snapshot, N workloads of ${o.mib} MiB each into the memory tier. Line: median; points: every batch.`,
        spec: {
          $schema: 'https://vega.github.io/schema/vega-lite/v6.json', width: 460, height: 260, data: { values: samples },
          encoding: { x: xN, color },
          layer: [
            { mark: { type: 'point', filled: true, tooltip: true }, encoding: { y: { field: 'makespanMs', type: 'quantitative', title: 'makespan (ms)' } } },
            { mark: 'line', encoding: { y: { aggregate: 'median', field: 'makespanMs', type: 'quantitative' } } },
          ],
        },
      },
      {
        id: 'concurrency-frozen', title: 'How long is each workload frozen?',
        caption: 'CRIU\'s frozen_time of every job: what a workload\'s users feel. Interference shows up here even when the makespan improves.',
        spec: {
          $schema: 'https://vega.github.io/schema/vega-lite/v6.json', width: 460, height: 260, data: { values: jobs },
          mark: { type: 'boxplot', extent: 'min-max' },
          encoding: { x: xN, xOffset: { field: 'arm', sort: armNames }, y: { field: 'frozenMs', type: 'quantitative', title: 'frozen per job (ms)' }, color },
        },
      },
      {
        id: 'concurrency-latency', title: 'How long does each caller wait for its snapshot?',
        caption: 'Latency per job, request to result (queueing included for one after another).',
        spec: {
          $schema: 'https://vega.github.io/schema/vega-lite/v6.json', width: 460, height: 260, data: { values: jobs },
          mark: { type: 'boxplot', extent: 'min-max' },
          encoding: { x: xN, xOffset: { field: 'arm', sort: armNames }, y: { field: 'latencyMs', type: 'quantitative', title: 'latency per job (ms)' }, color },
        },
      },
    ],
    tables: [{
      title: 'Per N and arm: median (min–max) and 95th percentile over every job of every repetition',
      columns: ['N', 'arm', 'makespan ms', 'frozen ms per job', 'frozen p95 ms', 'latency ms per job', 'latency p95 ms'], rows,
    }],
    notes: [
      'All jobs are ferry engine checkpoints in one process (each its own CRIU), into the memory tier; each workload has its own working directory.',
      'The arm order is rotated from one N to the next. Every request of a batch is sent at its start, so latency includes waiting (one after another, scheduled).',
      `The scheduled arms send all N requests at once through the admission controller (scheduler/admission.ts); "${scheduledName(defaultPolicy())}" is the default policy. ` +
        'Targets (issue 12), at the largest N: its median makespan ≤ 1.05× all at once, its 95th-percentile frozen time ≤ 0.3× all at once (summary.targets).',
    ],
    samples,
  };
}

/** The q-quantile (nearest rank) of the values; NaN when there are none. */
export function percentile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

export interface TargetCheck { n: number; arm: string; makespanRatio: number; frozenP95Ratio: number; met: boolean }

/** Each scheduled arm against all at once at N: median makespan ratio (≤ 1.05) and p95 frozen ratio (≤ 0.3). */
export function targets(samples: ConcurrencySample[], n: number, armNames: string[]): TargetCheck[] {
  const of = (arm: string) => samples.filter((s) => s.arm === arm && s.n === n);
  const frozen = (arm: string) => of(arm).flatMap((s) => s.jobs.map((j) => j.frozenMs)).filter((v): v is number => v !== undefined);
  const base = of(ALL_AT_ONCE);
  if (!base.length) return [];
  const baseMakespan = summarize(base.map((s) => s.makespanMs)).median;
  const baseFrozen = percentile(frozen(ALL_AT_ONCE), 0.95);
  return armNames.filter((a) => a.startsWith('scheduled') && of(a).length > 0).map((arm) => {
    const makespanRatio = round(summarize(of(arm).map((s) => s.makespanMs)).median / baseMakespan, 3);
    const frozenP95Ratio = round(percentile(frozen(arm), 0.95) / baseFrozen, 3);
    return { n, arm, makespanRatio, frozenP95Ratio, met: makespanRatio <= 1.05 && frozenP95Ratio <= 0.3 };
  });
}
