/**
 * The hosts' agents: started detached inside their host's network namespace, asked for
 * /v1/health from inside it (the root namespace has no route to the testbed), and stopped with
 * SIGTERM, then SIGKILL, each wait with a watchdog.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { FerryError } from '../util/errors.js';
import { AGENT_PORT, type HostPlan } from './plan.js';
import { netnsPath } from './netns.js';
import { isSameProcess, processStartTime } from './proc.js';

export interface StartedAgent { pid: number; startTime: number }

/**
 * Starts `ferry agent` for a host: `nsenter --net=<netns> <node> <cli> --store S agent --listen
 * ADDR:PORT --token-file F`. nsenter enters the network namespace only (no new mount namespace,
 * which CRIU needs) and execs node, so the pid is the agent's. Its stdio go to its log file, so
 * no caller's pipe is held open by it, and it runs in its own session.
 */
export async function startAgent(o: { host: HostPlan; store: string; log: string; tokenFile: string; cli: string; env?: Record<string, string> }): Promise<StartedAgent> {
  await mkdir(o.store, { recursive: true, mode: 0o700 });
  await mkdir(dirname(o.log), { recursive: true, mode: 0o700 });
  const fd = openSync(o.log, 'a', 0o600);
  try {
    const env = { ...process.env, ...o.env };
    // The agent is local to its host; a caller's remote settings must not leak into it.
    delete env['FERRY_AGENT'];
    delete env['FERRY_TOKEN'];
    const child = spawn('nsenter', [`--net=${netnsPath(o.host.netns)}`, '--', process.execPath, o.cli,
      '--store', o.store, 'agent', '--listen', `${o.host.address}:${AGENT_PORT}`, '--token-file', o.tokenFile,
    ], { detached: true, stdio: ['ignore', fd, fd], env });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) => reject(new FerryError('ERR_TESTBED_SETUP', `testbed: cannot start ${o.host.name}'s agent: ${err.message}`, { hint: 'nsenter (util-linux) is needed', cause: err })));
    });
    child.unref();
    const pid = child.pid ?? 0;
    const startTime = await processStartTime(pid);
    if (startTime === undefined) {
      throw new FerryError('ERR_TESTBED_SETUP', `testbed: ${o.host.name}'s agent exited at once`, { hint: `its log is ${o.log}` });
    }
    return { pid, startTime };
  } finally {
    closeSync(fd);
  }
}

/** Polls GET /v1/health until it answers 200 or the deadline passes; prints the answer or the last failure. */
const PROBE_SCRIPT = `
const url = process.argv[1] + '/v1/health', end = Date.now() + Number(process.argv[2]);
let last = 'no answer';
(async () => {
  for (;;) {
    try {
      const r = await fetch(url, { headers: { authorization: 'Bearer ' + process.env.FERRY_PROBE_TOKEN }, signal: AbortSignal.timeout(2000) });
      const t = await r.text();
      if (r.ok) { process.stdout.write(t); process.exit(0); }
      last = 'HTTP ' + r.status + ': ' + t.slice(0, 300);
    } catch (e) { last = String((e && e.cause && e.cause.code) || (e && e.message) || e); }
    if (Date.now() >= end) { process.stderr.write(last); process.exit(1); }
    await new Promise((r) => setTimeout(r, 100));
  }
})();`;

export interface HealthAnswer { ok: boolean; store?: string; version?: string; error?: string }

/**
 * Asks a host's agent for /v1/health from inside the host's namespace, retrying for `waitMs`
 * (0: one try). A watchdog ends the probe if it overruns; `abort` ends it early (e.g. the agent died).
 */
export function probeHealth(o: { netns: string; url: string; token: string; waitMs: number; abort?: AbortSignal }): Promise<HealthAnswer> {
  return new Promise((resolve) => {
    const child = spawn('nsenter', [`--net=${netnsPath(o.netns)}`, '--', process.execPath, '-e', PROBE_SCRIPT, o.url, String(o.waitMs)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, FERRY_PROBE_TOKEN: o.token },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { err += b.toString(); });
    const kill = () => { child.kill('SIGKILL'); };
    const watchdog = setTimeout(() => { err ||= `no answer within ${o.waitMs + 5000} ms`; kill(); }, o.waitMs + 5000);
    o.abort?.addEventListener('abort', kill, { once: true });
    child.once('error', (e) => { err = e.message; });
    child.once('close', (code) => {
      clearTimeout(watchdog);
      o.abort?.removeEventListener('abort', kill);
      if (code !== 0) return resolve({ ok: false, error: err.trim() || `probe exited ${code ?? 'by a signal'}` });
      try {
        const body = JSON.parse(out) as { ok?: unknown; store?: unknown; version?: unknown };
        const a: HealthAnswer = { ok: body.ok === true };
        if (typeof body.store === 'string') a.store = body.store;
        if (typeof body.version === 'string') a.version = body.version;
        resolve(a);
      } catch {
        resolve({ ok: false, error: `not the agent's API: ${out.slice(0, 200)}` });
      }
    });
  });
}

/**
 * Waits until the agent answers /v1/health with its own store, for at most `timeoutMs`; fails at
 * once when the agent exits. The error carries the end of its log.
 */
export async function waitHealthy(o: { host: HostPlan; store: string; log: string; token: string; agent: StartedAgent; timeoutMs: number }): Promise<void> {
  const abort = new AbortController();
  let died = false;
  const watch = setInterval(() => {
    void isSameProcess(o.agent.pid, o.agent.startTime).then((alive) => {
      if (!alive) { died = true; abort.abort(); }
    });
  }, 100);
  try {
    const a = await probeHealth({ netns: o.host.netns, url: o.host.agentUrl, token: o.token, waitMs: o.timeoutMs, abort: abort.signal });
    if (a.ok && a.store === o.store) return;
    const tail = (await readFile(o.log, 'utf8').catch(() => '')).trim().split('\n').slice(-8).join('\n');
    const why = died ? 'it exited' : a.ok ? `it answered for another store (${a.store ?? '?'})` : `no healthy answer within ${o.timeoutMs} ms (${a.error ?? '?'})`;
    throw new FerryError('ERR_AGENT_UNREACHABLE', `testbed: ${o.host.name}'s agent at ${o.host.agentUrl} did not come up: ${why}`, {
      hint: `its log is ${o.log}; \`ferry testbed down\` removes the half-made testbed`,
      ...(tail ? { detail: tail } : {}),
    });
  } finally {
    clearInterval(watch);
  }
}

/** Resolves when `isGone()` holds, or after `timeoutMs` with false. */
async function waitUntil(isGone: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await isGone()) return true;
    if (Date.now() >= end) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
}

const alive = async (pid: number) => (await processStartTime(pid)) !== undefined;

export interface StopResult { terminated: number; killed: number; stuck: number[] }

/**
 * Ends processes: SIGTERM to `gentle` ones and a grace period for them, then SIGKILL to all that
 * are left, and a watchdog for them to vanish. `stuck` lists any still there after it.
 */
export async function endProcesses(gentle: readonly number[], others: readonly number[], graceMs = 5000): Promise<StopResult> {
  const signal = (pid: number, s: NodeJS.Signals) => { try { process.kill(pid, s); } catch { /* gone already */ } };
  const allGone = async (pids: readonly number[]) => (await Promise.all(pids.map(alive))).every((a) => !a);
  let terminated = 0;
  for (const pid of gentle) signal(pid, 'SIGTERM');
  if (gentle.length) await waitUntil(() => allGone(gentle), graceMs);
  for (const pid of gentle) if (!(await alive(pid))) terminated++;
  const left: number[] = [];
  for (const pid of [...gentle, ...others]) if (await alive(pid)) left.push(pid);
  for (const pid of left) signal(pid, 'SIGKILL');
  await waitUntil(() => allGone(left), 5000);
  const stuck: number[] = [];
  for (const pid of left) if (await alive(pid)) stuck.push(pid);
  return { terminated, killed: left.length - stuck.length, stuck };
}
