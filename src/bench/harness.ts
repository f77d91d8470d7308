import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { arch, cpus, hostname, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { resolveCriuBinary } from '../criu/binary.js';
import { readMeminfo } from '../telemetry/proc.js';
import { isAlive, killQuietly, waitFor } from '../testing/processes.js';
import { launchIsolated, memcheckWorkload, type IsolatedRun, type WorkloadInstance } from '../testing/workloads.js';
import { FerryError } from '../util/errors.js';
import { round, summarize, type Summary } from './stats.js';

/**
 * The benchmark harness: runs experiments, each a function of a BenchContext returning an
 * ExperimentResult (raw samples, a summary, tables, and one vega-lite chart per question it
 * answers); writes one JSON file per run with the host, kernel, CRIU version and every raw sample,
 * and (report.ts) a self-contained HTML report. Progress goes to stderr; nothing here decides
 * thresholds.
 */

export interface Chart {
  id: string;
  /** The question the chart answers, as a reader would ask it. */
  title: string;
  /** One or two sentences under it: how to read it, what was measured. */
  caption: string;
  /** A vega-lite spec with its data inline. */
  spec: Record<string, unknown>;
}

export interface Table { title: string; columns: string[]; rows: (string | number)[][] }

export interface ExperimentResult {
  name: string;
  title: string;
  /** What the seed papers asked that this experiment answers. */
  question: string;
  params: Record<string, unknown>;
  durationMs: number;
  summary: Record<string, unknown>;
  charts: Chart[];
  tables: Table[];
  notes: string[];
  samples: unknown[];
}

export interface SkippedExperiment { name: string; skipped: true; reason: string }
export type ExperimentOutcome = ExperimentResult | SkippedExperiment;
export const isSkipped = (e: ExperimentOutcome): e is SkippedExperiment => 'skipped' in e;

export interface HostInfo {
  hostname: string;
  kernel: string;
  arch: string;
  cpus: number;
  cpuModel: string;
  memTotalBytes: number | undefined;
  node: string;
  criuVersion: string;
  criuPath: string;
}

/** The machine's noise: one fixed piece of work (dd into tmpfs) timed several times. */
export interface Noise { what: string; ms: Summary; spreadPct: number }

export interface BenchRun {
  tool: 'ferry bench';
  format: 1;
  experiments: string[];
  quick: boolean;
  startedAt: string;
  durationMs: number;
  host: HostInfo;
  noise: Noise;
  results: ExperimentOutcome[];
}

export interface BenchContext {
  quick: boolean;
  /** tmpfs scratch for this run (memory tier, raw images, workloads); removed at the end. */
  tmpfsDir: string;
  /** Scratch on the disk file system (disk tier); removed at the end. */
  diskDir: string;
  criuPath: string;
  criuVersion: string;
  say: (line: string) => void;
}

// ---------------------------------------------------------------------------------------------
// Helpers the experiments share.

/** Spawns a command, timed from spawn to exit; rejects on a non-zero exit with its stderr. */
export function timedSpawn(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<{ ms: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      const ms = performance.now() - t0;
      child.once('close', () => {
        if (code === 0) resolve({ ms, stdout });
        else reject(new FerryError('ERR_BENCH', `${cmd} ${args.join(' ')} exited with ${code ?? signal}: ${stderr.trim().slice(-600)}`));
      });
    });
  });
}

/** Writes and deletes `mib` MiB in `dir` (tmpfs): evens out the VM's first-touch cost (this-machine.md). */
export async function warmTmpfs(dir: string, mib: number): Promise<number> {
  if (mib <= 0) return 0;
  const f = join(dir, `warm-${process.pid}.bin`);
  const { ms } = await timedSpawn('dd', ['if=/dev/zero', `of=${f}`, 'bs=4M', `count=${Math.ceil(mib / 4)}`, 'status=none']);
  await rm(f, { force: true });
  return ms;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Connects to 127.0.0.1:port, optionally sends `send`, and resolves with what the server says
 * before it closes (or after `expect` matched); rejects on a refused connection or after timeoutMs.
 */
export function tcpAsk(port: number, send: string | undefined, expect: RegExp, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let data = '';
    const done = (err?: Error): void => {
      clearTimeout(timer);
      s.destroy();
      if (err) reject(err); else resolve(data);
    };
    const timer = setTimeout(() => done(new Error(`no answer on port ${port} in ${timeoutMs} ms`)), timeoutMs);
    s.setEncoding('utf8');
    s.on('connect', () => { if (send !== undefined) s.write(send); });
    s.on('data', (d: string) => { data += d; if (expect.test(data)) done(); });
    s.on('end', () => done());
    s.on('error', (e) => done(e));
  });
}

/** Polls `probe` every `everyMs` until it resolves true; resolves with the ms it took. */
export async function until(probe: () => Promise<boolean>, timeoutMs: number, what: string, everyMs = 5): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    if (await probe().catch(() => false)) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs) throw new FerryError('ERR_BENCH', `timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** A WorkloadInstance for an arbitrary command, so launchIsolated can start it like `ferry run`. */
export function commandInstance(dir: string, command: string[], env: Record<string, string> = {}): WorkloadInstance {
  return {
    name: 'memcheck', dir, statusDir: undefined, command, env, port: undefined,
    waitReady: () => Promise.resolve(),
    readyInfo: () => ({}),
    verify: () => Promise.resolve('ok'),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** Tracks the processes an experiment started, so that a failure kills every one of them. */
export class Live {
  private readonly runs = new Set<IsolatedRun>();
  private readonly pids = new Set<number>();

  async launch(inst: WorkloadInstance): Promise<IsolatedRun> {
    const run = await launchIsolated(inst);
    this.runs.add(run);
    return run;
  }

  /** A fresh memcheck workload of `mib` MiB under `dir`, ready. */
  async memcheck(dir: string, mib: number): Promise<{ inst: WorkloadInstance; run: IsolatedRun }> {
    const inst = await memcheckWorkload({ mib }).prepare(dir);
    const run = await this.launch(inst);
    await inst.waitReady(30_000 + mib * 100);
    return { inst, run };
  }

  /** Waits until a checkpointed (so killed) original is gone and reaped. */
  async gone(run: IsolatedRun): Promise<void> {
    await Promise.race([run.exited, sleep(10_000)]);
    await waitFor(() => !isAlive(run.rootPid), 10_000, `pid ${run.rootPid} to exit`);
    this.runs.delete(run);
  }

  /** Kills a restored tree and waits for it to go. */
  async killPid(pid: number): Promise<void> {
    this.pids.add(pid);
    killQuietly(pid);
    await waitFor(() => !isAlive(pid), 10_000, `pid ${pid} to exit`);
    this.pids.delete(pid);
  }

  async kill(run: IsolatedRun): Promise<void> {
    run.kill();
    await Promise.race([run.exited, sleep(5_000)]);
    this.runs.delete(run);
  }

  killAll(): void {
    for (const r of this.runs) r.kill();
    for (const p of this.pids) killQuietly(p);
    this.runs.clear();
    this.pids.clear();
  }
}

/** Median (min–max) of numbers, rounded: the one way results are summarized in tables. */
export const mm = (values: number[], digits = 1): string => {
  const s = summarize(values);
  if (s.n === 0) return '-';
  return s.n === 1 ? s.median.toFixed(digits) : `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;
};

// ---------------------------------------------------------------------------------------------
// The run.

export function hostInfo(criuPath: string, criuVersion: string): HostInfo {
  return {
    hostname: hostname(),
    kernel: release(),
    arch: arch(),
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memTotalBytes: readMeminfo()?.totalBytes,
    node: process.version,
    criuVersion,
    criuPath,
  };
}

async function measureNoise(dir: string, quick: boolean): Promise<Noise> {
  const mib = quick ? 128 : 512;
  const ms: number[] = [];
  for (let i = 0; i < (quick ? 3 : 7); i++) ms.push(await warmTmpfs(dir, mib));
  const s = summarize(ms);
  const r = { median: round(s.median), min: round(s.min), max: round(s.max), n: s.n };
  return { what: `dd of ${mib} MiB into tmpfs, ${s.n} times`, ms: r, spreadPct: round(((s.max - s.min) / s.median) * 100) };
}

export interface RunOptions {
  quick: boolean;
  experiments: { name: string; run: (ctx: BenchContext) => Promise<ExperimentOutcome> }[];
  /** Parent of the run's tmpfs scratch (default /dev/shm). */
  tmpfsBase?: string;
  /** Parent of the run's disk scratch (default the OS temp dir). */
  diskBase?: string;
  progress?: (line: string) => void;
}

export async function runBench(o: RunOptions): Promise<BenchRun> {
  const criu = resolveCriuBinary();
  if (!criu) throw new FerryError('ERR_CRIU_MISSING', 'no CRIU binary found', { hint: 'run `make setup`, or set FERRY_CRIU' });
  const criuVersion = (await timedSpawn(criu.path, ['--version'])).stdout.match(/Version:\s*(\S+)/)?.[1] ?? 'unknown';
  const t0 = performance.now();
  const startedAt = new Date().toISOString();
  const elapsed = (): string => {
    const s = Math.floor((performance.now() - t0) / 1000);
    return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
  };
  const progress = o.progress ?? ((): void => {});
  const tmpfsDir = await mkdtemp(join(o.tmpfsBase ?? '/dev/shm', 'ferry-bench-'));
  const diskDir = await mkdtemp(join(o.diskBase ?? tmpdir(), 'ferry-bench-disk-'));
  const results: ExperimentOutcome[] = [];
  try {
    const host = hostInfo(criu.path, criuVersion);
    progress(`[${elapsed()}] host ${host.hostname}: kernel ${host.kernel}, ${host.cpus} CPUs, CRIU ${criuVersion}; measuring the machine's noise`);
    const noise = await measureNoise(tmpfsDir, o.quick);
    progress(`[${elapsed()}] noise: ${noise.what}: ${noise.ms.median} ms (${noise.ms.min}–${noise.ms.max}), spread ${noise.spreadPct}%`);
    for (const e of o.experiments) {
      const dir = join(tmpfsDir, e.name);
      const ddir = join(diskDir, e.name);
      await Promise.all([mkdir(dir), mkdir(ddir)]);
      const ctx: BenchContext = {
        quick: o.quick, tmpfsDir: dir, diskDir: ddir, criuPath: criu.path, criuVersion,
        say: (line) => progress(`[${elapsed()}] ${e.name}: ${line}`),
      };
      ctx.say('starting');
      const started = performance.now();
      const r = await e.run(ctx);
      if (!isSkipped(r)) r.durationMs = Math.round(performance.now() - started);
      ctx.say(isSkipped(r) ? `skipped: ${r.reason}` : `done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
      results.push(r);
      await Promise.all([rm(dir, { recursive: true, force: true }), rm(ddir, { recursive: true, force: true })]);
    }
    return {
      tool: 'ferry bench', format: 1, experiments: o.experiments.map((e) => e.name), quick: o.quick, startedAt,
      durationMs: Math.round(performance.now() - t0), host, noise, results,
    };
  } finally {
    await rm(tmpfsDir, { recursive: true, force: true }).catch(() => undefined);
    await rm(diskDir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** Writes `<out>/bench-<experiments>-<time>.json` and `.html`; returns both paths. */
export async function writeRun(run: BenchRun, out: string, html: string): Promise<{ json: string; html: string }> {
  await mkdir(out, { recursive: true });
  const base = join(out, `bench-${run.experiments.join('+')}-${run.startedAt.replace(/[:.]/g, '-')}`);
  await writeFile(`${base}.json`, JSON.stringify(run, null, 2) + '\n');
  await writeFile(`${base}.html`, html);
  return { json: `${base}.json`, html: `${base}.html` };
}

/** Reads a run back (for `ferry bench report FILE.json`). */
export async function readRun(file: string): Promise<BenchRun> {
  const run = JSON.parse(await readFile(file, 'utf8')) as BenchRun;
  if (run.tool !== 'ferry bench') throw new FerryError('ERR_USAGE', `${file} is not a ferry bench result`, { hint: 'give a JSON file written by `ferry bench … --out DIR`' });
  return run;
}
