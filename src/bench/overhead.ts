import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { hostname, release } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { PROJECT_ROOT, resolveCriuBinary } from '../criu/binary.js';
import { readDumpStats } from '../criu/images/stats.js';
import { checkpoint } from '../engine/checkpoint.js';
import { restore } from '../engine/restore.js';
import { Store } from '../store/store.js';
import type { IsolatedRun } from '../testing/workloads.js';
import { Live, timedSpawn, warmTmpfs } from './harness.js';
import { FerryError } from '../util/errors.js';
import { round, roundSummary, summarize, type Summary } from './stats.js';

/**
 * `ferry bench overhead`: what ferry adds on top of raw CRIU, in one run, on the same workload
 * into the same tmpfs.
 *   engine: ferry's engine in-process (checkpoint()/restore()) vs the `criu dump`/`criu restore -d`
 *           CLI spawned (timed spawn to exit), on a big memcheck workload → wall-time ratios (the
 *           restore with its verification: the images CRIU parses before it starts, the pages
 *           images beside it, gating post-restore), and the time the tasks stayed frozen during
 *           the dump (CRIU's frozen_time, both arms); and on a tiny one → fixed overhead in ms.
 *   cli:    `bin/ferry checkpoint`/`restore` vs the raw CLI → added ms, beside `node -e 0`.
 * Arms are interleaved pair by pair (A,B then B,A); every sample starts from a fresh workload.
 */

export interface OverheadOptions {
  /** Size of the big workload (MiB). */
  mib: number;
  /** Pairs (ferry, raw) on the big workload. */
  reps: number;
  /** Size of the tiny workload (MiB). */
  tinyMib: number;
  tinyReps: number;
  /** Pairs (ferry CLI, raw CLI) on the tiny workload; as many `node -e 0` samples. */
  cliReps: number;
  /** MiB written to and deleted from tmpfs before each big-workload sample (0: none). */
  warmMiB: number;
  /** Where the store, images and workloads go (tmpfs). */
  baseDir: string;
  progress?: (line: string) => void;
}

export function defaultOptions(quick: boolean): OverheadOptions {
  return quick
    ? { mib: 256, reps: 3, tinyMib: 1, tinyReps: 5, cliReps: 3, warmMiB: 512, baseDir: '/dev/shm' }
    : { mib: 1024, reps: 7, tinyMib: 1, tinyReps: 11, cliReps: 7, warmMiB: 2048, baseDir: '/dev/shm' };
}

export type Phase = 'engine' | 'tiny' | 'cli' | 'node';
export type Arm = 'ferry' | 'raw' | 'node';
export type Op = 'dump' | 'restore' | 'startup' | 'read';

export interface Sample {
  phase: Phase;
  pair: number;
  arm: Arm;
  op: Op;
  /** Wall time (ms). */
  ms: number;
  /** ferry's own breakdown (ms), where it reports one. */
  detail?: Record<string, number>;
}

export interface OverheadReport {
  host: string;
  kernel: string;
  criuVersion: string;
  criuPath: string;
  nodeVersion: string;
  workloadMiB: number;
  tinyMiB: number;
  reps: { engine: number; tiny: number; cli: number };
  results: {
    engineDumpRatio: number;
    /** Time the tasks stayed frozen (CRIU's frozen_time), ferry over raw, pair by pair. */
    engineFrozenRatio: number;
    engineRestoreRatio: number;
    tinyFixedOverheadMs: { dump: number; restore: number };
    cliAddedMs: { dump: number; restore: number };
    nodeStartupMs: number;
    /** Every figure above as median with min–max and n (ratios and differences pair by pair). */
    detail: Record<string, Summary>;
  };
  samples: Sample[];
}

export async function runOverhead(o: OverheadOptions): Promise<OverheadReport> {
  const say = o.progress ?? ((): void => {});
  const criu = resolveCriuBinary();
  if (!criu) throw new FerryError('ERR_CRIU_MISSING', 'no CRIU binary found', { hint: 'run `make setup`, or set FERRY_CRIU' });
  const criuVersion = (await timedSpawn(criu.path, ['--version'])).stdout.match(/Version:\s*(\S+)/)?.[1] ?? 'unknown';
  const base = await mkdtemp(join(o.baseDir, 'ferry-bench-'));
  const storeRoot = join(base, 'store');
  const memoryDir = join(base, 'memory');
  const rawDir = join(base, 'raw');
  const wlDir = join(base, 'workloads');
  await Promise.all([mkdir(rawDir), mkdir(wlDir)]);
  // The CLI arm gets the same base through FERRY_MEMORY_TIER: both find the tier at <base>/<store-id>.
  const store = new Store({ root: storeRoot, memoryBase: memoryDir });
  await store.ensure('memory');
  const ferryBin = join(PROJECT_ROOT, 'bin', 'ferry');
  const cliEnv = { ...process.env, FERRY_MEMORY_TIER: memoryDir, FERRY_CRIU: criu.path };
  // The CLI arm measures the bundle users run: a stale one makes bin/ferry fall back to tsc's
  // output (≈ 100 ms slower), which would measure the fallback instead.
  const build = (JSON.parse((await timedSpawn(ferryBin, ['version', '--json'])).stdout || '{}') as { build?: string }).build;
  if (build !== 'bundle') {
    throw new FerryError('ERR_BENCH', `bin/ferry runs its ${build ?? 'unknown'} build, not the CLI bundle, so the CLI arm would measure the fallback`, {
      hint: 'rebuild the bundle (node scripts/build-cli.mjs), then run the benchmark again',
    });
  }
  const live = new Live();
  const samples: Sample[] = [];
  let seq = 0;

  const start = (mib: number) => live.memcheck(wlDir, mib);
  /** The original must be gone (and reaped) before the restore. */
  const gone = (w: { run: IsolatedRun }) => live.gone(w.run);
  const killRestored = (pid: number) => live.killPid(pid);

  /** One ferry-engine round: fresh workload, checkpoint(), original gone, restore(), kill. */
  const engineRound = async (phase: Phase, pair: number, mib: number, warm: number): Promise<void> => {
    const w = await start(mib);
    await warmTmpfs(base, warm);
    let t0 = performance.now();
    const c = await checkpoint(store, { target: w.run.rootPid, tier: 'memory' });
    const dumpMs = performance.now() - t0;
    const t = c.manifest.timings;
    const frozenMs = (c.manifest.stats?.frozen_time ?? NaN) / 1000;
    samples.push({ phase, pair, arm: 'ferry', op: 'dump', ms: dumpMs, detail: { criuMs: t.criuMs, checksumMs: t.checksumMs, otherMs: round(dumpMs - t.criuMs - t.checksumMs), frozenMs } });
    await gone(w);
    t0 = performance.now();
    const r = await restore(store, c.snapshot);
    const restoreMs = performance.now() - t0;
    // verifyMs: the images CRIU parses, before it starts; verifyPagesMs: the pages images, hashed
    // while CRIU restores (from the same start, so not added to the others).
    samples.push({ phase, pair, arm: 'ferry', op: 'restore', ms: restoreMs, detail: {
      criuMs: r.timings.criuMs, verifyMs: r.timings.verifyMs, otherMs: round(restoreMs - r.timings.criuMs - r.timings.verifyMs),
      verifyPagesMs: r.telemetry.phasesMs['verifyPages'] ?? NaN,
    } });
    await killRestored(r.pid);
    await store.remove(c.snapshot);
    await w.inst.cleanup();
  };

  /** One raw-CRIU round, the same steps with the `criu` CLI. */
  const rawRound = async (phase: Phase, pair: number, mib: number, warm: number): Promise<void> => {
    const w = await start(mib);
    const dir = join(rawDir, `r${seq++}`);
    await mkdir(dir);
    await warmTmpfs(base, warm);
    const d = await timedSpawn(criu.path, ['dump', '-t', String(w.run.rootPid), '-D', dir, '-v4', '-o', 'dump.log']);
    samples.push({ phase, pair, arm: 'raw', op: 'dump', ms: d.ms, detail: { frozenMs: ((await readDumpStats(dir))?.frozen_time ?? NaN) / 1000 } });
    if (phase === 'engine') {
      // The physical floor of verifying before a restore: reading the pages image once (one core).
      const pages = (await readdir(dir)).filter((n) => /^pages-\d+\.img$/.test(n)).map((n) => join(dir, n));
      let readMs = 0;
      for (const p of pages) readMs += (await timedSpawn('dd', [`if=${p}`, 'of=/dev/null', 'bs=4M', 'status=none'])).ms;
      samples.push({ phase, pair, arm: 'raw', op: 'read', ms: readMs });
    }
    await gone(w);
    const pidfile = join(dir, 'restore.pid');
    const r = await timedSpawn(criu.path, ['restore', '-D', dir, '-d', '-v4', '-o', 'restore.log', '--pidfile', pidfile]);
    samples.push({ phase, pair, arm: 'raw', op: 'restore', ms: r.ms });
    await killRestored(Number((await readFile(pidfile, 'utf8')).trim()));
    await rm(dir, { recursive: true, force: true });
    await w.inst.cleanup();
  };

  /** One ferry-CLI round: `bin/ferry checkpoint PID --tier memory`, then `bin/ferry restore ID`. */
  const cliRound = async (pair: number, mib: number): Promise<void> => {
    const w = await start(mib);
    const d = await timedSpawn(ferryBin, ['--store', storeRoot, 'checkpoint', String(w.run.rootPid), '--tier', 'memory'], { env: cliEnv });
    const id = d.stdout.trim();
    samples.push({ phase: 'cli', pair, arm: 'ferry', op: 'dump', ms: d.ms });
    await gone(w);
    const r = await timedSpawn(ferryBin, ['--store', storeRoot, 'restore', id], { env: cliEnv });
    samples.push({ phase: 'cli', pair, arm: 'ferry', op: 'restore', ms: r.ms });
    await killRestored(Number(r.stdout.trim()));
    await store.remove(id);
    await w.inst.cleanup();
  };

  const nodeStartup = async (pair: number): Promise<void> => {
    const n = await timedSpawn(process.execPath, ['-e', '0']);
    samples.push({ phase: 'node', pair, arm: 'node', op: 'startup', ms: n.ms });
  };

  /** Interleaved pairs: A,B then B,A, … */
  const pairs = async (what: string, n: number, a: (i: number) => Promise<void>, b: (i: number) => Promise<void>): Promise<void> => {
    for (let i = 0; i < n; i++) {
      say(`${what}: pair ${i + 1}/${n}`);
      if (i % 2 === 0) { await a(i); await b(i); } else { await b(i); await a(i); }
    }
  };

  try {
    say(`overhead: CRIU ${criuVersion} (${criu.path}), working in ${base}`);
    // Warm-up (not recorded): loads ferry's modules and CRIU's binary, both arms.
    say('warm-up');
    await engineRound('tiny', -1, o.tinyMib, 0);
    await rawRound('tiny', -1, o.tinyMib, 0);
    samples.length = 0;
    await pairs(`tiny (${o.tinyMib} MiB) engine vs raw`, o.tinyReps,
      (i) => engineRound('tiny', i, o.tinyMib, 0), (i) => rawRound('tiny', i, o.tinyMib, 0));
    await pairs(`${o.mib} MiB engine vs raw`, o.reps,
      (i) => engineRound('engine', i, o.mib, o.warmMiB), (i) => rawRound('engine', i, o.mib, o.warmMiB));
    await pairs(`tiny (${o.tinyMib} MiB) ferry CLI vs raw CLI, and node -e 0`, o.cliReps,
      async (i) => { await nodeStartup(i); await cliRound(i, o.tinyMib); },
      (i) => rawRound('cli', i, o.tinyMib, 0));
  } finally {
    live.killAll();
    await rm(base, { recursive: true, force: true }).catch(() => undefined);
  }

  const ms = (phase: Phase, arm: Arm, op: Op, pair: number): number | undefined =>
    samples.find((s) => s.phase === phase && s.arm === arm && s.op === op && s.pair === pair)?.ms;
  const paired = (phase: Phase, op: Op, f: (ferry: number, raw: number) => number): Summary => {
    const out: number[] = [];
    for (const s of samples) {
      if (s.phase !== phase || s.arm !== 'ferry' || s.op !== op) continue;
      const raw = ms(phase, 'raw', op, s.pair);
      if (raw !== undefined) out.push(f(s.ms, raw));
    }
    return summarize(out);
  };
  const of = (phase: Phase, arm: Arm, op: Op): Summary => summarize(samples.filter((s) => s.phase === phase && s.arm === arm && s.op === op).map((s) => s.ms));
  const detailOf = (phase: Phase, op: Op, key: string): Summary =>
    summarize(samples.filter((s) => s.phase === phase && s.arm === 'ferry' && s.op === op && s.detail?.[key] !== undefined).map((s) => s.detail![key]!));
  const ratio = (f: number, r: number): number => f / r;
  /** A detail figure of both arms, pair by pair. */
  const pairedDetail = (phase: Phase, op: Op, key: string, f: (ferry: number, raw: number) => number): Summary => {
    const out: number[] = [];
    for (const s of samples) {
      if (s.phase !== phase || s.arm !== 'ferry' || s.op !== op || s.detail?.[key] === undefined) continue;
      const raw = samples.find((x) => x.phase === phase && x.arm === 'raw' && x.op === op && x.pair === s.pair)?.detail?.[key];
      if (raw !== undefined && Number.isFinite(raw) && Number.isFinite(s.detail[key])) out.push(f(s.detail[key], raw));
    }
    return summarize(out);
  };
  const rawDetailOf = (phase: Phase, op: Op, key: string): Summary =>
    summarize(samples.filter((s) => s.phase === phase && s.arm === 'raw' && s.op === op && s.detail?.[key] !== undefined).map((s) => s.detail![key]!));
  const diff = (f: number, r: number): number => f - r;

  const detail: Record<string, Summary> = {
    engineDumpRatio: roundSummary(paired('engine', 'dump', ratio), 3),
    engineFrozenRatio: roundSummary(pairedDetail('engine', 'dump', 'frozenMs', ratio), 3),
    engineFerryFrozenMs: roundSummary(detailOf('engine', 'dump', 'frozenMs')),
    engineRawFrozenMs: roundSummary(rawDetailOf('engine', 'dump', 'frozenMs')),
    engineRestoreRatio: roundSummary(paired('engine', 'restore', ratio), 3),
    engineDumpAddedMs: roundSummary(paired('engine', 'dump', diff)),
    engineRestoreAddedMs: roundSummary(paired('engine', 'restore', diff)),
    engineFerryDumpMs: roundSummary(of('engine', 'ferry', 'dump')),
    engineRawDumpMs: roundSummary(of('engine', 'raw', 'dump')),
    engineFerryRestoreMs: roundSummary(of('engine', 'ferry', 'restore')),
    engineRawRestoreMs: roundSummary(of('engine', 'raw', 'restore')),
    engineReadImagesMs: roundSummary(of('engine', 'raw', 'read')),
    engineReadOverRestore: roundSummary(summarize(samples.filter((s) => s.phase === 'engine' && s.op === 'read')
      .flatMap((s) => { const r = ms('engine', 'raw', 'restore', s.pair); return r ? [s.ms / r] : []; })), 3),
    engineDumpCriuMs: roundSummary(detailOf('engine', 'dump', 'criuMs')),
    engineDumpChecksumMs: roundSummary(detailOf('engine', 'dump', 'checksumMs')),
    engineDumpOtherMs: roundSummary(detailOf('engine', 'dump', 'otherMs')),
    engineRestoreCriuMs: roundSummary(detailOf('engine', 'restore', 'criuMs')),
    engineRestoreVerifyMs: roundSummary(detailOf('engine', 'restore', 'verifyMs')),
    engineRestoreVerifyPagesMs: roundSummary(detailOf('engine', 'restore', 'verifyPagesMs')),
    engineRestoreOtherMs: roundSummary(detailOf('engine', 'restore', 'otherMs')),
    tinyDumpAddedMs: roundSummary(paired('tiny', 'dump', diff)),
    tinyRestoreAddedMs: roundSummary(paired('tiny', 'restore', diff)),
    tinyFerryDumpMs: roundSummary(of('tiny', 'ferry', 'dump')),
    tinyRawDumpMs: roundSummary(of('tiny', 'raw', 'dump')),
    tinyFerryRestoreMs: roundSummary(of('tiny', 'ferry', 'restore')),
    tinyRawRestoreMs: roundSummary(of('tiny', 'raw', 'restore')),
    tinyDumpCriuMs: roundSummary(detailOf('tiny', 'dump', 'criuMs')),
    tinyDumpOtherMs: roundSummary(detailOf('tiny', 'dump', 'otherMs')),
    tinyRestoreCriuMs: roundSummary(detailOf('tiny', 'restore', 'criuMs')),
    tinyRestoreOtherMs: roundSummary(detailOf('tiny', 'restore', 'otherMs')),
    cliDumpAddedMs: roundSummary(paired('cli', 'dump', diff)),
    cliRestoreAddedMs: roundSummary(paired('cli', 'restore', diff)),
    cliFerryDumpMs: roundSummary(of('cli', 'ferry', 'dump')),
    cliRawDumpMs: roundSummary(of('cli', 'raw', 'dump')),
    cliFerryRestoreMs: roundSummary(of('cli', 'ferry', 'restore')),
    cliRawRestoreMs: roundSummary(of('cli', 'raw', 'restore')),
    nodeStartupMs: roundSummary(of('node', 'node', 'startup')),
  };
  const med = (k: string): number => detail[k]!.median;
  return {
    host: hostname(),
    kernel: release(),
    criuVersion,
    criuPath: criu.path,
    nodeVersion: process.version,
    workloadMiB: o.mib,
    tinyMiB: o.tinyMib,
    reps: { engine: o.reps, tiny: o.tinyReps, cli: o.cliReps },
    results: {
      engineDumpRatio: med('engineDumpRatio'),
      engineFrozenRatio: med('engineFrozenRatio'),
      engineRestoreRatio: med('engineRestoreRatio'),
      tinyFixedOverheadMs: { dump: med('tinyDumpAddedMs'), restore: med('tinyRestoreAddedMs') },
      cliAddedMs: { dump: med('cliDumpAddedMs'), restore: med('cliRestoreAddedMs') },
      nodeStartupMs: med('nodeStartupMs'),
      detail,
    },
    samples: samples.map((s) => ({ ...s, ms: round(s.ms, 2) })),
  };
}

/** The report as a table for the terminal. */
export function formatReport(r: OverheadReport): string {
  const d = r.results.detail;
  const f = (k: string, digits = 1): string => {
    const s = d[k];
    return s ? `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})` : '-';
  };
  const rows: [string, string, string, string][] = [
    [`engine, ${r.workloadMiB} MiB, dump`, f('engineFerryDumpMs'), f('engineRawDumpMs'), `×${f('engineDumpRatio', 3)}  +${f('engineDumpAddedMs')} ms`],
    [`engine, ${r.workloadMiB} MiB, dump: tasks frozen`, f('engineFerryFrozenMs'), f('engineRawFrozenMs'), `×${f('engineFrozenRatio', 3)}`],
    [`engine, ${r.workloadMiB} MiB, restore (verified)`, f('engineFerryRestoreMs'), f('engineRawRestoreMs'), `×${f('engineRestoreRatio', 3)}  +${f('engineRestoreAddedMs')} ms`],
    [`engine, ${r.tinyMiB} MiB, dump`, f('tinyFerryDumpMs'), f('tinyRawDumpMs'), `+${f('tinyDumpAddedMs')} ms`],
    [`engine, ${r.tinyMiB} MiB, restore`, f('tinyFerryRestoreMs'), f('tinyRawRestoreMs'), `+${f('tinyRestoreAddedMs')} ms`],
    [`CLI, ${r.tinyMiB} MiB, dump`, f('cliFerryDumpMs'), f('cliRawDumpMs'), `+${f('cliDumpAddedMs')} ms`],
    [`CLI, ${r.tinyMiB} MiB, restore`, f('cliFerryRestoreMs'), f('cliRawRestoreMs'), `+${f('cliRestoreAddedMs')} ms`],
    ['node -e 0', f('nodeStartupMs'), '', ''],
  ];
  const head: [string, string, string, string] = ['', 'ferry ms', 'raw criu ms', 'ferry vs raw (pair by pair)'];
  const w = [0, 1, 2, 3].map((i) => Math.max(head[i]!.length, ...rows.map((row) => row[i]!.length)));
  const line = (row: string[]): string => row.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd();
  const out = [
    `ferry bench overhead — ${r.host}, kernel ${r.kernel}, CRIU ${r.criuVersion}, node ${r.nodeVersion}`,
    `reps (pairs): ${r.workloadMiB} MiB ${r.reps.engine}, tiny ${r.reps.tiny}, CLI ${r.reps.cli}; median (min–max)`,
    '',
    line(head),
    ...rows.map(line),
    '',
    `ferry's breakdown, ${r.workloadMiB} MiB: dump = CRIU ${f('engineDumpCriuMs')} + checksums ${f('engineDumpChecksumMs')} + other ${f('engineDumpOtherMs')} ms;`,
    `  restore = verify the images CRIU parses ${f('engineRestoreVerifyMs')} + CRIU ${f('engineRestoreCriuMs')} + other ${f('engineRestoreOtherMs')} ms;`,
    `  the pages images were verified ${f('engineRestoreVerifyPagesMs')} ms after the start, beside CRIU (its post-restore waits for them)`,
    `for comparison, ${r.workloadMiB} MiB: reading the pages image once (dd, one core) takes ${f('engineReadImagesMs')} ms = ` +
      `×${f('engineReadOverRestore', 3)} of raw CRIU's restore: what verifying before CRIU started used to cost at least`,
    `ferry's breakdown, ${r.tinyMiB} MiB: dump = CRIU ${f('tinyDumpCriuMs')} + other ${f('tinyDumpOtherMs')} ms; restore = CRIU ${f('tinyRestoreCriuMs')} + other ${f('tinyRestoreOtherMs')} ms`,
  ];
  return out.join('\n') + '\n';
}
