import { spawn } from 'node:child_process';
import { open, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { isAbsolute } from 'node:path';
import { FerryError } from '../util/errors.js';

/**
 * Readiness probes (`ferry run --ready SPEC`): when a program counts as ready.
 *
 *   tcp:PORT | tcp:HOST:PORT   a TCP connect succeeds (HOST defaults to 127.0.0.1)
 *   file:PATH                  PATH exists (on a cold boot: created or modified since the start)
 *   log:REGEX                  the workload's stdout or stderr log has a line matching REGEX
 *                              since the start (on a warm restore: the snapshot was taken after
 *                              it, so it holds at once)
 *   cmd:SHELL                  `sh -c SHELL` exits 0 (each attempt ends after 5 s)
 *
 * A log line is an event in the program's past, which a restored program has already lived
 * through; the other three look at the program (or the world) now, and are asked again after a
 * warm restore.
 */
export type ReadyProbe =
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'file'; path: string }
  | { kind: 'log'; regex: RegExp }
  | { kind: 'cmd'; shell: string };

const USAGE_HINT = "use tcp:PORT, tcp:HOST:PORT, file:/ABS/PATH, log:REGEX or cmd:'SHELL'";

export function parseReadyProbe(spec: string): ReadyProbe {
  const colon = spec.indexOf(':');
  const kind = colon < 0 ? spec : spec.slice(0, colon);
  const arg = colon < 0 ? '' : spec.slice(colon + 1);
  const bad = (why: string): never => { throw new FerryError('ERR_USAGE', `--ready '${spec}': ${why}`, { hint: USAGE_HINT }); };
  switch (kind) {
    case 'tcp': {
      const m = /^(?:(.+):)?(\d{1,5})$/.exec(arg);
      const port = m ? Number(m[2]) : NaN;
      if (!m || !(port >= 1 && port <= 65535)) return bad('not a TCP port (1-65535)');
      return { kind: 'tcp', host: m[1] ?? '127.0.0.1', port };
    }
    case 'file':
      if (!isAbsolute(arg)) return bad('the path must be absolute');
      return { kind: 'file', path: arg };
    case 'log':
      if (arg === '') return bad('give a regular expression');
      try {
        return { kind: 'log', regex: new RegExp(arg, 'm') };
      } catch (err) {
        return bad(`not a regular expression: ${(err as Error).message}`);
      }
    case 'cmd':
      if (arg.trim() === '') return bad('give a shell command');
      return { kind: 'cmd', shell: arg };
    default:
      return bad(`unknown probe '${kind}'`);
  }
}

/** Where the probe looks besides the probe's own target: the workload's logs and identity. */
export interface ProbeContext {
  /** The workload's stdout and stderr logs, and their sizes when this boot began (log: reads only what came after). */
  logs: { path: string; from: number }[];
  /** When this boot began (epoch ms): a cold boot's file: probe wants a file at least this new. */
  startedAt: number;
  /** A warm restore: log: holds at once, file: needs only to exist. */
  restored: boolean;
  /** Exported to cmd: probes as FERRY_PID and FERRY_NAME. */
  pid: number;
  name: string;
}

const PROBE_ATTEMPT_MS = 5000;

function tcpOnce(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (ok: boolean): void => { clearTimeout(t); s.destroy(); resolve(ok); };
    const t = setTimeout(() => done(false), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

async function logHas(logs: ProbeContext['logs'], regex: RegExp): Promise<boolean> {
  for (const l of logs) {
    const fh = await open(l.path, 'r').catch(() => undefined);
    if (!fh) continue;
    try {
      const size = (await fh.stat()).size;
      // The newest 4 MiB since the start: a line that matched is not lost to a chatty program for long.
      const from = Math.max(l.from, size - (4 << 20));
      const buf = Buffer.alloc(Math.max(0, size - from));
      await fh.read(buf, 0, buf.length, from);
      if (regex.test(buf.toString('utf8'))) return true;
    } finally {
      await fh.close();
    }
  }
  return false;
}

function cmdOnce(shell: string, ctx: ProbeContext, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn('sh', ['-c', shell], {
      stdio: 'ignore', detached: true,
      env: { ...process.env, FERRY_PID: String(ctx.pid), FERRY_NAME: ctx.name },
    });
    // The attempt's watchdog ends the probe's whole process group.
    const t = setTimeout(() => { try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } }, timeoutMs);
    child.once('error', () => { clearTimeout(t); resolve(false); });
    child.once('exit', (code) => { clearTimeout(t); resolve(code === 0); });
  });
}

/** One look: is the program ready now? */
export async function probeOnce(p: ReadyProbe, ctx: ProbeContext, timeoutMs = PROBE_ATTEMPT_MS): Promise<boolean> {
  switch (p.kind) {
    case 'tcp': return tcpOnce(p.host, p.port, Math.min(timeoutMs, 1000));
    case 'file': {
      const st = await stat(p.path).catch(() => undefined);
      if (!st) return false;
      return ctx.restored || st.mtimeMs >= ctx.startedAt - 1000;
    }
    case 'log': return ctx.restored || logHas(ctx.logs, p.regex);
    case 'cmd': return cmdOnce(p.shell, ctx, Math.min(timeoutMs, PROBE_ATTEMPT_MS));
  }
}

export type ReadyOutcome = { ready: true; ms: number } | { ready: false; why: 'timeout' | 'exited' | 'interrupted'; ms: number };

/**
 * Probes until ready, the program ends (`alive` false) or `timeoutMs` passes, whichever is
 * first. Looks often at first (a warm restore is ready within milliseconds) and backs off to
 * every 50 ms. `ms` counts from `since` (performance.now() of the start). An interrupt (Ctrl-C)
 * ends the wait at the next look.
 */
export async function waitReady(p: ReadyProbe, ctx: ProbeContext, timeoutMs: number, alive: () => Promise<boolean>, since: number, interrupt?: AbortSignal): Promise<ReadyOutcome> {
  const deadline = since + timeoutMs;
  for (let i = 0; ; i++) {
    if (interrupt?.aborted) return { ready: false, why: 'interrupted', ms: performance.now() - since };
    const left = deadline - performance.now();
    if (await probeOnce(p, ctx, Math.max(1, left))) return { ready: true, ms: performance.now() - since };
    if (!(await alive())) {
      return { ready: false, why: 'exited', ms: performance.now() - since };
    }
    if (performance.now() >= deadline) return { ready: false, why: 'timeout', ms: performance.now() - since };
    await new Promise((r) => setTimeout(r, Math.min(50, 2 + i * 2, Math.max(0, deadline - performance.now()))));
  }
}
