import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { checkpoint } from '../engine/checkpoint.js';
import { restore } from '../engine/restore.js';
import { Store } from '../store/store.js';
import { buildNativeWorkloads, pickFreePort, WORKLOADS_BUILD_DIR } from '../testing/workloads.js';
import { FerryError } from '../util/errors.js';
import { findOnPath } from '../util/path.js';
import { commandInstance, Live, mm, tcpAsk, timedSpawn, until, type BenchContext, type ExperimentResult } from './harness.js';
import { round, summarize } from './stats.js';

/**
 * `warmstart` (CRIU's usage scenarios): a slow-booting program started cold until it answers,
 * against `ferry restore` of a snapshot taken once it answered, until it answers again.
 * Programs: redis-server loading a large RDB file, and a JVM service building its index
 * (test/workloads/SlowBoot.java). Each repetition boots cold, checkpoints at readiness, restores.
 */

export interface WarmstartProgram {
  name: string;
  description: string;
  /** Prepares what every boot needs (a dataset, a class file) under `dir`; undefined → skipped, with why. */
  prepare(dir: string, quick: boolean, ctx: BenchContext): Promise<{ command: (port: number) => string[]; detail: string } | { skip: string }>;
  /** True once the program on `port` answers as a ready service. */
  ready(port: number): Promise<boolean>;
  tcpEstablished: boolean;
}

const which = (name: string): string | undefined => findOnPath(name, { PATH: process.env['PATH'] ?? '/usr/bin:/bin' });

const redisProgram: WarmstartProgram = {
  name: 'redis',
  description: 'redis-server loading an RDB file of DEBUG POPULATE keys',
  tcpEstablished: true,
  async prepare(dir, quick, ctx) {
    const server = which('redis-server');
    const cli = which('redis-cli');
    if (!server || !cli) return { skip: 'redis-server/redis-cli are not installed (Debian: redis-server redis-tools; `make setup`)' };
    const keys = quick ? 300_000 : 3_000_000;
    const port = await pickFreePort();
    const live = new Live();
    const run = await live.launch(commandInstance(dir, [server, '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--dbfilename', 'dump.rdb',
      '--save', '', '--appendonly', 'no', '--enable-debug-command', 'local']));
    try {
      await until(async () => (await tcpAsk(port, 'PING\r\n', /\r\n/)).startsWith('+PONG'), 10_000, 'redis-server to answer PING');
      ctx.say(`generating ${keys} keys`);
      await timedSpawn(cli, ['-p', String(port), 'DEBUG', 'POPULATE', String(keys), 'key', '100']);
      await timedSpawn(cli, ['-p', String(port), 'SAVE']);
    } finally {
      await live.kill(run);
    }
    const rdb = (await stat(join(dir, 'dump.rdb'))).size;
    return {
      detail: `${keys} keys of 100 bytes, RDB ${(rdb / 2 ** 20).toFixed(0)} MiB`,
      command: (p) => [server, '--port', String(p), '--bind', '127.0.0.1', '--dir', dir, '--dbfilename', 'dump.rdb', '--save', '', '--appendonly', 'no'],
    };
  },
  async ready(port) {
    return (await tcpAsk(port, 'PING\r\n', /\r\n/)).startsWith('+PONG');
  },
};

const jvmProgram: WarmstartProgram = {
  name: 'jvm',
  description: 'a JVM service that builds a sorted index before it listens (test/workloads/SlowBoot.java)',
  tcpEstablished: true,
  async prepare(_dir, quick) {
    const java = which('java');
    if (!java) return { skip: 'java is not installed (Debian: openjdk-17-jdk-headless; `make setup`)' };
    await buildNativeWorkloads();
    if (!existsSync(join(WORKLOADS_BUILD_DIR, 'SlowBoot.class'))) return { skip: 'SlowBoot.class was not built: javac is missing (Debian: openjdk-17-jdk-headless)' };
    const entries = quick ? 300_000 : 2_000_000;
    return {
      detail: `${entries} index entries`,
      // -XX:-UsePerfData: no hsperfdata file mapped from /tmp; -Xshare:off: no CDS archive mapping.
      command: (p) => [java, '-XX:-UsePerfData', '-Xshare:off', '-cp', WORKLOADS_BUILD_DIR, 'SlowBoot', String(p), String(entries)],
    };
  },
  async ready(port) {
    return /^ready /.test(await tcpAsk(port, undefined, /\n/));
  },
};

export const WARMSTART_PROGRAMS: WarmstartProgram[] = [redisProgram, jvmProgram];

export interface WarmstartSample {
  program: string;
  rep: number;
  coldMs: number;
  /** ferry restore (engine) until the program answers. */
  warmMs: number;
  restoreMs: number;
  checkpointMs: number;
  imageBytes: number;
  rssBytes: number | undefined;
}

export async function runWarmstart(ctx: BenchContext, programs = WARMSTART_PROGRAMS): Promise<ExperimentResult> {
  const reps = ctx.quick ? 1 : 3;
  const live = new Live();
  const store = new Store({ root: join(ctx.tmpfsDir, 'store'), memoryDir: join(ctx.tmpfsDir, 'memory') });
  await store.ensure('memory');
  const samples: WarmstartSample[] = [];
  const details: Record<string, string> = {};
  const notes: string[] = [];
  try {
    for (const p of programs) {
      const dir = await mkdtemp(join(ctx.tmpfsDir, `${p.name}-`));
      ctx.say(`${p.name}: preparing`);
      const prep = await p.prepare(dir, ctx.quick, ctx);
      if ('skip' in prep) {
        notes.push(`${p.name} skipped: ${prep.skip}`);
        ctx.say(`${p.name}: skipped: ${prep.skip}`);
        continue;
      }
      details[p.name] = prep.detail;
      for (let rep = -1; rep < reps; rep++) {
        ctx.say(`${p.name}: ${rep < 0 ? 'warm-up' : `rep ${rep + 1}/${reps}`}: cold boot`);
        const port = await pickFreePort();
        const wd = join(dir, `run${rep + 1}`);
        await mkdir(wd);
        const t0 = performance.now();
        const run = await live.launch(commandInstance(wd, prep.command(port)));
        await until(() => p.ready(port), 120_000, `${p.name} to answer on port ${port}`);
        const coldMs = performance.now() - t0;
        ctx.say(`${p.name}: ready after ${coldMs.toFixed(0)} ms; checkpoint, then restore`);
        let t1 = performance.now();
        const c = await checkpoint(store, { target: run.rootPid, tier: 'memory', tcpEstablished: p.tcpEstablished });
        const checkpointMs = performance.now() - t1;
        await live.gone(run);
        t1 = performance.now();
        const r = await restore(store, c.snapshot);
        const restoreMs = performance.now() - t1;
        await until(() => p.ready(port), 30_000, `restored ${p.name} to answer on port ${port}`, 1);
        const warmMs = performance.now() - t1;
        await live.killPid(r.pid);
        await store.remove(c.snapshot);
        if (rep >= 0) {
          samples.push({ program: p.name, rep, coldMs: round(coldMs, 2), warmMs: round(warmMs, 2), restoreMs: round(restoreMs, 2), checkpointMs: round(checkpointMs, 2), imageBytes: c.manifest.bytes, rssBytes: c.telemetry.workload.rssBytes?.first });
        }
      }
    }
  } finally {
    live.killAll();
  }
  if (samples.length === 0 && programs.length > 0) {
    throw new FerryError('ERR_BENCH', `warmstart: no program could run (${notes.join('; ')})`, { hint: 'run `make setup` to install redis-server and a JDK' });
  }
  return summarizeWarmstart(samples, details, notes, reps);
}

export function summarizeWarmstart(samples: WarmstartSample[], details: Record<string, string>, notes: string[], reps: number): ExperimentResult {
  const names = [...new Set(samples.map((s) => s.program))];
  const bars = samples.flatMap((s) => [
    { program: s.program, rep: s.rep, how: 'cold boot', ms: s.coldMs },
    { program: s.program, rep: s.rep, how: 'ferry restore', ms: s.warmMs },
  ]);
  const summary: Record<string, unknown> = {};
  const rows: (string | number)[][] = [];
  for (const n of names) {
    const s = samples.filter((x) => x.program === n);
    const speedups = s.map((x) => x.coldMs / x.warmMs);
    summary[n] = { detail: details[n], coldMs: summarize(s.map((x) => x.coldMs)), warmMs: summarize(s.map((x) => x.warmMs)), speedup: summarize(speedups.map((x) => round(x, 2))) };
    rows.push([n, details[n] ?? '', mm(s.map((x) => x.coldMs), 0), mm(s.map((x) => x.warmMs), 0), mm(speedups, 2), mm(s.map((x) => x.imageBytes / 2 ** 20), 0)]);
  }
  return {
    name: 'warmstart',
    title: 'Warm start of slow-booting programs',
    question: 'CRIU usage scenarios: is restoring a snapshot taken at readiness faster than booting, for programs that take a while to become ready?',
    params: { reps, programs: names },
    durationMs: 0,
    summary,
    charts: [{
      id: 'warmstart', title: 'Cold boot or restore: which answers sooner?',
      caption: 'Time from start until the program answers (redis: PING → PONG; JVM: its ready line), cold vs ferry restore of a snapshot taken at readiness (memory tier). Bars: median; ticks: every repetition.',
      spec: {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json', width: 420, height: 240, data: { values: bars },
        encoding: { y: { field: 'program', type: 'nominal', title: null, sort: names }, yOffset: { field: 'how' }, color: { field: 'how', type: 'nominal', title: null, scale: { domain: ['cold boot', 'ferry restore'] } } },
        layer: [
          { mark: { type: 'bar', tooltip: true }, encoding: { x: { aggregate: 'median', field: 'ms', type: 'quantitative', title: 'until it answers (ms)' } } },
          { mark: { type: 'tick', color: 'black', thickness: 1.5 }, encoding: { x: { field: 'ms', type: 'quantitative' } } },
        ],
      },
    }],
    tables: [{ title: 'Median (min–max)', columns: ['program', 'dataset', 'cold boot ms', 'ferry restore ms', 'speed-up ×', 'image MiB'], rows }],
    notes: [
      'Cold boot starts the program the way `ferry run` does (own pid namespace, session leader) and polls every 5 ms until it answers; the restore is ferry\'s engine (checksums verified) plus the same probe.',
      'The `ferry restore` CLI adds Node\'s start-up to the restore (see `ferry bench overhead`).',
      ...notes,
    ],
    samples,
  };
}
