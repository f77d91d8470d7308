import { readFile } from 'node:fs/promises';
import { statFields, treePids } from '../telemetry/proc.js';
import { FerryError } from '../util/errors.js';

/** Facts about a live process, read from /proc. */
export interface ProcessInfo {
  pid: number;
  ppid: number;
  sid: number;
  comm: string;
  command: string[];
  /** pid in its own (innermost) pid namespace: 1 means it is the namespace's init. */
  nsPid: number;
  kernelThread: boolean;
}

const PF_KTHREAD = 0x00200000;

// The /proc/PID/stat parser lives in telemetry (the store needs it too, for intents' owners).
export { statFields } from '../telemetry/proc.js';

export async function processInfo(pid: number): Promise<ProcessInfo | undefined> {
  let stat: string;
  let status: string;
  try {
    [stat, status] = await Promise.all([readFile(`/proc/${pid}/stat`, 'utf8'), readFile(`/proc/${pid}/status`, 'utf8')]);
  } catch {
    return undefined;
  }
  const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
  const f = statFields(stat);
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  const nsPids = /^NSpid:\s*(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/).map(Number) ?? [pid];
  return {
    pid,
    ppid: Number(f[1]),
    sid: Number(f[3]),
    comm,
    command: cmdline.split('\0').filter((s, i, a) => s !== '' || i < a.length - 1),
    nsPid: nsPids.at(-1) ?? pid,
    kernelThread: (Number(f[6]) & PF_KTHREAD) !== 0,
  };
}

/** Pids of this process and its ancestors: dumping any of them would freeze ferry itself. */
export async function selfAndAncestors(): Promise<Set<number>> {
  const out = new Set<number>();
  let pid = process.pid;
  while (pid > 1 && !out.has(pid)) {
    out.add(pid);
    const info = await processInfo(pid);
    if (!info) break;
    pid = info.ppid;
  }
  return out;
}

/** Resident memory of a process tree, in bytes (what a dump will roughly write). */
export async function treeRssBytes(pid: number): Promise<number> {
  let total = 0;
  for (const p of treePids(pid)) {
    const s = await readFile(`/proc/${p}/smaps_rollup`, 'utf8').catch(() => '');
    const kb = /^Rss:\s+(\d+) kB/m.exec(s)?.[1];
    if (kb) total += Number(kb) * 1024;
  }
  return total;
}

/**
 * Checks that `pid` can be checkpointed by ferry, before CRIU runs, with a clear reason and
 * remedy when not. Returns its facts.
 */
export async function checkCheckpointable(pid: number, opts: { shellJob: boolean }): Promise<ProcessInfo> {
  const info = await processInfo(pid);
  if (!info) {
    throw new FerryError('ERR_NO_PROCESS', `no process with pid ${pid}`, { hint: 'check the pid with `ps -p PID`, or name a workload started with `ferry run`' });
  }
  if (info.kernelThread || pid === 2 || info.ppid === 2) {
    throw new FerryError('ERR_NOT_CHECKPOINTABLE', `pid ${pid} (${info.comm}) is a kernel thread; only user processes can be checkpointed`);
  }
  if (pid === 1) {
    throw new FerryError('ERR_NOT_CHECKPOINTABLE', 'pid 1 is this host\'s init; ferry will not freeze it');
  }
  if ((await selfAndAncestors()).has(pid)) {
    throw new FerryError('ERR_NOT_CHECKPOINTABLE', `pid ${pid} (${info.comm}) is ferry itself or one of its parents; freezing it would freeze ferry`, {
      hint: 'checkpoint a process that ferry does not run under',
    });
  }
  if (info.sid !== pid && info.nsPid !== 1 && !opts.shellJob) {
    throw new FerryError('ERR_NOT_CHECKPOINTABLE', `pid ${pid} (${info.comm}) is not a session leader (its session is ${info.sid})`, {
      hint: 'checkpoint it as a shell job (the shell-job option: the snapshot records it and its restore repeats it), or start the program with ferry\'s run or setsid',
    });
  }
  return info;
}

/** A process's start time in clock ticks since boot (/proc/PID/stat field 22): with the pid, it names one process. */
export async function processStartTime(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  return Number(statFields(stat)[19]);
}

/** The start time of `pid` if it is alive (not gone, not a zombie); undefined otherwise. */
export async function liveStartTime(pid: number): Promise<number | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return undefined;
  const f = statFields(stat);
  if (f[0] === 'Z' || f[0] === 'X') return undefined;
  return Number(f[19]);
}
