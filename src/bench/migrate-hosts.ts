import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { PROJECT_ROOT } from '../criu/binary.js';
import { testbedDown, testbedExecEnv, testbedUp, type ExecEnv } from '../testbed/testbed.js';
import { FerryError, InterruptedError } from '../util/errors.js';

/**
 * The migration benchmark's testbed: two hosts of its own (own name prefix, own directory), and
 * commands run "in" a host the way `ferry testbed exec` runs them (nsenter --net only, the host's
 * FERRY_STORE/FERRY_AGENT/FERRY_TOKEN), each timed from spawn to exit, with a watchdog, and
 * ended when the benchmark is interrupted.
 */

/** The benchmark's testbed prefix: never a user's testbed (ferry-tb-) nor a test's. */
export const BENCH_PREFIX = 'ferry-tbb-';
export const FERRY_BIN = join(PROJECT_ROOT, 'bin', 'ferry');

export interface Ran { ms: number; code: number; stdout: string; stderr: string }

export interface RunOptions {
  /** Run the ferry command here, not through the host's agent (FERRY_AGENT emptied). */
  local?: boolean;
  cwd?: string;
  timeoutMs?: number;
  /** Resolve with a non-zero exit instead of rejecting. */
  allowFail?: boolean;
}

export interface BenchHost { name: string; address: string; exec: ExecEnv; agentPid: number }

const throwIfAborted = (signal: AbortSignal | undefined): void => {
  if (signal?.aborted) throw new InterruptedError(typeof signal.reason === 'string' ? signal.reason as NodeJS.Signals : 'SIGINT', 'the migration benchmark was interrupted');
};

/**
 * Ends a child: SIGTERM first (a `ferry migrate` cancels its job on it, CRIU resumes the tree),
 * SIGKILL if it is still there after `graceMs`.
 */
function endChild(child: ChildProcess, graceMs = 5000): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  setTimeout(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); }, graceMs).unref();
}

export class Testbed {
  private readonly children = new Set<ChildProcess>();

  private constructor(readonly dir: string, readonly hosts: BenchHost[], readonly signal: AbortSignal | undefined) {}

  /** Brings up 2 hosts at `rate`; a failure leaves nothing behind. */
  static async up(rate: string, signal?: AbortSignal): Promise<Testbed> {
    throwIfAborted(signal);
    const dir = await mkdtemp(join(tmpdir(), BENCH_PREFIX));
    let up = false;
    try {
      const made = await testbedUp({ dir, prefix: BENCH_PREFIX, hosts: 2, rate });
      up = true;
      const hosts: BenchHost[] = [];
      for (const h of made.hosts) hosts.push({ name: h.name, address: h.address, agentPid: h.agentPid, exec: await testbedExecEnv(h.name, { dir, prefix: BENCH_PREFIX }) });
      return new Testbed(dir, hosts, signal);
    } catch (err) {
      // A failed up removed what it made itself; a down here (by name) could take another
      // benchmark's testbed of the same prefix with it, so only ours, once it is up.
      if (up) await testbedDown({ dir, prefix: BENCH_PREFIX }).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
      if (err instanceof FerryError && err.code === 'ERR_TESTBED_RUNNING') {
        throw new FerryError('ERR_BENCH', `bench migrate: a testbed with the benchmark's prefix ${BENCH_PREFIX} is up already (another benchmark, or one that was killed): ${err.message}`, {
          hint: `wait for the other benchmark, or remove it: FERRY_TESTBED_PREFIX=${BENCH_PREFIX} ferry testbed down`,
        });
      }
      throw err;
    }
  }

  host(name: string): BenchHost {
    const h = this.hosts.find((x) => x.name === name);
    if (!h) throw new FerryError('ERR_BENCH', `bench migrate: the testbed has no host ${name}`);
    return h;
  }

  private env(host: BenchHost, local: boolean): NodeJS.ProcessEnv {
    return { ...process.env, ...host.exec.env, FERRY_TESTBED_DIR: this.dir, FERRY_TESTBED_PREFIX: BENCH_PREFIX, ...(local ? { FERRY_AGENT: '' } : {}) };
  }

  /** Starts `cmd` in `host` (nsenter --net); the caller waits for it (see `wait`). */
  start(host: BenchHost, cmd: string[], o: RunOptions = {}): ChildProcess {
    throwIfAborted(this.signal);
    const child = spawn('nsenter', [`--net=${host.exec.netnsPath}`, '--', ...cmd], {
      stdio: ['ignore', 'pipe', 'pipe'], env: this.env(host, o.local === true), ...(o.cwd !== undefined ? { cwd: o.cwd } : {}),
    });
    this.children.add(child);
    child.once('close', () => this.children.delete(child));
    return child;
  }

  /** Waits for a started command, with a watchdog; an interrupt ends it. */
  wait(child: ChildProcess, what: string, o: RunOptions = {}, t0 = performance.now()): Promise<Ran> {
    const timeoutMs = o.timeoutMs ?? 120_000;
    return new Promise((resolve, reject) => {
      let stdout = '';
      let stderr = '';
      let timedOut = false;
      let ms = NaN;
      child.stdout?.on('data', (d: Buffer) => { stdout += d.toString(); });
      child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
      const timer = setTimeout(() => { timedOut = true; endChild(child); }, timeoutMs);
      const onAbort = (): void => endChild(child);
      this.signal?.addEventListener('abort', onAbort, { once: true });
      child.once('exit', () => { ms = performance.now() - t0; });
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(new FerryError('ERR_BENCH', `bench migrate: cannot start ${what}: ${err.message}`, { hint: 'nsenter (util-linux) is needed' }));
      });
      child.once('close', (code, sig) => {
        clearTimeout(timer);
        this.signal?.removeEventListener('abort', onAbort);
        if (this.signal?.aborted) {
          try { throwIfAborted(this.signal); } catch (e) { reject(e instanceof Error ? e : new Error(String(e))); return; }
        }
        const exit = code ?? 128;
        if (timedOut) return reject(new FerryError('ERR_BENCH', `bench migrate: ${what} did not finish within ${timeoutMs} ms (ended)${sig ? ` by ${sig}` : ''}: ${stderr.trim().slice(-600)}`));
        if (exit !== 0 && o.allowFail !== true) {
          return reject(new FerryError('ERR_BENCH', `bench migrate: ${what} exited with ${code ?? sig}: ${(stderr.trim() || stdout.trim()).slice(-1200)}`));
        }
        resolve({ ms: Number.isNaN(ms) ? performance.now() - t0 : ms, code: exit, stdout, stderr });
      });
    });
  }

  /** Runs `cmd` in `host` to its end, timed from spawn to exit. */
  run(host: BenchHost, cmd: string[], what: string, o: RunOptions = {}): Promise<Ran> {
    const t0 = performance.now();
    return this.wait(this.start(host, cmd, o), what, o, t0);
  }

  /** `bin/ferry ARGS` in `host` (through its agent unless `local`). */
  ferry(host: BenchHost, args: string[], o: RunOptions = {}): Promise<Ran> {
    return this.run(host, [FERRY_BIN, ...args], `ferry ${args.slice(0, 2).join(' ')} in ${host.name}`, o);
  }

  /** GET `path` of `host`'s agent, from inside the host (its address is not reachable from here). */
  async agentGet<T>(host: BenchHost, path: string): Promise<T> {
    const script = 'fetch(process.env.FERRY_AGENT + process.argv[1], { headers: { authorization: "Bearer " + process.env.FERRY_TOKEN } })' +
      '.then(async (r) => { process.stdout.write(await r.text()); process.exitCode = r.ok ? 0 : 1; }, (e) => { console.error(String(e)); process.exitCode = 1; })';
    const r = await this.run(host, [process.execPath, '-e', script, path], `GET ${path} from ${host.name}'s agent`, { timeoutMs: 15_000 });
    return JSON.parse(r.stdout) as T;
  }

  /** Ends every command still running, then takes the testbed down (processes, namespaces, stores, memory tiers). */
  async down(): Promise<void> {
    for (const c of this.children) endChild(c, 1000);
    try {
      await testbedDown({ dir: this.dir, prefix: BENCH_PREFIX });
    } finally {
      await rm(this.dir, { recursive: true, force: true });
    }
  }
}

export { throwIfAborted };
