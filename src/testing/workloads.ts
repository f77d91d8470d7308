import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { CriuOptions } from '../criu/options.js';
import { FerryError } from '../util/errors.js';
import { findOnPath } from '../util/path.js';
import { isAlive } from './processes.js';

/**
 * Self-verifying test workloads (in the spirit of CRIU's zdtm tests): each sets up state, keeps
 * running and mutating it through checkpoint and restore, and checks itself on request.
 *
 * The protocol of the workloads in test/workloads/ (all but redis): the workload takes a status
 * directory; once its state is set up it writes `<dir>/ready` ("ok key=value ... instance=ID");
 * on SIGUSR1 it verifies its entire state and writes `<dir>/verdict`, "ok <summary> instance=ID"
 * or "fail <reason>"; now and then it writes `<dir>/progress` (a growing number). Every file is
 * written to a temporary name, closed and renamed: no status file is ever held open, because
 * CRIU restores open regular files by path and checks their size. ID is random per start and
 * lives in the program's memory: a restored process reports the ID of its ready line, a program
 * restarted from scratch does not, and `verify` fails then. Summaries carry `progress=N` (how far
 * the mutations got). Redis is verified from outside with redis-cli (its `run_id` plays the ID).
 *
 * The workloads print nothing while they run (only on errors): with `--leave-running`, output
 * written after the dump would change the size of the log files CRIU restores.
 */

export type WorkloadName = 'memcheck' | 'proctree' | 'threads' | 'tcpecho' | 'filelock' | 'node-service' | 'python' | 'redis';

export interface WorkloadSpec {
  name: WorkloadName;
  /** One line on what it holds and what its verification proves. */
  description: string;
  /** ferry CLI flags a checkpoint and restore of this workload need, e.g. ['--tcp-established']. */
  checkpointFlags: string[];
  /** The same, as CRIU options for `CriuClient.dump` and `.restore`. */
  criuOptions: Pick<CriuOptions, 'tcpEstablished' | 'fileLocks'>;
  /** A fresh instance under `baseDir`: its own directory and status dir, free ports picked. */
  prepare(baseDir: string): Promise<WorkloadInstance>;
}

export interface WorkloadInstance {
  readonly name: WorkloadName;
  /** The instance's own directory (a good working directory for the process; logs may go here). */
  readonly dir: string;
  /** Where ready/verdict/progress appear (undefined for redis). */
  readonly statusDir: string | undefined;
  /** argv to run, absolute paths. */
  readonly command: string[];
  /** Variables to add to the environment of the command. */
  readonly env: Record<string, string>;
  /** The TCP port it listens on, for those that do. */
  readonly port: number | undefined;
  /** Resolves once the workload's state is set up (ready file; for redis: PING, then its keys loaded). */
  waitReady(timeoutMs?: number): Promise<void>;
  /** The key=value pairs of the ready line (e.g. memcheck's `base` address and `pages`). */
  readyInfo(): Record<string, string>;
  /**
   * Verifies the state of the (possibly restored) workload whose root host pid is given; resolves
   * with the ok-summary, rejects with a WorkloadVerifyError carrying the workload's reason.
   * Works any number of times (before a checkpoint, after a restore, ...).
   */
  verify(rootPid: number, timeoutMs?: number): Promise<string>;
  /** Removes the instance's directory (processes are the caller's to kill). */
  cleanup(): Promise<void>;
}

/** A workload said "fail", or could not be verified (gone, wrong program, no verdict in time). */
export class WorkloadVerifyError extends FerryError {
  constructor(readonly workload: WorkloadName, readonly reason: string) {
    super('ERR_WORKLOAD_VERIFY', `workload ${workload} failed verification: ${reason}`);
    this.name = 'WorkloadVerifyError';
  }
}

/** The project root (two levels above dist/testing or src/testing). */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const WORKLOADS_DIR = join(ROOT, 'test', 'workloads');
export const WORKLOADS_BUILD_DIR = join(WORKLOADS_DIR, 'build');

const run = promisify(execFile);

function which(name: string, preferred: string[] = []): string {
  for (const p of preferred) if (existsSync(p)) return p;
  const found = findOnPath(name);
  if (found) return found;
  throw new FerryError('ERR_WORKLOAD_SETUP', `${name} is not installed`, { hint: 'run `make setup`' });
}

/** The system Python (not a pyenv shim: a shim is a shell script between us and the program). */
const python = (): string => which('python3', ['/usr/bin/python3']);

let built: Promise<void> | undefined;
/** Builds the native workloads (`make -C test/workloads`), once per process; make skips what is up to date. */
export function buildNativeWorkloads(): Promise<void> {
  built ??= run('make', ['-s', '-C', WORKLOADS_DIR], { timeout: 120_000 }).then(
    () => undefined,
    (err: Error & { stderr?: string }) => {
      built = undefined;
      throw new FerryError('ERR_WORKLOAD_SETUP', `cannot build the test workloads: ${err.stderr ?? err.message}`, { cause: err });
    },
  );
  return built;
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function pickFreePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => {
        if (addr && typeof addr === 'object') resolvePort(addr.port);
        else reject(new Error('no port'));
      });
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** "ok a=1 b=2" → { a: '1', b: '2' } (words without '=' are skipped). */
export function parseKeyValues(line: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const word of line.trim().split(/\s+/).slice(1)) {
    const eq = word.indexOf('=');
    if (eq > 0) out[word.slice(0, eq)] = word.slice(eq + 1);
  }
  return out;
}

function cmdlineOf(pid: number): string[] | undefined {
  const raw = readIfExists(`/proc/${pid}/cmdline`);
  return raw === undefined ? undefined : raw.split('\0').filter((s) => s.length > 0);
}

/** The pid must be alive and run the workload's program (`marker` is one of its argv words). */
function requireProgram(name: WorkloadName, pid: number, marker: string): void {
  if (!isAlive(pid)) throw new WorkloadVerifyError(name, `process ${pid} is not running`);
  const argv = cmdlineOf(pid) ?? [];
  const comm = readIfExists(`/proc/${pid}/comm`)?.trim();
  if (!argv.includes(marker) && comm !== marker) {
    throw new WorkloadVerifyError(name, `process ${pid} runs '${argv.join(' ') || comm}', not the ${name} workload (${marker})`);
  }
}


interface StatusWorkloadOptions {
  name: WorkloadName;
  dir: string;
  statusDir: string;
  command: string[];
  env?: Record<string, string>;
  port?: number;
  /** An argv word (or the comm) the running program must have. */
  marker: string;
  verifyTimeoutMs: number;
  /** Extra checks from outside, after the workload's own verdict was ok. */
  extraVerify?: (summary: string) => Promise<string>;
  /** Extra readiness beyond the ready file. */
  extraReady?: (deadline: number) => Promise<void>;
}

/** An instance of a workload speaking the ready/SIGUSR1/verdict protocol. */
function statusInstance(o: StatusWorkloadOptions): WorkloadInstance {
  const readyPath = join(o.statusDir, 'ready');
  const verdictPath = join(o.statusDir, 'verdict');
  let busy = false;
  /** The ID of the ready line: every ok verdict must come from the same incarnation. */
  let incarnation: string | undefined;
  const readIncarnation = (): string | undefined => {
    const line = readIfExists(readyPath);
    return line === undefined ? undefined : parseKeyValues(line)['instance'];
  };
  return {
    name: o.name,
    dir: o.dir,
    statusDir: o.statusDir,
    command: o.command,
    env: o.env ?? {},
    port: o.port,
    async waitReady(timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (!existsSync(readyPath)) {
        if (Date.now() > deadline) {
          throw new FerryError('ERR_WORKLOAD_TIMEOUT', `workload ${o.name} did not become ready within ${timeoutMs} ms (no ${readyPath})`, {
            hint: 'look at its stderr log',
          });
        }
        await sleep(20);
      }
      incarnation ??= readIncarnation();
      await o.extraReady?.(deadline);
    },
    readyInfo() {
      const line = readIfExists(readyPath);
      return line === undefined ? {} : parseKeyValues(line);
    },
    async verify(rootPid, timeoutMs = o.verifyTimeoutMs) {
      if (busy) throw new Error(`verify of ${o.name} is already running`);
      busy = true;
      try {
        requireProgram(o.name, rootPid, o.marker);
        await rm(verdictPath, { force: true });
        process.kill(rootPid, 'SIGUSR1');
        const deadline = Date.now() + timeoutMs;
        let verdict: string | undefined;
        while ((verdict = readIfExists(verdictPath)) === undefined) {
          if (!isAlive(rootPid)) throw new WorkloadVerifyError(o.name, `process ${rootPid} exited before writing a verdict`);
          if (Date.now() > deadline) throw new WorkloadVerifyError(o.name, `no verdict within ${timeoutMs} ms of SIGUSR1 to ${rootPid}`);
          await sleep(10);
        }
        verdict = verdict.trim();
        if (verdict.startsWith('fail')) throw new WorkloadVerifyError(o.name, verdict.slice(4).trim());
        if (!verdict.startsWith('ok')) throw new WorkloadVerifyError(o.name, `unreadable verdict '${verdict}'`);
        let summary = verdict.slice(2).trim();
        incarnation ??= readIncarnation();
        const id = parseKeyValues(verdict)['instance'];
        if (incarnation !== undefined && id !== incarnation) {
          throw new WorkloadVerifyError(o.name, `the verdict comes from instance ${id}, but the program that got ready was ${incarnation}: it was restarted, not restored`);
        }
        if (o.extraVerify) summary = await o.extraVerify(summary);
        return summary;
      } finally {
        busy = false;
      }
    },
    async cleanup() {
      await rm(o.dir, { recursive: true, force: true });
    },
  };
}

async function instanceDirs(baseDir: string, name: WorkloadName): Promise<{ dir: string; statusDir: string }> {
  await mkdir(baseDir, { recursive: true });
  const dir = await mkdtemp(join(baseDir, `${name}-`));
  const statusDir = join(dir, 'status');
  await mkdir(statusDir);
  return { dir, statusDir };
}

// ---------------------------------------------------------------------------------------------
// The workloads

export interface MemcheckOptions {
  /** Memory to fill and check (default 64 MiB). */
  mib?: number;
  seed?: number;
  /** Pages rewritten per second (default 1000; 0 = as fast as it can, a whole core). */
  rate?: number;
  /** Dirty mode: rewrite about this % of distinct pages every `dirtyEveryMs`, idle between. */
  dirtyPercent?: number;
  dirtyEveryMs?: number;
}

/** memcheck: N MiB of pages with patterns from (seed, page, version), mutated and checked byte by byte. */
export function memcheckWorkload(opts: MemcheckOptions = {}): WorkloadSpec {
  const mib = opts.mib ?? 64;
  return {
    name: 'memcheck',
    description: `${mib} MiB of pseudo-random pages, rewritten as it runs; verify checks every byte of every page and the version bookkeeping`,
    checkpointFlags: [],
    criuOptions: {},
    async prepare(baseDir) {
      await buildNativeWorkloads();
      const { dir, statusDir } = await instanceDirs(baseDir, 'memcheck');
      const bin = join(WORKLOADS_BUILD_DIR, 'memcheck');
      const command = [bin, '--mib', String(mib), '--seed', String(opts.seed ?? 1), '--status', statusDir];
      if (opts.dirtyPercent !== undefined) {
        command.push('--dirty-percent', String(opts.dirtyPercent), '--dirty-every-ms', String(opts.dirtyEveryMs ?? 1000));
      } else if (opts.rate !== undefined) {
        command.push('--rate', String(opts.rate));
      }
      return statusInstance({ name: 'memcheck', dir, statusDir, command, marker: bin, verifyTimeoutMs: 10_000 + mib * 20 });
    },
  };
}

/** threads: a pthread program whose N workers count and check themselves. */
export function threadsWorkload(opts: { threads?: number; intervalUs?: number } = {}): WorkloadSpec {
  return {
    name: 'threads',
    description: 'N pthreads, each counting in its own counter; verify checks each is alive, advanced, never went backwards',
    checkpointFlags: [],
    criuOptions: {},
    async prepare(baseDir) {
      await buildNativeWorkloads();
      const { dir, statusDir } = await instanceDirs(baseDir, 'threads');
      const bin = join(WORKLOADS_BUILD_DIR, 'threads');
      const command = [bin, '--status', statusDir, '--threads', String(opts.threads ?? 4), '--interval-us', String(opts.intervalUs ?? 1000)];
      return statusInstance({ name: 'threads', dir, statusDir, command, marker: bin, verifyTimeoutMs: 10_000 });
    },
  };
}

function pythonWorkload(name: WorkloadName, script: string, description: string, flags: Pick<WorkloadSpec, 'checkpointFlags' | 'criuOptions'>,
  args: (dirs: { dir: string; statusDir: string; port: number | undefined }) => string[], needsPort: boolean): WorkloadSpec {
  return {
    name,
    description,
    ...flags,
    async prepare(baseDir) {
      const { dir, statusDir } = await instanceDirs(baseDir, name);
      const port = needsPort ? await pickFreePort() : undefined;
      const path = join(WORKLOADS_DIR, script);
      const command = [python(), path, ...args({ dir, statusDir, port })];
      return statusInstance({
        name, dir, statusDir, command, marker: path, verifyTimeoutMs: 15_000,
        env: { PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1' },
        ...(port !== undefined ? { port } : {}),
      });
    },
  };
}

export const proctreeWorkload = (): WorkloadSpec => pythonWorkload('proctree', 'proctree.py',
  'a parent and two children exchanging sequence numbers over pipes and a unix socketpair; verify checks the tree, the order and the sequences',
  { checkpointFlags: [], criuOptions: {} },
  ({ statusDir }) => [statusDir], false);

export const tcpechoWorkload = (): WorkloadSpec => pythonWorkload('tcpecho', 'tcpecho.py',
  'a TCP echo server and its one established client in the same tree; verify checks it is the same connection and the numbering continued',
  { checkpointFlags: ['--tcp-established'], criuOptions: { tcpEstablished: true } },
  ({ statusDir, port }) => [statusDir, String(port)], true);

export const filelockWorkload = (): WorkloadSpec => pythonWorkload('filelock', 'filelock.py',
  'flock, POSIX (lockf, with ranges and a moving lock) and OFD locks; verify checks from another process that each still excludes others, and /proc/locks',
  { checkpointFlags: ['--file-locks'], criuOptions: { fileLocks: true } },
  ({ dir, statusDir }) => [statusDir, join(dir, 'locks')], false);

export const pythonStateWorkload = (): WorkloadSpec => pythonWorkload('python', 'pystate.py',
  'a Python program with dicts, a linked ring, suspended generators, an RNG and a counting thread; verify checks every invariant',
  { checkpointFlags: [], criuOptions: {} },
  ({ statusDir }) => [statusDir], false);

function httpGet(port: number, path: string, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  return new Promise((resolveGet, reject) => {
    // agent: false and Connection: close, so that no connection lingers into a checkpoint.
    const req = httpRequest({ host: '127.0.0.1', port, path, agent: false, timeout: timeoutMs, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolveGet({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from 127.0.0.1:${port}${path} within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** node-service: an HTTP service with a counter and a map; verified over SIGUSR1 and over HTTP. */
export function nodeServiceWorkload(): WorkloadSpec {
  return {
    name: 'node-service',
    description: 'a Node.js HTTP server with a request counter and a map; verify checks its invariants (SIGUSR1 and GET /verify) and that GET /count continues',
    // Its verification leaves no connection open, but any client connected during a checkpoint
    // (a benchmark's load generator, a keep-alive request) needs this.
    checkpointFlags: ['--tcp-established'],
    criuOptions: { tcpEstablished: true },
    async prepare(baseDir) {
      const { dir, statusDir } = await instanceDirs(baseDir, 'node-service');
      const port = await pickFreePort();
      const path = join(WORKLOADS_DIR, 'service.js');
      return statusInstance({
        name: 'node-service', dir, statusDir, port, marker: path, verifyTimeoutMs: 15_000,
        command: [process.execPath, path, statusDir, String(port)],
        // libuv may use io_uring, which CRIU cannot checkpoint.
        env: { UV_USE_IO_URING: '0' },
        extraReady: async (deadline) => {
          for (;;) {
            try {
              if ((await httpGet(port, '/verify')).status === 200) return;
            } catch { /* not yet */ }
            if (Date.now() > deadline) throw new FerryError('ERR_WORKLOAD_TIMEOUT', `node-service does not answer on 127.0.0.1:${port}`);
            await sleep(50);
          }
        },
        extraVerify: async (summary) => {
          const v = await httpGet(port, '/verify').catch((err: Error) => { throw new WorkloadVerifyError('node-service', `GET /verify: ${err.message}`); });
          const parsed = JSON.parse(v.body) as { ok: boolean; reason?: string };
          if (v.status !== 200 || !parsed.ok) throw new WorkloadVerifyError('node-service', `GET /verify: ${v.status} ${parsed.reason ?? v.body}`);
          const c = await httpGet(port, '/count');
          const count = (JSON.parse(c.body) as { count: number }).count;
          if (!(count > 0)) throw new WorkloadVerifyError('node-service', `GET /count answered ${c.body}`);
          return `${summary} http_count=${count}`;
        },
      });
    },
  };
}

// Redis, verified from outside with redis-cli.

const REDIS_STRINGS = 1000;
const REDIS_HASH_FIELDS = 200;
const REDIS_LIST = 500;
const REDIS_SET = 100;
/** strings + hash + list + set + counter */
const REDIS_KEYS = REDIS_STRINGS + 4;

const redisValue = (seed: string, i: number): string => `v${i}-${createHash('sha256').update(`${seed}:${i}`).digest('hex').slice(0, 24)}`;

/** redis: redis-server with its state only in memory; keys loaded before a checkpoint must all come back. */
export function redisWorkload(): WorkloadSpec {
  return {
    name: 'redis',
    description: `redis-server holding ${REDIS_KEYS} keys in memory only; verify (redis-cli) checks every value, the server's run_id (not restarted) and an INCR counter`,
    // Idle clients are gone by checkpoint time; a client connected during one needs --tcp-established.
    checkpointFlags: [],
    criuOptions: {},
    async prepare(baseDir) {
      await mkdir(baseDir, { recursive: true });
      const dir = await mkdtemp(join(baseDir, 'redis-'));
      const port = await pickFreePort();
      const server = which('redis-server');
      const cli = which('redis-cli');
      const seed = dir;
      const command = [server, '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
        '--daemonize', 'no', '--dir', dir, '--loglevel', 'warning'];
      let runId: string | undefined;
      const redis = async (args: string[], input?: string): Promise<string> => {
        const p = run(cli, ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 10_000, maxBuffer: 16 * 1024 * 1024 });
        // redis-cli may exit (e.g. the server is not up yet) before it reads its input: the
        // command's own failure is the error to report, not the EPIPE of writing to it.
        p.child.stdin?.on('error', () => undefined);
        p.child.stdin?.end(input ?? '');
        return (await p).stdout;
      };
      const info = async (): Promise<Record<string, string>> => {
        const out: Record<string, string> = {};
        for (const line of (await redis(['INFO', 'server'])).split(/\r?\n/)) {
          const i = line.indexOf(':');
          if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
        }
        return out;
      };
      const lines = (s: string): string[] => s.split('\n').filter((l, i, a) => i < a.length - 1 || l !== '');
      function fail(reason: string): never {
        throw new WorkloadVerifyError('redis', reason);
      }
      return {
        name: 'redis',
        dir,
        statusDir: undefined,
        command,
        env: {},
        port,
        async waitReady(timeoutMs = 15_000) {
          const deadline = Date.now() + timeoutMs;
          for (;;) {
            try {
              if ((await redis(['PING'])).trim() === 'PONG') break;
            } catch { /* not yet */ }
            if (Date.now() > deadline) throw new FerryError('ERR_WORKLOAD_TIMEOUT', `redis-server does not answer PING on 127.0.0.1:${port}`);
            await sleep(50);
          }
          if (runId !== undefined) return;
          const cmds: string[] = [];
          for (let i = 0; i < REDIS_STRINGS; i++) cmds.push(`SET ferry:str:${i} ${redisValue(seed, i)}`);
          for (let i = 0; i < REDIS_HASH_FIELDS; i += 50) {
            const pairs: string[] = [];
            for (let j = i; j < i + 50; j++) pairs.push(`f${j}`, redisValue(seed, -j - 1));
            cmds.push(`HSET ferry:hash ${pairs.join(' ')}`);
          }
          for (let i = 0; i < REDIS_LIST; i += 100) cmds.push(`RPUSH ferry:list ${Array.from({ length: 100 }, (_, j) => String(i + j)).join(' ')}`);
          cmds.push(`SADD ferry:set ${Array.from({ length: REDIS_SET }, (_, j) => `m${j}`).join(' ')}`);
          cmds.push('SET ferry:counter 0');
          const out = await redis([], `${cmds.join('\n')}\n`);
          if (/ERR/.test(out)) throw new FerryError('ERR_WORKLOAD_SETUP', `loading redis failed: ${out.slice(0, 300)}`);
          runId = (await info())['run_id'];
          if (!runId) throw new FerryError('ERR_WORKLOAD_SETUP', 'redis INFO has no run_id');
        },
        readyInfo() {
          return runId === undefined ? {} : { port: String(port), run_id: runId };
        },
        async verify(rootPid) {
          requireProgram('redis', rootPid, 'redis-server');
          if (runId === undefined) fail('waitReady() never loaded the keys');
          const id = (await info().catch((e: Error) => fail(`INFO: ${e.message}`)))['run_id'];
          if (id !== runId) fail(`run_id is ${id}, was ${runId}: this is another redis-server, not the restored one`);
          const size = Number((await redis(['DBSIZE'])).trim());
          if (size !== REDIS_KEYS) fail(`DBSIZE is ${size}, expected ${REDIS_KEYS}`);
          for (let from = 0; from < REDIS_STRINGS; from += 500) {
            const keys = Array.from({ length: Math.min(500, REDIS_STRINGS - from) }, (_, j) => `ferry:str:${from + j}`);
            const got = lines(await redis(['MGET', ...keys]));
            keys.forEach((k, j) => {
              const want = redisValue(seed, from + j);
              if (got[j] !== want) fail(`${k} is '${got[j] ?? '(missing)'}', expected '${want}'`);
            });
          }
          const fields = Array.from({ length: REDIS_HASH_FIELDS }, (_, j) => `f${j}`);
          const hvals = lines(await redis(['HMGET', 'ferry:hash', ...fields]));
          fields.forEach((f, j) => {
            if (hvals[j] !== redisValue(seed, -j - 1)) fail(`ferry:hash ${f} is '${hvals[j] ?? '(missing)'}'`);
          });
          if (Number((await redis(['HLEN', 'ferry:hash'])).trim()) !== REDIS_HASH_FIELDS) fail('ferry:hash has extra fields');
          const list = lines(await redis(['LRANGE', 'ferry:list', '0', '-1']));
          if (list.length !== REDIS_LIST || list.some((v, i) => v !== String(i))) fail(`ferry:list is wrong (${list.length} items)`);
          const members = lines(await redis(['SMEMBERS', 'ferry:set'])).sort();
          const wantMembers = Array.from({ length: REDIS_SET }, (_, j) => `m${j}`).sort();
          if (members.join(',') !== wantMembers.join(',')) fail(`ferry:set has ${members.length} members, not m0..m${REDIS_SET - 1}`);
          // Each verification bumps it (redis does not change by itself): its progress.
          const counter = Number((await redis(['INCR', 'ferry:counter'])).trim());
          if (!(counter >= 1)) fail(`INCR ferry:counter gave ${counter}`);
          return `keys=${size} run_id=${runId.slice(0, 12)} progress=${counter}`;
        },
        async cleanup() {
          await rm(dir, { recursive: true, force: true });
        },
      };
    },
  };
}

/** Every workload with the defaults the tests use (memcheck 64 MiB). */
export function allWorkloads(): WorkloadSpec[] {
  return [
    memcheckWorkload(),
    proctreeWorkload(),
    threadsWorkload(),
    tcpechoWorkload(),
    filelockWorkload(),
    nodeServiceWorkload(),
    pythonStateWorkload(),
    redisWorkload(),
  ];
}

export function workload(name: WorkloadName): WorkloadSpec {
  const spec = allWorkloads().find((w) => w.name === name);
  if (!spec) throw new FerryError('ERR_BAD_OPTION', `no workload named ${name}`);
  return spec;
}

// ---------------------------------------------------------------------------------------------
// Starting a workload the way `ferry run` does, for tests and benchmarks that do not go through ferry.

export interface IsolatedRun {
  /** unshare's pid (in the host namespace); it exits when the root exits. */
  launcherPid: number;
  /** The workload's root: pid 1 and session leader of its own pid namespace; its host pid. */
  rootPid: number;
  /** Resolves when the launcher has exited (so the original root is gone and reaped). */
  exited: Promise<void>;
  /** SIGKILLs the root (which ends the whole pid namespace) and the launcher. */
  kill(): void;
}

/**
 * Runs `instance.command` as pid 1 and session leader of a new pid namespace
 * (`unshare --pid --fork setsid CMD...`), detached, stdin /dev/null, stdout and stderr appended to
 * `<logDir>/stdout.log` and `stderr.log`, working directory the instance's directory.
 */
export async function launchIsolated(instance: WorkloadInstance, logDir = instance.dir): Promise<IsolatedRun> {
  const out = openSync(join(logDir, 'stdout.log'), 'a');
  const err = openSync(join(logDir, 'stderr.log'), 'a');
  let child: ChildProcess;
  try {
    child = spawn(which('unshare'), ['--pid', '--fork', which('setsid'), ...instance.command], {
      detached: true,
      stdio: ['ignore', out, err],
      cwd: instance.dir,
      env: { ...process.env, ...instance.env },
    });
    await new Promise<void>((ok, bad) => { child.once('spawn', ok); child.once('error', bad); });
  } finally {
    closeSync(out);
    closeSync(err);
  }
  const launcherPid = child.pid;
  if (launcherPid === undefined) throw new Error('unshare did not start');
  const exited = new Promise<void>((r) => {
    if (child.exitCode !== null || child.signalCode !== null) r();
    else child.once('exit', () => r());
  });
  const killLauncher = (): void => { try { process.kill(launcherPid, 'SIGKILL'); } catch { /* gone */ } };
  const deadline = Date.now() + 5000;
  let rootPid: number | undefined;
  while (rootPid === undefined) {
    const kids = readIfExists(`/proc/${launcherPid}/task/${launcherPid}/children`)?.trim();
    if (kids) rootPid = Number(kids.split(/\s+/)[0]);
    else if (Date.now() > deadline || child.exitCode !== null) {
      killLauncher();
      throw new FerryError('ERR_WORKLOAD_SETUP', `unshare (pid ${launcherPid}) started no workload; see ${join(logDir, 'stderr.log')}`);
    }
    else await sleep(5);
  }
  const root = rootPid;
  // Once the launcher has exited (the root went with it), both pids are free and may already
  // belong to other processes (pid_max is 32768 here and a test run wraps it): never kill them then.
  let gone = false;
  void exited.then(() => { gone = true; });
  return {
    launcherPid,
    rootPid: root,
    exited,
    kill() {
      if (gone) return;
      try { process.kill(root, 'SIGKILL'); } catch { /* gone */ }
      killLauncher();
    },
  };
}

/** The last `maxBytes` of a log file the launcher wrote, for failure messages. */
export async function logTail(dir: string, file: 'stdout.log' | 'stderr.log' = 'stderr.log', maxBytes = 2000): Promise<string> {
  const text = await readFile(join(dir, file), 'utf8').catch(() => '');
  return text.slice(-maxBytes);
}
