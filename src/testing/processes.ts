import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { statFields } from '../targets/process.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Test helpers: real processes and temporary directories, always cleaned up. */

export interface Workload {
  child: ChildProcess;
  pid: number;
  /** Resolves when the original process has exited and been reaped. */
  exited: Promise<void>;
}

/** Starts `cmd` as a session leader with stdio closed (what CRIU wants of a dump root). */
export async function startWorkload(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Workload> {
  const child = spawn(cmd, args, { detached: true, stdio: 'ignore', env });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await new Promise<void>((resolve, reject) => { child.once('spawn', resolve); child.once('error', reject); });
  if (child.pid === undefined) throw new Error(`could not start ${cmd}`);
  return { child, pid: child.pid, exited };
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie still answers kill(0); look at its state.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/\) Z /.test(stat);
  } catch {
    return false;
  }
}

export function killQuietly(pid: number | undefined): void {
  if (pid === undefined) return;
  try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
}

export function comm(pid: number): string | undefined {
  const p = `/proc/${pid}/comm`;
  return existsSync(p) ? readFileSync(p, 'utf8').trim() : undefined;
}

export async function waitFor(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function withTempDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), `ferry-test-${prefix}-`));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The kernel's start time of a process (clock ticks since boot), or undefined if it is gone. */
export function startTime(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  return statFields(stat)[19];
}

/**
 * Pids a test started, each remembered with its start time: killAll() kills only those that are
 * still the same process. pid_max is 32768 on these machines and a test run wraps it, so a
 * remembered pid may belong to someone else by the time a cleanup hook runs.
 */
export class OwnedPids {
  private readonly pids = new Map<number, string | undefined>();
  add(pid: number): void { this.pids.set(pid, startTime(pid)); }
  delete(pid: number): void { this.pids.delete(pid); }
  killAll(): void {
    for (const [pid, started] of this.pids) if (started !== undefined && startTime(pid) === started) killQuietly(pid);
    this.pids.clear();
  }
}
