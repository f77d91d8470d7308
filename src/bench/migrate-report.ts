import type { ExperimentResult } from './harness.js';
import type { MigrateBenchOptions, MigrateSample } from './migrate-types.js';
import { fmt, roundSummary, summarize, type Summary } from './stats.js';
import type { MigrateWorkloadKind } from './migrate-workloads.js';

/**
 * The migration benchmark's summary (pure: samples in, figures out) and its place in the bench
 * report: the downtime of each arm, ferry over raw pair by pair against issue 13's target, and
 * the steps of each arm side by side.
 */

/** Issue 13: ferry's cold downtime ≤ 1.1 × the raw baseline's. */
export const TARGET_RATIO = 1.1;

export const FERRY_STEPS = ['dump', 'transfer', 'restore', 'sourceEnd', 'commit', 'other'] as const;
export const RAW_STEPS = ['dump', 'wire', 'restore'] as const;

export interface WorkloadSummary {
  workload: MigrateWorkloadKind;
  mib: number;
  downtimeMs: { ferry: Summary; raw: Summary };
  /** ferry / raw downtime, pair by pair. */
  ratio: Summary;
  target: { ratio: number; met: boolean };
  totalMs: { ferry: Summary; raw: Summary };
  /** ferry's `ferry migrate` command, spawn → exit. */
  ferryCliMs: Summary;
  ferryPreflightMs: Summary;
  ferrySteps: Record<(typeof FERRY_STEPS)[number], Summary>;
  rawSteps: Record<(typeof RAW_STEPS)[number], Summary>;
  rawFrozenMs: Summary;
  /** Image bytes over the step that moved them (MB/s, 10^6). */
  linkMBps: { ferry: Summary; raw: Summary };
  bytes: { ferry: Summary; raw: Summary };
  /** Samples whose moved copy verified (every recorded sample did: a failed one stops the run). */
  verified: { ferry: number; raw: number };
  /** Snapshots left on either host after ferry's migrations (should be none). */
  leftovers: string[];
}

const of = (xs: MigrateSample[], f: (s: MigrateSample) => number | undefined, digits = 1): Summary =>
  roundSummary(summarize(xs.map(f).filter((v): v is number => v !== undefined && Number.isFinite(v))), digits);

export function summarizeWorkload(samples: MigrateSample[], workload: MigrateWorkloadKind): WorkloadSummary {
  const mine = samples.filter((s) => s.workload === workload);
  const ferry = mine.filter((s) => s.arm === 'ferry');
  const raw = mine.filter((s) => s.arm === 'raw');
  const ratios: number[] = [];
  for (const f of ferry) {
    const r = raw.find((x) => x.pair === f.pair);
    if (r && r.downtimeMs > 0) ratios.push(f.downtimeMs / r.downtimeMs);
  }
  const ratio = roundSummary(summarize(ratios), 3);
  const step = <K extends string>(xs: MigrateSample[], keys: readonly K[]): Record<K, Summary> =>
    Object.fromEntries(keys.map((k) => [k, of(xs, (s) => s.phases[k])])) as Record<K, Summary>;
  const mbps = (bytes: number, ms: number | undefined): number | undefined => (ms ? bytes / 1e6 / (ms / 1000) : undefined);
  return {
    workload,
    mib: mine[0]?.mib ?? 0,
    downtimeMs: { ferry: of(ferry, (s) => s.downtimeMs), raw: of(raw, (s) => s.downtimeMs) },
    ratio,
    target: { ratio: TARGET_RATIO, met: ratio.n > 0 && ratio.median <= TARGET_RATIO },
    totalMs: { ferry: of(ferry, (s) => s.totalMs), raw: of(raw, (s) => s.totalMs) },
    ferryCliMs: of(ferry, (s) => s.cliMs),
    ferryPreflightMs: of(ferry, (s) => s.phases['preflight']),
    ferrySteps: step(ferry, FERRY_STEPS),
    rawSteps: step(raw, RAW_STEPS),
    rawFrozenMs: of(raw, (s) => s.frozenMs),
    linkMBps: { ferry: of(ferry, (s) => mbps(s.bytes, s.phases['transfer'])), raw: of(raw, (s) => mbps(s.bytes, s.phases['wire'])) },
    bytes: { ferry: of(ferry, (s) => s.bytes, 0), raw: of(raw, (s) => s.bytes, 0) },
    verified: { ferry: ferry.filter((s) => s.verified !== '').length, raw: raw.filter((s) => s.verified !== '').length },
    leftovers: ferry.flatMap((s) => s.leftovers ?? []),
  };
}

const ms = (s: Summary): string => (s.n === 0 ? '-' : s.n === 1 ? s.median.toFixed(0) : `${s.median.toFixed(0)} (${s.min.toFixed(0)}–${s.max.toFixed(0)})`);
const med = (s: Summary): string => (s.n === 0 ? '-' : s.median.toFixed(0));

export function migrateResult(o: MigrateBenchOptions, samples: MigrateSample[]): ExperimentResult {
  const summaries = o.workloads.map((w) => summarizeWorkload(samples, w));
  const label = (w: WorkloadSummary): string => `${w.workload}, ${w.mib} MiB`;
  const bars: { what: string; step: string; ms: number }[] = [];
  for (const w of summaries) {
    for (const k of FERRY_STEPS) bars.push({ what: `${label(w)}: ferry`, step: ferryStepName[k], ms: Math.max(0, w.ferrySteps[k].median) });
    for (const k of RAW_STEPS) bars.push({ what: `${label(w)}: raw`, step: rawStepName[k], ms: w.rawSteps[k].median });
  }
  return {
    name: 'migrate',
    title: 'Cold migration between two hosts: ferry against raw CRIU',
    question: `On a ${o.rate} link between two hosts, how long is a workload stopped when ferry migrates it (cold), against criu dump → tar over TCP → criu restore one after another, for the same workload and size — and where does the time go?`,
    params: { strategy: o.strategy, mib: o.mib, runs: o.runs, rate: o.rate, workloads: o.workloads, warmMiB: o.warmMiB, warmup: o.warmup },
    durationMs: 0,
    summary: Object.fromEntries(summaries.map((w) => [w.workload, w])),
    charts: [{
      id: 'migrate-downtime',
      title: 'Where does the downtime of a cold migration go, ferry against raw CRIU?',
      caption: `Median ms of each step over ${o.runs} sample(s) per arm (the stacked medians need not add up to the median downtime). ` +
        'ferry: from its freeze to the copy running on h2; raw: from `criu dump` start to `criu restore -d` done.',
      spec: {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json', width: 460, height: 40 * Math.max(2, summaries.length * 2),
        data: { values: bars },
        mark: { type: 'bar', tooltip: true },
        encoding: {
          y: { field: 'what', type: 'nominal', title: null, sort: [...new Set(bars.map((b) => b.what))] },
          x: { field: 'ms', type: 'quantitative', title: 'ms', stack: 'zero' },
          color: { field: 'step', type: 'nominal', title: 'step', sort: [...new Set(bars.map((b) => b.step))] },
        },
      },
    }],
    tables: [{
      title: `Downtime, ms: median (min–max) of ${o.runs} per arm; ferry / raw pair by pair (target ≤ ${TARGET_RATIO})`,
      columns: ['workload', 'ferry', 'raw', 'ferry / raw', 'target', 'verified'],
      rows: summaries.map((w) => [label(w), ms(w.downtimeMs.ferry), ms(w.downtimeMs.raw), w.ratio.n ? fmt(w.ratio, 3) : '-',
        w.ratio.n === 0 ? '-' : w.target.met ? 'met' : 'not met', `${w.verified.ferry} + ${w.verified.raw} of ${w.downtimeMs.ferry.n + w.downtimeMs.raw.n}`]),
    }, {
      title: 'Where the downtime goes, median ms (ferry | raw)',
      columns: ['workload', 'step', 'ferry', 'raw'],
      rows: summaries.flatMap((w) => [
        [label(w), 'dump: freeze → images in tmpfs on h1 (raw: whole `criu dump`)', med(w.ferrySteps.dump), `${med(w.rawSteps.dump)} (frozen ${med(w.rawFrozenMs)})`],
        [label(w), 'images h1 → h2', med(w.ferrySteps.transfer), med(w.rawSteps.wire)],
        [label(w), 'restore on h2', med(w.ferrySteps.restore), med(w.rawSteps.restore)],
        [label(w), 'source tree ends + commit', `${med(w.ferrySteps.sourceEnd)} + ${med(w.ferrySteps.commit)}`, '-'],
        [label(w), 'other', med(w.ferrySteps.other), '-'],
        [label(w), '= downtime', med(w.downtimeMs.ferry), med(w.downtimeMs.raw)],
        [label(w), 'link throughput, MB/s', med(w.linkMBps.ferry), med(w.linkMBps.raw)],
        [label(w), 'not downtime: preflight | whole `ferry migrate` command', `${med(w.ferryPreflightMs)} | ${med(w.ferryCliMs)}`, '-'],
      ]),
    }],
    notes: [
      'Each sample starts a fresh workload on h1 with `ferry run` (pid 1 of its own pid namespace), moves it to h2, verifies the copy there (memcheck: every byte of every page, by the restored process; redis: every key), then ends it.',
      'ferry: `ferry migrate NAME --to h2 --json` through h1\'s agent; its downtime runs from the freeze (CRIU\'s pre-dump notification) to the copy running on h2. Its dump step is split off by the agent\'s job timeline.',
      'raw: `criu dump` (its run includes CRIU\'s start and the tree\'s collection before the freeze) → `tar c` to bash\'s /dev/tcp → a listener in h2 that hands the socket to `tar x` → `criu restore -d`; CRIU runs inside each host\'s network namespace, images in tmpfs, logs at -v4 as ferry\'s.',
      'redis holds N keys of (1 MiB − 64) characters each: SHAKE-256 of the key\'s index as hex, compressible about 2:1 (ferry does not compress by default).',
      `${o.warmMiB} MiB are written to and deleted from tmpfs right before each sample; arms alternate order pair by pair.`,
    ],
    samples,
  };
}

const ferryStepName: Record<(typeof FERRY_STEPS)[number], string> = {
  dump: 'dump', transfer: 'images h1 → h2', restore: 'restore on h2', sourceEnd: 'source ends', commit: 'commit', other: 'other',
};
const rawStepName: Record<(typeof RAW_STEPS)[number], string> = { dump: 'dump', wire: 'images h1 → h2', restore: 'restore on h2' };
