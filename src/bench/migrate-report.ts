import type { StrategyName } from '../migrate/strategy.js';
import type { ExperimentResult } from './harness.js';
import type { MigrateBenchOptions, MigrateSample } from './migrate-types.js';
import { fmt, roundSummary, summarize, type Summary } from './stats.js';
import type { MigrateWorkloadKind } from './migrate-workloads.js';

/**
 * The migration benchmark's summary (pure: samples in, figures out) and its place in the bench
 * report: for each workload and size, the downtime of every arm, each strategy over raw round by
 * round against that strategy's target, and the steps of every arm side by side.
 */

/** What each strategy is held to (issues 13, 14 and 15): a ratio to the raw baseline, or a bound in ms. */
export interface Target { ratio?: number; maxMs?: number; text: string }

export function targetFor(strategy: StrategyName, workload: MigrateWorkloadKind): Target | undefined {
  switch (strategy) {
    case 'cold': return { ratio: 1.1, text: '≤ 1.1 × raw' };
    // Compressible data (redis) should stream at half the baseline's downtime.
    case 'stream': return workload === 'redis' ? { ratio: 0.5, text: '≤ 0.5 × raw (compressible data)' } : { ratio: 0.85, text: '≤ 0.85 × raw' };
    case 'incremental': return { ratio: 0.2, text: '≤ 0.2 × raw' };
    case 'postcopy': return { maxMs: 300, text: '≤ 300 ms' };
    default: return undefined;
  }
}

export const FERRY_STEPS = ['dump', 'transfer', 'restore', 'sourceEnd', 'commit', 'other'] as const;
export const RAW_STEPS = ['dump', 'wire', 'restore'] as const;

export interface ArmSummary {
  strategy: StrategyName;
  downtimeMs: Summary;
  /** auto: what it picked in each sample, and why. */
  picked: { strategy: string; because: string }[];
  /** This strategy's downtime / raw's, round by round. */
  ratio: Summary;
  target: (Target & { met: boolean }) | undefined;
  totalMs: Summary;
  /** `ferry migrate`, spawn → exit. */
  cliMs: Summary;
  preflightMs: Summary;
  steps: Record<(typeof FERRY_STEPS)[number], Summary>;
  /** Image bytes over the transfer step (MB/s, 10^6). */
  linkMBps: Summary;
  bytes: Summary;
  wireBytes: Summary;
  /** Samples whose moved copy verified (every recorded sample did: a failed one stops the run). */
  verified: number;
  /** Snapshots left on either host after the migrations (should be none). */
  leftovers: string[];
  /** CPU seconds: the machine's, and each host's agent with its CRIU runs. */
  cpuS: { machine: Summary; source: Summary; destination: Summary };
  /** Post-copy: from the commit to the last page on h2 (the window the copy depends on h1). */
  windowMs: Summary;
}

export interface CaseSummary {
  workload: MigrateWorkloadKind;
  mib: number;
  raw: { downtimeMs: Summary; steps: Record<(typeof RAW_STEPS)[number], Summary>; frozenMs: Summary; linkMBps: Summary; bytes: Summary; verified: number; cpuS: Summary };
  arms: ArmSummary[];
}

const of = (xs: MigrateSample[], f: (s: MigrateSample) => number | undefined, digits = 1): Summary =>
  roundSummary(summarize(xs.map(f).filter((v): v is number => v !== undefined && Number.isFinite(v))), digits);
const step = <K extends string>(xs: MigrateSample[], keys: readonly K[]): Record<K, Summary> =>
  Object.fromEntries(keys.map((k) => [k, of(xs, (s) => s.phases[k])])) as Record<K, Summary>;
const mbps = (bytes: number, ms: number | undefined): number | undefined => (ms ? bytes / 1e6 / (ms / 1000) : undefined);

export function summarizeCase(samples: MigrateSample[], workload: MigrateWorkloadKind, mib: number, strategies: readonly StrategyName[]): CaseSummary {
  const mine = samples.filter((s) => s.workload === workload && s.mib === mib);
  const raw = mine.filter((s) => s.arm === 'raw');
  const arms = strategies.map((strategy): ArmSummary => {
    const xs = mine.filter((s) => s.arm === strategy);
    const ratios: number[] = [];
    for (const f of xs) {
      const r = raw.find((x) => x.pair === f.pair);
      if (r && r.downtimeMs > 0) ratios.push(f.downtimeMs / r.downtimeMs);
    }
    const ratio = roundSummary(summarize(ratios), 3);
    const downtimeMs = of(xs, (s) => s.downtimeMs);
    const t = targetFor(strategy, workload);
    const met = t === undefined ? false
      : t.ratio !== undefined ? ratio.n > 0 && ratio.median <= t.ratio
        : downtimeMs.n > 0 && downtimeMs.median <= (t.maxMs ?? Infinity);
    return {
      strategy, downtimeMs, ratio, target: t ? { ...t, met } : undefined, picked: xs.flatMap((s) => pickedOf(s)),
      totalMs: of(xs, (s) => s.totalMs), cliMs: of(xs, (s) => s.cliMs), preflightMs: of(xs, (s) => s.phases['preflight']),
      steps: step(xs, FERRY_STEPS), linkMBps: of(xs, (s) => mbps(s.bytes, s.phases['transfer'])),
      bytes: of(xs, (s) => s.bytes, 0), wireBytes: of(xs, (s) => s.wireBytes, 0),
      verified: xs.filter((s) => s.verified !== '').length, leftovers: xs.flatMap((s) => s.leftovers ?? []),
      cpuS: { machine: of(xs, (s) => s.cpuS?.machine, 2), source: of(xs, (s) => s.cpuS?.source, 2), destination: of(xs, (s) => s.cpuS?.destination, 2) },
      windowMs: of(xs, (s) => postcopyWindow(s)),
    };
  });
  return {
    workload, mib, arms,
    raw: {
      downtimeMs: of(raw, (s) => s.downtimeMs), steps: step(raw, RAW_STEPS), frozenMs: of(raw, (s) => s.frozenMs),
      linkMBps: of(raw, (s) => mbps(s.bytes, s.phases['wire'])), bytes: of(raw, (s) => s.bytes, 0), verified: raw.filter((s) => s.verified !== '').length,
      cpuS: of(raw, (s) => s.cpuS?.machine, 2),
    },
  };
}

/** What `auto` picked in a sample (its result's `chosen`, kept in the sample's details). */
function pickedOf(s: MigrateSample): { strategy: string; because: string }[] {
  const c = s.details?.['chosen'] as { strategy?: unknown; because?: unknown } | undefined;
  return s.arm === 'auto' && typeof c?.strategy === 'string' && typeof c.because === 'string' ? [{ strategy: c.strategy, because: c.because }] : [];
}

const ms = (s: Summary): string => (s.n === 0 ? '-' : s.n === 1 ? s.median.toFixed(0) : `${s.median.toFixed(0)} (${s.min.toFixed(0)}–${s.max.toFixed(0)})`);
const med = (s: Summary): string => (s.n === 0 ? '-' : s.median.toFixed(0));
const sec = (s: Summary): string => (s.n === 0 ? '-' : s.median.toFixed(2));
const mibOf = (s: Summary): string => (s.n === 0 ? '-' : (s.median / 2 ** 20).toFixed(0));

export function migrateResult(o: MigrateBenchOptions, samples: MigrateSample[]): ExperimentResult {
  const cases = o.workloads.flatMap((w) => o.sizes.map((mib) => summarizeCase(samples, w, mib, o.strategies)));
  const label = (c: CaseSummary): string => `${c.workload}, ${c.mib} MiB`;
  const bars: { what: string; step: string; ms: number }[] = [];
  for (const c of cases) {
    for (const a of c.arms) for (const k of FERRY_STEPS) bars.push({ what: `${label(c)}: ${a.strategy}`, step: ferryStepName[k], ms: Math.max(0, a.steps[k].median) });
    for (const k of RAW_STEPS) bars.push({ what: `${label(c)}: raw`, step: rawStepName[k], ms: c.raw.steps[k].median });
  }
  const armCount = o.strategies.length + 1;
  return {
    name: 'migrate',
    title: `Migration between two hosts: ferry (${o.strategies.join(', ')}) against raw CRIU`,
    question: `On a ${o.rate} link between two hosts, how long is a workload stopped when ferry migrates it with each strategy, against criu dump → tar over TCP → criu restore one after another, for the same workload and size — and where does the time go?`,
    params: { strategies: o.strategies, sizes: o.sizes, runs: o.runs, rate: o.rate, workloads: o.workloads, warmMiB: o.warmMiB, warmup: o.warmup },
    durationMs: 0,
    summary: Object.fromEntries(cases.map((c) => [`${c.workload}-${c.mib}`, c])),
    charts: [{
      id: 'migrate-downtime',
      title: 'Where does the downtime of a migration go, per strategy and against raw CRIU?',
      caption: `Median ms of each step over ${o.runs} sample(s) per arm (the stacked medians need not add up to the median downtime). ` +
        'ferry: from its freeze to the copy running on h2; raw: from `criu dump` start to `criu restore -d` done.',
      spec: {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json', width: 460, height: 30 * Math.max(2, cases.length * armCount),
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
      title: `Downtime, ms: median (min–max) of ${o.runs} per arm; each strategy / raw round by round, against its target`,
      columns: ['workload', 'strategy', 'downtime', 'raw', 'strategy / raw', 'target', 'verified', 'MiB moved (wire)'],
      rows: cases.flatMap((c) => c.arms.map((a) => [label(c), a.strategy, ms(a.downtimeMs), ms(c.raw.downtimeMs), a.ratio.n ? fmt(a.ratio, 3) : '-',
        a.target === undefined ? '-' : `${a.target.text}: ${a.downtimeMs.n === 0 ? '-' : a.target.met ? 'met' : 'not met'}`,
        `${a.verified} + ${c.raw.verified} of ${a.downtimeMs.n + c.raw.downtimeMs.n}`, `${mibOf(a.bytes)} (${mibOf(a.wireBytes)})`])),
    }, {
      title: 'Where the downtime goes, median ms (each strategy | raw)',
      columns: ['workload', 'step', ...o.strategies, 'raw'],
      rows: cases.flatMap((c) => {
        const row = (what: string, f: (a: ArmSummary) => string, raw: string): string[] => [label(c), what, ...c.arms.map(f), raw];
        return [
          row('dump: freeze → images in tmpfs on h1 (raw: whole `criu dump`)', (a) => med(a.steps.dump), `${med(c.raw.steps.dump)} (frozen ${med(c.raw.frozenMs)})`),
          row('images h1 → h2', (a) => med(a.steps.transfer), med(c.raw.steps.wire)),
          row('restore on h2', (a) => med(a.steps.restore), med(c.raw.steps.restore)),
          row('source tree ends + commit', (a) => `${med(a.steps.sourceEnd)} + ${med(a.steps.commit)}`, '-'),
          row('other', (a) => med(a.steps.other), '-'),
          row('= downtime', (a) => med(a.downtimeMs), med(c.raw.downtimeMs)),
          row('link throughput, MB/s', (a) => med(a.linkMBps), med(c.raw.linkMBps)),
          row('CPU s, whole migration: machine (source agent + CRIU | destination agent + CRIU)', (a) => `${sec(a.cpuS.machine)} (${sec(a.cpuS.source)} | ${sec(a.cpuS.destination)})`, sec(c.raw.cpuS)),
          row('not downtime: preflight | whole `ferry migrate` command', (a) => `${med(a.preflightMs)} | ${med(a.cliMs)}`, '-'),
          // Post-copy's other target: the last page within 1.2 × the time the link needs for what moved.
          row('post-copy window: commit → last page (1.2 × wire time at raw\'s link rate)', (a) => (a.windowMs.n === 0 ? '-'
            : `${med(a.windowMs)} (${c.raw.linkMBps.n ? (1.2 * a.bytes.median / 1e6 / c.raw.linkMBps.median * 1000).toFixed(0) : '-'})`), '-'),
        ];
      }),
    }, {
      title: 'What auto picked, and why (its result\'s `chosen`)',
      columns: ['workload', 'picked', 'because'],
      rows: cases.flatMap((c) => c.arms.filter((a) => a.strategy === 'auto').flatMap((a) => a.picked.map((p) => [label(c), p.strategy, p.because]))),
    }],
    notes: [
      'Each sample starts a fresh workload on h1 with `ferry run` (pid 1 of its own pid namespace), moves it to h2, verifies the copy there (memcheck: every byte of every page, by the restored process; redis: every key), then ends it.',
      'ferry: `ferry migrate NAME --strategy S --to h2 --json` through h1\'s agent; its downtime runs from the freeze (CRIU\'s pre-dump notification) to the copy running on h2. Its dump step is split off by the agent\'s job timeline.',
      'raw: `criu dump` (its run includes CRIU\'s start and the tree\'s collection before the freeze) → `tar c` to bash\'s /dev/tcp → a listener in h2 that hands the socket to `tar x` → `criu restore -d`; CRIU runs inside each host\'s network namespace, images in tmpfs, logs at -v4 as ferry\'s.',
      'memcheck rewrites 1000 pages a second while it runs (about 4 MB/s: ≈ 4 % of 1 GiB during a 1 Gbit/s transfer).',
      'redis holds N keys of (1 MiB − 64) characters each: SHAKE-256 of the key\'s index as hex, compressible about 2:1.',
      `${o.warmMiB} MiB are written to and deleted from tmpfs right before each sample; every arm runs once a round, the order rotating round by round.`,
    ],
    samples,
  };
}

const ferryStepName: Record<(typeof FERRY_STEPS)[number], string> = {
  dump: 'dump', transfer: 'images h1 → h2', restore: 'restore on h2', sourceEnd: 'source ends', commit: 'commit', other: 'other',
};
const rawStepName: Record<(typeof RAW_STEPS)[number], string> = { dump: 'dump', wire: 'images h1 → h2', restore: 'restore on h2' };

/** A post-copy sample's window (the result's details.postcopy.windowMs), if it has one. */
function postcopyWindow(s: MigrateSample): number | undefined {
  const pc = s.details?.['postcopy'];
  const w = typeof pc === 'object' && pc !== null ? (pc as { windowMs?: unknown }).windowMs : undefined;
  return typeof w === 'number' ? w : undefined;
}
