import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from '../criu/binary.js';

/**
 * Test containers: bundles built by scripts/build-bundles.sh (.deps/bundles/{busybox,redis}),
 * copied per test with their own args and a bind-mounted host directory at /data; started
 * detached the way conmon does it (stdin /dev/null, stdout/stderr pipes drained into files).
 */

const run = promisify(execFile);
export const BUNDLES_DIR = join(PROJECT_ROOT, '.deps', 'bundles');
export type BundleKind = 'busybox' | 'redis';
export type TestRuntime = 'runc' | 'crun';

/** Why container tests cannot run here, or undefined when they can. */
export function containerTestsBlocked(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root';
  for (const k of ['busybox', 'redis']) {
    if (!existsSync(join(BUNDLES_DIR, k, 'config.json'))) return `no ${k} bundle (run scripts/build-bundles.sh or make setup)`;
  }
  return undefined;
}

/**
 * A bundle in `dir` for the prebuilt rootfs of `kind`: the base config.json with an absolute
 * root path, `/data` bound from `dataDir`, and (optionally) other args.
 */
export async function makeBundle(kind: BundleKind, dir: string, dataDir: string, args?: string[]): Promise<string> {
  const base = JSON.parse(await readFile(join(BUNDLES_DIR, kind, 'config.json'), 'utf8')) as {
    root: { path: string }; mounts: { destination: string }[]; process: { args: string[] };
  };
  base.root.path = join(BUNDLES_DIR, kind, 'rootfs');
  base.mounts.push({ destination: '/data', type: 'bind', source: dataDir, options: ['rbind', 'rw'] } as { destination: string });
  if (args) base.process.args = args;
  await mkdir(dir, { recursive: true });
  await mkdir(dataDir, { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify(base, null, 2));
  return dir;
}

/**
 * Starts a container detached. stdin is /dev/null; stdout and stderr are pipes drained by `cat`
 * into `<logDir>/stdout.log` and `stderr.log` (pipes survive a checkpoint; host files would not).
 */
export async function startContainer(runtime: TestRuntime, id: string, bundle: string, logDir: string, root?: string): Promise<number> {
  await mkdir(logDir, { recursive: true });
  const script = `"$@" </dev/null > >(exec cat >>"$LOGDIR/stdout.log") 2> >(exec cat >>"$LOGDIR/stderr.log")`;
  const code = await new Promise<number>((ok, bad) => {
    const child = spawn('bash', ['-c', script, 'start', runtime, ...(root !== undefined ? ['--root', root] : []), 'run', '--detach', '--bundle', bundle, id], {
      env: { ...process.env, LOGDIR: logDir }, stdio: 'ignore',
    });
    child.once('error', bad);
    child.once('exit', (c) => ok(c ?? 1));
  });
  if (code !== 0) throw new Error(`${runtime} run ${id} exited ${code}: ${await readFile(join(logDir, 'stderr.log'), 'utf8').catch(() => '')}`);
  return (await state(runtime, id, root)).pid;
}

const rootArgs = (root: string | undefined): string[] => (root !== undefined ? ['--root', root] : []);

export async function state(runtime: TestRuntime, id: string, root?: string): Promise<{ pid: number; status: string }> {
  const { stdout } = await run(runtime, [...rootArgs(root), 'state', id]);
  const s = JSON.parse(stdout) as { pid: number; status: string };
  return { pid: s.pid, status: s.status };
}

export async function stateOrUndefined(runtime: TestRuntime, id: string, root?: string): Promise<{ pid: number; status: string } | undefined> {
  return state(runtime, id, root).catch(() => undefined);
}

/** Kills and deletes a container; quiet when it does not exist. */
export async function removeContainer(runtime: TestRuntime, id: string, root?: string): Promise<void> {
  await run(runtime, [...rootArgs(root), 'kill', id, 'KILL']).catch(() => undefined);
  for (let i = 0; i < 50; i++) {
    const s = await stateOrUndefined(runtime, id, root);
    if (!s || s.status === 'stopped') break;
    await new Promise((r) => setTimeout(r, 20));
  }
  await run(runtime, [...rootArgs(root), 'delete', '--force', id]).catch(() => undefined);
}

/** Runs a command inside a container (`<runtime> exec`). */
export async function execIn(runtime: TestRuntime, id: string, args: string[]): Promise<string> {
  return (await run(runtime, ['exec', id, ...args], { timeout: 10_000 })).stdout;
}

// redis-server in a container, reached through its unix socket in the bind-mounted /data.

const STRINGS = 1000;
const value = (seed: string, i: number): string => `v${i}-${createHash('sha256').update(`${seed}:${i}`).digest('hex').slice(0, 24)}`;

export interface ContainerRedis {
  /** Loads the keys (after waiting for PING); remembers redis's run_id. */
  load(timeoutMs?: number): Promise<void>;
  /** Checks every key, the run_id (the same server, not a restart) and an INCR; returns a summary. */
  verify(): Promise<string>;
}

export function containerRedis(dataDir: string, seed = dataDir): ContainerRedis {
  const sock = join(dataDir, 'redis.sock');
  let runId: string | undefined;
  const cli = async (args: string[], input?: string): Promise<string> => {
    const p = run('redis-cli', ['-s', sock, ...args], { timeout: 10_000, maxBuffer: 16 << 20 });
    p.child.stdin?.on('error', () => undefined); // redis-cli may exit before reading (no server yet)
    p.child.stdin?.end(input ?? '');
    return (await p).stdout;
  };
  const info = async (): Promise<string | undefined> => /run_id:(\w+)/.exec(await cli(['INFO', 'server']))?.[1];
  return {
    async load(timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (existsSync(sock) && (await cli(['PING']).catch(() => '')).trim() === 'PONG') break;
        if (Date.now() > deadline) throw new Error(`redis in the container does not answer on ${sock}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const cmds = Array.from({ length: STRINGS }, (_, i) => `SET k:${i} ${value(seed, i)}`);
      cmds.push('SET counter 0');
      const out = await cli([], cmds.join('\n') + '\n');
      if (/ERR/.test(out)) throw new Error(`loading redis failed: ${out.slice(0, 200)}`);
      runId = await info();
    },
    async verify() {
      if (!runId) throw new Error('load() never ran');
      const id = await info();
      if (id !== runId) throw new Error(`run_id is ${id}, was ${runId}: another redis-server, not the restored one`);
      const size = Number((await cli(['DBSIZE'])).trim());
      if (size !== STRINGS + 1) throw new Error(`DBSIZE is ${size}, expected ${STRINGS + 1}`);
      for (let from = 0; from < STRINGS; from += 500) {
        const keys = Array.from({ length: Math.min(500, STRINGS - from) }, (_, j) => `k:${from + j}`);
        const got = (await cli(['MGET', ...keys])).split('\n');
        keys.forEach((k, j) => {
          if (got[j] !== value(seed, from + j)) throw new Error(`${k} is '${got[j] ?? '(missing)'}', expected '${value(seed, from + j)}'`);
        });
      }
      const counter = Number((await cli(['INCR', 'counter'])).trim());
      return `keys=${size} run_id=${runId.slice(0, 12)} counter=${counter}`;
    },
  };
}
