import { existsSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { PROJECT_ROOT } from '../criu/binary.js';
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
  prepare(dir: string, quick: boolean, ctx: BenchContext): Promise<{ command: (port: number) => string[]; inputs: string[]; detail: string } | { skip: string }>;
  /** True once the program on `port` answers as a ready service (the bench's own probe). */
  ready(port: number): Promise<boolean>;
  /** The `ferry run --ready` probe for it. */
  probe(port: number): string;
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
      inputs: [join(dir, 'dump.rdb')],
      command: (p) => [server, '--port', String(p), '--bind', '127.0.0.1', '--dir', dir, '--dbfilename', 'dump.rdb', '--save', '', '--appendonly', 'no'],
    };
  },
  async ready(port) {
    return (await tcpAsk(port, 'PING\r\n', /\r\n/)).startsWith('+PONG');
  },
  // redis accepts connections while it loads (answering -LOADING): its log line says when it is done.
  probe: () => 'log:Ready to accept connections',
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
      inputs: [join(WORKLOADS_BUILD_DIR, 'SlowBoot.class')],
      // -XX:-UsePerfData: no hsperfdata file mapped from /tmp; -Xshare:off: no CDS archive mapping.
      command: (p) => [java, '-XX:-UsePerfData', '-Xshare:off', '-cp', WORKLOADS_BUILD_DIR, 'SlowBoot', String(p), String(entries)],
    };
  },
  async ready(port) {
    return /^ready /.test(await tcpAsk(port, undefined, /\n/));
  },
  probe: (port) => `tcp:${port}`,
};

export const WARMSTART_PROGRAMS: WarmstartProgram[] = [redisProgram, jvmProgram];

export interface WarmstartSample {
  program: string;
  rep: number;
  /** Which arm ran first in this repetition (they alternate; warm always uses the newest cold arm's snapshot). */
  order: 'cold-first' | 'warm-first';
  /** `ferry run --warm` booting cold: from spawning the CLI until the program answers the bench's own probe. */
  coldMs: number;
  /** `ferry run --warm` restoring the key's snapshot: the same span. */
  warmMs: number;
  /** ferry's own readyMs (inside the CLI, from its start until its --ready probe passed). */
  coldReadyMs: number;
  warmReadyMs: number;
  /** Until the CLI returned: a cold run returns after it took the warm snapshot. */
  coldCliMs: number;
  warmCliMs: number;
  /** The warm snapshot's images. */
  imageBytes: number;
}

/** What the issue asks of a warm start: ready at least this many times sooner than a cold boot. */
export const WARMSTART_TARGET = 10;

interface RunOut { pid: number; name: string; warm: boolean; readyMs: number; snapshot?: string }

/**
 * One `ferry run --warm` through the real CLI, timed from the spawn until the program answers
 * the bench's own probe (polled every 2 ms beside it) and until the CLI returns.
 */
async function ferryRun(store: string, env: NodeJS.ProcessEnv, args: string[], ready: () => Promise<boolean>): Promise<{ out: RunOut; answerMs: number; cliMs: number }> {
  const t0 = performance.now();
  let answered: number | undefined;
  let stop = false;
  const poll = (async () => {
    while (!stop && answered === undefined) {
      if (await ready().catch(() => false)) answered = performance.now() - t0;
      else await new Promise((r) => setTimeout(r, 2));
    }
  })();
  try {
    const r = await timedSpawn(FERRY, ['--store', store, 'run', '--json', ...args], { env });
    const cliMs = performance.now() - t0;
    await until(() => Promise.resolve(answered !== undefined), 30_000, 'the program to answer the bench\'s probe', 1);
    return { out: JSON.parse(r.stdout) as RunOut, answerMs: answered ?? cliMs, cliMs };
  } finally {
    stop = true;
    await poll;
  }
}

const FERRY = join(PROJECT_ROOT, 'bin', 'ferry');

export async function runWarmstart(ctx: BenchContext, programs = WARMSTART_PROGRAMS): Promise<ExperimentResult> {
  const reps = ctx.quick ? 1 : 4;
  const storeDir = join(ctx.tmpfsDir, 'warm-store');
  const env = { ...process.env, FERRY_MEMORY_TIER: join(ctx.tmpfsDir, 'warm-memory') };
  const samples: WarmstartSample[] = [];
  const details: Record<string, string> = {};
  const notes: string[] = [];
  const running = new Set<string>();
  const stopAll = async (): Promise<void> => {
    for (const n of running) await timedSpawn(FERRY, ['--store', storeDir, 'stop', n, '--timeout', '0'], { env }).catch(() => undefined);
    running.clear();
  };
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
      // One port for the whole program: the arguments must stay the same for the key to stay warm.
      const port = await pickFreePort();
      const name = `bench-${p.name}`;
      const key = `bench-${p.name}`;
      const args = ['--name', name, '--warm', key, '--ready', p.probe(port), '--ready-timeout', '300s', ...prep.inputs.flatMap((i) => ['--input', i]), '--', ...prep.command(port)];
      const arm = async (how: 'cold' | 'warm'): Promise<{ out: RunOut; answerMs: number; cliMs: number; imageBytes: number }> => {
        // Cold: the key removed first, so this run boots and takes the snapshot the next warm one restores.
        if (how === 'cold') await timedSpawn(FERRY, ['--store', storeDir, 'warm', 'rm', key], { env }).catch(() => undefined);
        ctx.say(`${p.name}: ferry run --warm (${how})`);
        running.add(name);
        const r = await ferryRun(storeDir, env, args, () => p.ready(port));
        if (r.out.warm !== (how === 'warm')) throw new FerryError('ERR_BENCH', `warmstart: the ${how} run of ${p.name} came out ${r.out.warm ? 'warm' : 'cold'}`);
        await stopAll();
        // Read now: the next cold arm removes the key and its snapshot.
        const snap = r.out.snapshot ? await new Store({ root: storeDir, memoryBase: env.FERRY_MEMORY_TIER }).find(r.out.snapshot) : undefined;
        return { ...r, imageBytes: snap?.manifest.bytes ?? 0 };
      };
      // Warm-up (not counted): a cold boot (the dataset into the page cache) and a warm one.
      await arm('cold');
      await arm('warm');
      for (let rep = 0; rep < reps; rep++) {
        const order = rep % 2 === 0 ? 'warm-first' : 'cold-first';
        let cold: Awaited<ReturnType<typeof arm>>;
        let warm: Awaited<ReturnType<typeof arm>>;
        if (order === 'warm-first') {
          warm = await arm('warm');
          cold = await arm('cold');
        } else {
          cold = await arm('cold');
          warm = await arm('warm');
        }
        samples.push({
          program: p.name, rep, order,
          coldMs: round(cold.answerMs, 2), warmMs: round(warm.answerMs, 2),
          coldReadyMs: cold.out.readyMs, warmReadyMs: warm.out.readyMs,
          coldCliMs: round(cold.cliMs, 2), warmCliMs: round(warm.cliMs, 2),
          imageBytes: warm.imageBytes,
        });
        ctx.say(`${p.name}: rep ${rep + 1}/${reps}: cold ${cold.answerMs.toFixed(0)} ms, warm ${warm.answerMs.toFixed(0)} ms (×${(cold.answerMs / warm.answerMs).toFixed(1)})`);
      }
      await timedSpawn(FERRY, ['--store', storeDir, 'warm', 'rm', key], { env }).catch(() => undefined);
    }
  } finally {
    await stopAll();
    await rm(env.FERRY_MEMORY_TIER, { recursive: true, force: true });
  }
  if (samples.length === 0 && programs.length > 0) {
    throw new FerryError('ERR_BENCH', `warmstart: no program could run (${notes.join('; ')})`, { hint: 'run `make setup` to install redis-server and a JDK' });
  }
  return summarizeWarmstart(samples, details, notes, reps);
}

export function summarizeWarmstart(samples: WarmstartSample[], details: Record<string, string>, notes: string[], reps: number): ExperimentResult {
  const names = [...new Set(samples.map((s) => s.program))];
  const COLD = 'ferry run --warm, cold boot';
  const WARM = 'ferry run --warm, warm restore';
  const bars = samples.flatMap((s) => [
    { program: s.program, rep: s.rep, how: COLD, ms: s.coldMs },
    { program: s.program, rep: s.rep, how: WARM, ms: s.warmMs },
  ]);
  const summary: Record<string, unknown> = {};
  const rows: (string | number)[][] = [];
  for (const n of names) {
    const s = samples.filter((x) => x.program === n);
    // Pair by pair: each repetition's cold and warm ran back to back.
    const speedups = s.map((x) => x.coldMs / x.warmMs);
    const inside = s.map((x) => x.coldReadyMs / Math.max(1, x.warmReadyMs));
    const median = summarize(speedups).median;
    summary[n] = {
      detail: details[n], coldMs: summarize(s.map((x) => x.coldMs)), warmMs: summarize(s.map((x) => x.warmMs)),
      speedup: summarize(speedups.map((x) => round(x, 2))), readyMsSpeedup: summarize(inside.map((x) => round(x, 2))),
      coldCliMs: summarize(s.map((x) => x.coldCliMs)), warmCliMs: summarize(s.map((x) => x.warmCliMs)),
      target: { atLeast: WARMSTART_TARGET, met: median >= WARMSTART_TARGET },
    };
    rows.push([n, details[n] ?? '', mm(s.map((x) => x.coldMs), 0), mm(s.map((x) => x.warmMs), 0), mm(speedups, 1),
      median >= WARMSTART_TARGET ? `yes (≥ ${WARMSTART_TARGET}×)` : `NO (< ${WARMSTART_TARGET}×)`, mm(inside, 1), mm(s.map((x) => x.imageBytes / 2 ** 20), 0)]);
  }
  return {
    name: 'warmstart',
    title: 'Warm start of slow-booting programs: ferry run --warm',
    question: `CRIU usage scenarios: does \`ferry run --warm KEY\` (restore of the snapshot taken at readiness) answer at least ${WARMSTART_TARGET}× sooner than the same command booting cold?`,
    params: { reps, programs: names, target: WARMSTART_TARGET },
    durationMs: 0,
    summary,
    charts: [{
      id: 'warmstart', title: 'Cold boot or warm restore: which answers sooner?',
      caption: 'From spawning `ferry run --warm` (the CLI, Node start-up included) until the program answers the bench\'s own probe (redis: PING → PONG; JVM: its ready line), cold (key removed first: it boots, then takes the snapshot) vs warm (the key\'s snapshot restored, memory tier). Arms alternate in order. Bars: median; ticks: every repetition.',
      spec: {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json', width: 420, height: 240, data: { values: bars },
        encoding: { y: { field: 'program', type: 'nominal', title: null, sort: names }, yOffset: { field: 'how' }, color: { field: 'how', type: 'nominal', title: null, scale: { domain: [COLD, WARM] } } },
        layer: [
          { mark: { type: 'bar', tooltip: true }, encoding: { x: { aggregate: 'median', field: 'ms', type: 'quantitative', title: 'until it answers (ms)' } } },
          { mark: { type: 'tick', color: 'black', thickness: 1.5 }, encoding: { x: { field: 'ms', type: 'quantitative' } } },
        ],
      },
    }],
    tables: [{ title: 'Median (min–max)', columns: ['program', 'dataset', 'cold ms', 'warm ms', 'speed-up ×', `≥ ${WARMSTART_TARGET}×?`, 'speed-up of ferry\'s readyMs ×', 'image MiB'], rows }],
    notes: [
      'Both arms are the real CLI: `ferry run --warm KEY --ready PROBE --input DATA -- CMD`. The cold arm runs after `ferry warm rm KEY`, so it boots and then takes the warm snapshot (its CLI returns after that; the time measured ends when the program answers). The warm arm restores the newest cold arm\'s snapshot.',
      'readyMs is ferry\'s own measure inside the CLI (from its start until its --ready probe passed); the span measured here adds Node\'s start-up and the bench\'s probe.',
      ...notes,
    ],
    samples,
  };
}
