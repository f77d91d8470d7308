import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { checkpoint, type CheckpointResult } from '../engine/checkpoint.js';
import { Store } from '../store/store.js';
import type { IsolatedRun, WorkloadInstance } from '../testing/workloads.js';
import { Live, mm, warmTmpfs, type BenchContext, type ExperimentResult } from './harness.js';
import { round, summarize } from './stats.js';

/**
 * `concurrency` (Han & Choi): N checkpoints of equal workloads started all at once vs one after
 * another — makespan, each job's frozen time (CRIU's frozen_time) and latency (request to
 * result). Arms are a list: the scheduler adds its own later.
 */

export interface Job { index: number; pid: number }
export interface JobResult { index: number; startMs: number; endMs: number; result: CheckpointResult }

/** One way of running N checkpoint jobs; `t0` is the batch's start (performance.now()). */
export interface ConcurrencyArm {
  name: string;
  run(jobs: Job[], one: (job: Job) => Promise<JobResult>): Promise<JobResult[]>;
}

export const CONCURRENCY_ARMS: ConcurrencyArm[] = [
  { name: 'all at once', run: (jobs, one) => Promise.all(jobs.map(one)) },
  {
    name: 'one after another',
    async run(jobs, one) {
      const out: JobResult[] = [];
      for (const j of jobs) out.push(await one(j));
      return out;
    },
  },
];

export interface ConcurrencySample {
  arm: string;
  n: number;
  rep: number;
  makespanMs: number;
  jobs: { index: number; latencyMs: number; startMs: number; endMs: number; frozenMs: number | undefined; criuMs: number | undefined }[];
}

export interface ConcurrencyOptions { counts: number[]; mib: number; reps: number; arms?: ConcurrencyArm[] }

export const concurrencyDefaults = (quick: boolean): ConcurrencyOptions =>
  quick ? { counts: [1, 2, 4], mib: 32, reps: 1 } : { counts: [1, 2, 4, 8], mib: 256, reps: 3 };

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
    const one = async (job: Job): Promise<JobResult> => {
      const startMs = performance.now() - t0;
      const result = await checkpoint(store, { target: job.pid, tier: 'memory' });
      return { index: job.index, startMs, endMs: performance.now() - t0, result };
    };
    const results = await arm.run(ws.map((w, index) => ({ index, pid: w.run.rootPid })), one);
    const makespanMs = performance.now() - t0;
    samples.push({
      arm: arm.name, n, rep, makespanMs: round(makespanMs, 2),
      jobs: results.map((r) => ({
        index: r.index, startMs: round(r.startMs, 2), endMs: round(r.endMs, 2), latencyMs: round(r.endMs - r.startMs, 2),
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
      rows.push([n, arm, mm(s.map((x) => x.makespanMs)), mm(frozen), mm(js.map((j) => j.latencyMs))]);
      summary[`${arm} N=${n}`] = { makespanMs: summarize(s.map((x) => x.makespanMs)), frozenMs: summarize(frozen), latencyMs: summarize(js.map((j) => j.latencyMs)) };
    }
  }
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
    tables: [{ title: 'Per N and arm: median (min–max)', columns: ['N', 'arm', 'makespan ms', 'frozen ms per job', 'latency ms per job'], rows }],
    notes: [
      'All jobs are ferry engine checkpoints in one process (each its own CRIU), into the memory tier; each workload has its own working directory.',
      'The arm order is rotated from one N to the next. A scheduler arm (admission control) plugs into the same list later.',
    ],
    samples,
  };
}
