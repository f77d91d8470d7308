import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError, errnoCode } from '../util/errors.js';
import { processInfo } from './process.js';

/** A program started by `ferry run`, remembered by name. */
export interface WorkloadRecord {
  name: string;
  /** Host pid of the workload's root (pid 1 of its own pid namespace). */
  pid: number;
  command: string[];
  stdout: string;
  stderr: string;
  startedAt: string;
  /** Set when the current pid comes from a restore. */
  restoredFrom?: string;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function validWorkloadName(name: string): boolean {
  return NAME_RE.test(name);
}

export async function readWorkload(dir: string, name: string): Promise<WorkloadRecord | undefined> {
  if (!validWorkloadName(name)) return undefined;
  try {
    return JSON.parse(await readFile(join(dir, name, 'workload.json'), 'utf8')) as WorkloadRecord;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return undefined;
    throw err;
  }
}

export async function writeWorkload(dir: string, rec: WorkloadRecord): Promise<void> {
  await mkdir(join(dir, rec.name), { recursive: true, mode: 0o700 });
  const p = join(dir, rec.name, 'workload.json');
  await writeFile(`${p}.tmp`, JSON.stringify(rec, null, 2) + '\n');
  await rename(`${p}.tmp`, p);
}

/**
 * Starts `command` detached as pid 1 and session leader of its own pid namespace
 * (`unshare --pid --fork setsid`), stdin from /dev/null, stdout/stderr appended to log files
 * (O_APPEND|O_WRONLY: CRIU does not pin the size of such files, so logs may grow between a
 * checkpoint and a restore). Resolves once the namespace's init is running.
 * (No `--kill-child`: it sets a parent-death signal, which CRIU faithfully restores — and the
 * restored workload's parent is CRIU, which exits right after the restore.)
 */
export async function runWorkload(workloadsDir: string, name: string, command: string[]): Promise<WorkloadRecord> {
  if (!validWorkloadName(name)) {
    throw new FerryError('ERR_USAGE', `invalid workload name '${name}'`, { hint: 'use letters, digits, dot, dash and underscore (max 64)' });
  }
  if (command.length === 0) throw new FerryError('ERR_USAGE', 'run: no command given', { hint: 'ferry run [--name NAME] -- CMD ARGS…' });
  const existing = await readWorkload(workloadsDir, name);
  if (existing && (await processInfo(existing.pid))) {
    throw new FerryError('ERR_WORKLOAD_EXISTS', `a workload named '${name}' is already running (pid ${existing.pid})`, { hint: 'pick another --name' });
  }
  const dir = join(workloadsDir, name);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const stdout = join(dir, 'stdout.log');
  const stderr = join(dir, 'stderr.log');
  const out = openSync(stdout, 'a', 0o600);
  const err = openSync(stderr, 'a', 0o600);
  const child = spawn('unshare', ['--pid', '--fork', 'setsid', '--', ...command], {
    detached: true,
    stdio: ['ignore', out, err],
  });
  closeSync(out);
  closeSync(err);
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (e) => reject(new FerryError('ERR_RUN', `could not start unshare: ${e.message}`, { cause: e, hint: 'apt-get install util-linux' })));
  });
  child.unref();
  const launcher = child.pid!;
  // The namespace's init is unshare's only child.
  let pid: number | undefined;
  const until = Date.now() + 5000;
  while (pid === undefined && Date.now() < until) {
    const kids = await readFile(`/proc/${launcher}/task/${launcher}/children`, 'utf8').catch(() => '');
    const first = kids.trim().split(/\s+/)[0];
    if (first) pid = Number(first);
    else if (child.exitCode !== null) break;
    else await new Promise((r) => setTimeout(r, 10));
  }
  if (pid === undefined) {
    const log = await readFile(stderr, 'utf8').catch(() => '');
    throw new FerryError('ERR_RUN', `the workload did not start: ${command.join(' ')}`, { detail: log.split('\n').slice(-5).join('\n'), hint: `see ${stderr}` });
  }
  const rec: WorkloadRecord = { name, pid, command, stdout, stderr, startedAt: new Date().toISOString() };
  await writeWorkload(workloadsDir, rec);
  return rec;
}
