import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { readDumpStats, readRestoreStats } from '../criu/images/stats.js';
import { checkpoint } from '../engine/checkpoint.js';
import { restore } from '../engine/restore.js';
import { Store } from '../store/store.js';
import { HostSampler, summarizeSamples } from '../telemetry/sampler.js';
import { linearFit, type LinearFit } from './fit.js';
import { Live, mm, timedSpawn, warmTmpfs, type BenchContext, type Chart, type ExperimentResult } from './harness.js';
import { round } from './stats.js';

/**
 * `memory` (Tošić): checkpoint and restore time, image size, host CPU and RAM against the
 * workload's memory size, for ferry's memory tier, ferry's disk tier and the raw `criu` CLI
 * (into tmpfs), measured in the same run with the arms rotated sample by sample.
 */

export type MemoryArm = 'ferry-memory' | 'ferry-disk' | 'criu-cli';
export const MEMORY_ARMS: MemoryArm[] = ['ferry-memory', 'ferry-disk', 'criu-cli'];

export interface MemorySample {
  arm: MemoryArm;
  mib: number;
  rep: number;
  checkpointMs: number;
  restoreMs: number;
  imageBytes: number;
  /** CRIU's frozen_time and memdump/memwrite (ms). */
  frozenMs: number | undefined;
  memdumpMs: number | undefined;
  memwriteMs: number | undefined;
  /** CRIU's restore_time (ms). */
  criuRestoreMs: number | undefined;
  /** Host CPU busy % (mean, max) and memory used (max) while checkpointing; the workload's RSS. */
  cpuMeanPct: number | undefined;
  cpuMaxPct: number | undefined;
  memUsedMaxBytes: number | undefined;
  rssBytes: number | undefined;
}

export interface MemoryOptions { sizesMiB: number[]; reps: number }

export const memoryDefaults = (quick: boolean): MemoryOptions =>
  quick ? { sizesMiB: [32, 64, 128], reps: 1 } : { sizesMiB: [64, 128, 256, 512, 1024, 2048, 4096], reps: 3 };

const us2ms = (us: number | undefined): number | undefined => (us === undefined ? undefined : round(us / 1000, 2));

export async function runMemory(ctx: BenchContext, o: MemoryOptions = memoryDefaults(ctx.quick)): Promise<ExperimentResult> {
  const live = new Live();
  const wl = join(ctx.tmpfsDir, 'workloads');
  const raw = join(ctx.tmpfsDir, 'raw');
  await Promise.all([mkdir(wl), mkdir(raw)]);
  const memStore = new Store({ root: join(ctx.tmpfsDir, 'store'), memoryDir: join(ctx.tmpfsDir, 'memory') });
  const diskStore = new Store({ root: join(ctx.diskDir, 'store'), memoryDir: join(ctx.tmpfsDir, 'memory-unused') });
  const samples: MemorySample[] = [];
  let seq = 0;

  const ferryRound = async (arm: MemoryArm, mib: number, rep: number): Promise<void> => {
    const store = arm === 'ferry-disk' ? diskStore : memStore;
    const w = await live.memcheck(wl, mib);
    await warmTmpfs(ctx.tmpfsDir, Math.min(2 * mib, 2048));
    let t0 = performance.now();
    const c = await checkpoint(store, { target: w.run.rootPid, tier: arm === 'ferry-disk' ? 'disk' : 'memory' });
    const checkpointMs = performance.now() - t0;
    await live.gone(w.run);
    t0 = performance.now();
    const r = await restore(store, c.snapshot);
    const restoreMs = performance.now() - t0;
    await live.killPid(r.pid);
    const t = c.telemetry;
    samples.push({
      arm, mib, rep, checkpointMs: round(checkpointMs, 2), restoreMs: round(restoreMs, 2), imageBytes: c.manifest.bytes,
      frozenMs: us2ms(c.manifest.stats?.frozen_time), memdumpMs: us2ms(c.manifest.stats?.memdump_time), memwriteMs: us2ms(c.manifest.stats?.memwrite_time),
      criuRestoreMs: us2ms(r.stats?.restore_time),
      cpuMeanPct: t.host.cpuBusyPct?.mean, cpuMaxPct: t.host.cpuBusyPct?.max, memUsedMaxBytes: t.host.memUsedBytes?.max, rssBytes: t.workload.rssBytes?.first,
    });
    await store.remove(c.snapshot);
    await w.inst.cleanup();
  };

  const rawRound = async (mib: number, rep: number): Promise<void> => {
    const w = await live.memcheck(wl, mib);
    const dir = join(raw, `r${seq++}`);
    await mkdir(dir);
    await warmTmpfs(ctx.tmpfsDir, Math.min(2 * mib, 2048));
    const sampler = new HostSampler({ rootPid: w.run.rootPid }).start();
    const d = await timedSpawn(ctx.criuPath, ['dump', '-t', String(w.run.rootPid), '-D', dir, '-v4', '-o', 'dump.log']).finally(() => sampler.stop());
    const host = summarizeSamples(sampler.stop(), sampler.intervalMs);
    await live.gone(w.run);
    const pidfile = join(dir, 'restore.pid');
    const r = await timedSpawn(ctx.criuPath, ['restore', '-D', dir, '-d', '-v4', '-o', 'restore.log', '--pidfile', pidfile]);
    await live.killPid(Number((await readFile(pidfile, 'utf8')).trim()));
    const ds = await readDumpStats(dir);
    const rs = await readRestoreStats(dir);
    const du = await timedSpawn('du', ['-sb', '--exclude=*.log', '--exclude=stats-*', '--exclude=restore.pid', dir]);
    samples.push({
      arm: 'criu-cli', mib, rep, checkpointMs: round(d.ms, 2), restoreMs: round(r.ms, 2), imageBytes: Number(du.stdout.split(/\s/)[0]),
      frozenMs: us2ms(ds?.frozen_time), memdumpMs: us2ms(ds?.memdump_time), memwriteMs: us2ms(ds?.memwrite_time), criuRestoreMs: us2ms(rs?.restore_time),
      cpuMeanPct: host.cpuBusyPct?.mean, cpuMaxPct: host.cpuBusyPct?.max, memUsedMaxBytes: host.memUsedBytes?.max, rssBytes: host.rssBytes?.first,
    });
    await rm(dir, { recursive: true, force: true });
    await w.inst.cleanup();
  };

  try {
    await memStore.ensure('memory');
    await diskStore.ensure('disk');
    // Warm-up, not recorded: loads modules and CRIU's binary for every arm.
    ctx.say('warm-up');
    for (const arm of MEMORY_ARMS) await (arm === 'criu-cli' ? rawRound(8, -1) : ferryRound(arm, 8, -1));
    samples.length = 0;
    let turn = 0;
    for (let rep = 0; rep < o.reps; rep++) {
      for (const mib of o.sizesMiB) {
        // Rotate the arms' order from one size to the next, so no arm always goes first.
        const order = MEMORY_ARMS.map((_, i) => MEMORY_ARMS[(i + turn) % MEMORY_ARMS.length]!);
        turn++;
        for (const arm of order) {
          ctx.say(`rep ${rep + 1}/${o.reps}, ${mib} MiB, ${arm}`);
          await (arm === 'criu-cli' ? rawRound(mib, rep) : ferryRound(arm, mib, rep));
        }
      }
    }
  } finally {
    live.killAll();
  }
  return summarizeMemory(samples, o);
}

export interface MemoryFits { checkpoint: LinearFit; restore: LinearFit }

export function summarizeMemory(samples: MemorySample[], o: MemoryOptions): ExperimentResult {
  const fits: Partial<Record<MemoryArm, MemoryFits>> = {};
  for (const arm of MEMORY_ARMS) {
    const s = samples.filter((x) => x.arm === arm);
    if (new Set(s.map((x) => x.mib)).size < 2) continue;
    const f = (k: 'checkpointMs' | 'restoreMs'): LinearFit => {
      const l = linearFit(s.map((x) => x.mib), s.map((x) => x[k]));
      return { slope: round(l.slope, 4), intercept: round(l.intercept, 2), r2: round(l.r2, 4), n: l.n };
    };
    fits[arm] = { checkpoint: f('checkpointMs'), restore: f('restoreMs') };
  }
  const ratios = (a: MemoryArm, b: MemoryArm, k: 'checkpointMs' | 'restoreMs'): { mib: number; ratio: number }[] => {
    const out: { mib: number; ratio: number }[] = [];
    for (const x of samples.filter((s) => s.arm === a)) {
      const y = samples.find((s) => s.arm === b && s.mib === x.mib && s.rep === x.rep);
      if (y) out.push({ mib: x.mib, ratio: round(x[k] / y[k], 3) });
    }
    return out;
  };
  const fm = fits['ferry-memory'];
  const rows: (string | number)[][] = [];
  for (const mib of o.sizesMiB) {
    for (const arm of MEMORY_ARMS) {
      const s = samples.filter((x) => x.arm === arm && x.mib === mib);
      if (!s.length) continue;
      const num = (k: keyof MemorySample): number[] => s.map((x) => x[k]).filter((v): v is number => typeof v === 'number');
      rows.push([mib, arm, mm(num('checkpointMs')), mm(num('restoreMs')), mm(num('frozenMs')), mm(s.map((x) => x.imageBytes / 2 ** 20)), mm(num('cpuMeanPct'), 0), mm(num('memUsedMaxBytes').map((b) => b / 2 ** 30), 2)]);
    }
  }
  const armColor = { field: 'arm', type: 'nominal', title: 'arm', scale: { domain: MEMORY_ARMS } };
  const vsSize = (y: 'checkpointMs' | 'restoreMs', title: string): Record<string, unknown> => ({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    width: 520, height: 300,
    data: { values: samples },
    encoding: {
      x: { field: 'mib', type: 'quantitative', title: 'workload memory (MiB)' },
      y: { field: y, type: 'quantitative', title },
      color: armColor,
    },
    layer: [
      { mark: { type: 'point', filled: true, size: 50, tooltip: true } },
      { mark: { type: 'line', strokeDash: [4, 3] }, transform: [{ regression: y, on: 'mib', groupby: ['arm'] }] },
    ],
  });
  const fitText = (arm: MemoryArm, k: keyof MemoryFits): string => {
    const f = fits[arm]?.[k];
    return f ? `${arm}: ${f.slope.toFixed(3)} ms/MiB, R² ${f.r2.toFixed(3)}` : '';
  };
  const charts: Chart[] = [
    {
      id: 'memory-checkpoint', title: 'Does checkpoint time grow linearly with memory size?',
      caption: `Every sample, with a least-squares line per arm. ${MEMORY_ARMS.map((a) => fitText(a, 'checkpoint')).filter(Boolean).join('; ')}.`,
      spec: vsSize('checkpointMs', 'checkpoint time (ms)'),
    },
    {
      id: 'memory-restore', title: 'Does restore time grow less than checkpoint time?',
      caption: `Every sample, with a least-squares line per arm. ${MEMORY_ARMS.map((a) => fitText(a, 'restore')).filter(Boolean).join('; ')}.`,
      spec: vsSize('restoreMs', 'restore time (ms)'),
    },
    {
      id: 'memory-tiers', title: 'Memory tier vs disk tier vs the raw criu CLI, sample by sample',
      caption: 'Ratios of checkpoint times of the same size and repetition, measured back to back in this run (1 = equal). Below 1: the first arm is faster.',
      spec: {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json', width: 520, height: 260,
        data: { values: [
          ...ratios('ferry-disk', 'ferry-memory', 'checkpointMs').map((r) => ({ ...r, pair: 'disk tier / memory tier' })),
          ...ratios('ferry-memory', 'criu-cli', 'checkpointMs').map((r) => ({ ...r, pair: 'ferry memory tier / criu CLI' })),
        ] },
        layer: [
          { mark: { type: 'point', filled: true, size: 50, tooltip: true }, encoding: { x: { field: 'mib', type: 'quantitative', scale: { type: 'log', base: 2 }, title: 'workload memory (MiB)' }, y: { field: 'ratio', type: 'quantitative', title: 'checkpoint time ratio' }, color: { field: 'pair', type: 'nominal', title: 'ratio' } } },
          { mark: { type: 'rule', strokeDash: [2, 2], color: 'gray' }, encoding: { y: { datum: 1 } } },
        ],
      },
    },
    {
      id: 'memory-host', title: 'What does a checkpoint cost the host in CPU and memory?',
      caption: 'Host CPU busy (mean over the checkpoint, all cores) and host memory in use (peak), sampled from /proc every 50 ms.',
      spec: {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
        data: { values: samples.map((s) => ({ ...s, memUsedGiB: s.memUsedMaxBytes === undefined ? null : s.memUsedMaxBytes / 2 ** 30 })) },
        hconcat: [
          { width: 250, height: 220, mark: { type: 'line', point: true }, encoding: { x: { field: 'mib', type: 'quantitative', title: 'workload memory (MiB)' }, y: { aggregate: 'median', field: 'cpuMeanPct', type: 'quantitative', title: 'host CPU busy, mean (%)' }, color: armColor } },
          { width: 250, height: 220, mark: { type: 'line', point: true }, encoding: { x: { field: 'mib', type: 'quantitative', title: 'workload memory (MiB)' }, y: { aggregate: 'median', field: 'memUsedGiB', type: 'quantitative', title: 'host memory in use, peak (GiB)' }, color: armColor } },
        ],
      },
    },
  ];
  return {
    name: 'memory',
    title: 'Checkpoint and restore against memory size',
    question: 'Tošić: checkpoint time grows linearly with memory while restore grows less; VAS-CRIU: an in-memory snapshot beats the file system.',
    params: { ...o },
    durationMs: 0,
    summary: {
      fits,
      restoreToCheckpointSlope: fm ? round(fm.restore.slope / fm.checkpoint.slope, 3) : undefined,
      diskOverMemoryCheckpoint: ratios('ferry-disk', 'ferry-memory', 'checkpointMs'),
      ferryOverCriuCheckpoint: ratios('ferry-memory', 'criu-cli', 'checkpointMs'),
      ferryOverCriuRestore: ratios('ferry-memory', 'criu-cli', 'restoreMs'),
    },
    charts,
    tables: [{
      title: 'Per size and arm: median (min–max)',
      columns: ['MiB', 'arm', 'checkpoint ms', 'restore ms', 'frozen ms', 'image MiB', 'host CPU %', 'host mem GiB'],
      rows,
    }],
    notes: [
      'Each sample starts from a fresh memcheck workload (pseudo-random pages, so nothing compresses or dedups); tmpfs is written and emptied before each checkpoint to even out the VM\'s first-touch cost.',
      'ferry times are the engine\'s checkpoint()/restore() in-process (pre-checks, CRIU, checksums/verification); criu-cli is `criu dump`/`criu restore -d` spawned, timed to exit, into tmpfs.',
      'The disk tier writes through the page cache (no fsync), as ferry does.',
    ],
    samples,
  };
}
