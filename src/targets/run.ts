import { spawn } from 'node:child_process';
import { closeSync, fstatSync, openSync } from 'node:fs';
import { mkdir, open, readFile, readlink, realpath, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError } from '../util/errors.js';
import { findOnPath } from '../util/path.js';
import { resolveExecutable } from './exec-path.js';
import { addServiceAddress, removeServiceAddress } from '../net/service-address.js';
import { addressIsUp, currentNetns, releaseEndedAddress } from './workload-address.js';
import { listWorkloads, readWorkload, recordWorkload, validWorkloadName, workloadIsRunning, type WorkloadAddress, type WorkloadRecord } from './workload-record.js';

export { readWorkload, writeWorkload, validWorkloadName, recordWorkload, workloadIsRunning, listWorkloads } from './workload-record.js';
export type { WorkloadRecord } from './workload-record.js';

/** How long run waits for the namespace's init to exec the command (it takes milliseconds). */
const EXEC_WATCHDOG_MS = 5000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function launcherBinaries(): Promise<Set<string>> {
  const out = new Set<string>();
  for (const b of ['unshare', 'setsid']) {
    const p = findOnPath(b);
    if (p) out.add(await realpath(p).catch(() => p));
  }
  return out;
}

/** The bytes appended to `path` since it had `from` bytes (the launcher's own complaint). */
async function tail(path: string, from: number): Promise<string> {
  const fh = await open(path, 'r').catch(() => undefined);
  if (!fh) return '';
  try {
    const buf = Buffer.alloc(8192);
    const { bytesRead } = await fh.read(buf, 0, buf.length, from);
    return buf.subarray(0, bytesRead).toString('utf8').trim();
  } finally {
    await fh.close();
  }
}

function execFailed(command: string[], path: string, errno: string, why: string, detail?: string): FerryError {
  return new FerryError('ERR_RUN_EXEC', `cannot run ${command[0] ?? ''}: ${why} [${errno}]`, {
    ...(detail ? { detail } : {}),
    hint: errno === 'EACCES'
      ? `make ${path} executable (chmod +x) or run it through its interpreter (e.g. ferry run -- sh ${path})`
      : `check the path (or PATH: ${process.env['PATH'] ?? ''}); give an absolute path, e.g. ferry run -- /usr/bin/CMD`,
  });
}

export interface RunOptions {
  /**
   * A service address for the workload (`ferry run --ip`): added on the host before the command
   * starts (so it can bind it), removed again if the start fails, recorded with the workload.
   */
  address?: { address: string; prefix?: number; dev?: string };
}

/**
 * Starts `command` detached as pid 1 and session leader of its own pid namespace
 * (`unshare --pid --fork setsid`), stdin from /dev/null, stdout/stderr appended to log files
 * (O_APPEND|O_WRONLY: CRIU does not pin the size of such files, so logs may grow between a
 * checkpoint and a restore). Resolves once the namespace's init has exec'd the command; a
 * command that cannot be executed is refused (ERR_RUN_EXEC) and leaves no record.
 * (No `--kill-child`: it sets a parent-death signal, which CRIU faithfully restores — and the
 * restored workload's parent is CRIU, which exits right after the restore.)
 * With `opts.address`, the service address goes up before the command starts and is recorded.
 */
export async function runWorkload(workloadsDir: string, name: string, command: string[], opts: RunOptions = {}): Promise<WorkloadRecord> {
  if (!validWorkloadName(name)) {
    throw new FerryError('ERR_USAGE', `invalid workload name '${name}'`, { hint: 'use letters, digits, dot, dash and underscore (max 64)' });
  }
  if (command.length === 0) throw new FerryError('ERR_USAGE', 'run: no command given', { hint: 'ferry run [--name NAME] -- CMD ARGS…' });
  const existing = await readWorkload(workloadsDir, name);
  if (existing && (await workloadIsRunning(existing))) {
    throw new FerryError('ERR_WORKLOAD_EXISTS', `a workload named '${name}' is already running (pid ${existing.pid})`, { hint: `pick another --name, or end it first with \`ferry stop ${name}\`` });
  }
  // The record is about to be replaced: an ended workload's address goes first, and so does
  // the same address left up by another workload that ended.
  if (existing) await releaseEndedAddress(workloadsDir, existing);
  if (opts.address) {
    for (const r of await listWorkloads(workloadsDir)) {
      if (addressIsUp(r) && r.address.address === opts.address.address) await releaseEndedAddress(workloadsDir, r);
    }
  }
  // Refused before anything starts: what execvp would not find or may not execute.
  const resolved = await resolveExecutable(command[0] ?? '');
  if (!resolved.ok) throw execFailed(command, resolved.path, resolved.errno, resolved.why);

  let address: WorkloadAddress | undefined;
  if (opts.address) {
    const { address: a, prefix, dev } = opts.address;
    const added = await addServiceAddress(a, { ...(prefix !== undefined ? { prefix } : {}), ...(dev !== undefined ? { dev } : {}) });
    address = { ...added, netns: await currentNetns() };
  }
  let pid: number;
  try {
    pid = await launch(workloadsDir, name, command, resolved.path);
  } catch (err) {
    // A workload that did not start leaves no address behind.
    if (address) {
      await removeServiceAddress(address).catch((e: unknown) => {
        if (err instanceof FerryError) err.addCleanupError(e);
      });
    }
    throw err;
  }
  return recordWorkload(workloadsDir, {
    name, pid, command,
    stdout: join(workloadsDir, name, 'stdout.log'),
    stderr: join(workloadsDir, name, 'stderr.log'),
    startedAt: new Date().toISOString(),
    ...(address ? { address } : {}),
  });
}

/** Starts the command (see runWorkload) and answers the namespace init's pid once it exec'd. */
async function launch(workloadsDir: string, name: string, command: string[], resolvedPath: string): Promise<number> {
  const dir = join(workloadsDir, name);
  const dirExisted = await stat(dir).then(() => true, () => false);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const stdout = join(dir, 'stdout.log');
  const stderr = join(dir, 'stderr.log');
  const out = openSync(stdout, 'a', 0o600);
  const err = openSync(stderr, 'a', 0o600);
  const stderrFrom = fstatSync(err).size;
  const child = spawn('unshare', ['--pid', '--fork', 'setsid', '--', ...command], {
    detached: true,
    stdio: ['ignore', out, err],
  });
  closeSync(out);
  closeSync(err);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : null))));
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (e) => reject(new FerryError('ERR_RUN', `could not start unshare: ${e.message}`, { cause: e, hint: 'apt-get install util-linux' })));
  });
  child.unref();
  const launcher = child.pid!;
  const launchers = await launcherBinaries();
  const cleanupFailed = async (): Promise<void> => {
    if (!dirExisted) await rm(dir, { recursive: true, force: true });
  };

  // The namespace's init is unshare's only child; it is setsid until it execs the command.
  // unshare --fork exits with the init's status, so 126/127 is setsid's failed exec.
  const deadline = Date.now() + EXEC_WATCHDOG_MS;
  let pid: number | undefined;
  let execd = launchers.has(resolvedPath) || launchers.has(await realpath(resolvedPath).catch(() => resolvedPath));
  while (Date.now() < deadline) {
    if (pid === undefined) {
      pid = await initOf(launcher);
    }
    if (pid !== undefined && !execd) {
      const exe = await readlink(`/proc/${pid}/exe`).catch(() => undefined);
      if (exe !== undefined && !launchers.has(exe)) execd = true;
    }
    if (pid !== undefined && execd) break;
    if (child.exitCode !== null || child.signalCode !== null) break;
    await sleep(2);
  }
  if (pid === undefined || !execd) {
    const code = await Promise.race([exited, sleep(500).then(() => undefined)]);
    const said = await tail(stderr, stderrFrom);
    if (code === undefined) {
      // Still not exec'd after the watchdog: end what was started rather than leave it half-way.
      try { process.kill(-launcher, 'SIGKILL'); } catch { /* already gone */ }
    }
    await cleanupFailed();
    if (code === 126 || code === 127) {
      const errno = code === 126 ? 'EACCES' : 'ENOENT';
      throw execFailed(command, resolvedPath, errno, said.replace(/^setsid: /, '') || `the command could not be executed (status ${code})`);
    }
    throw new FerryError('ERR_RUN', code === undefined || code === null
      ? `the workload did not start: ${command.join(' ')}`
      : `${command.join(' ')} exited right after it started (status ${code})`, {
      detail: said ? said.split('\n').slice(-5).join('\n') : `the launcher ${code === undefined ? `did not exec the command within ${EXEC_WATCHDOG_MS} ms` : `exited with status ${code}`}`,
      hint: 'check the command runs on its own, e.g. with `unshare --pid --fork setsid -- CMD`',
    });
  }
  return pid;
}

/** unshare's only child: the namespace's init. */
async function initOf(launcher: number): Promise<number | undefined> {
  const kids = await readFile(`/proc/${launcher}/task/${launcher}/children`, 'utf8').catch(() => '');
  const first = kids.trim().split(/\s+/)[0];
  return first ? Number(first) : undefined;
}
