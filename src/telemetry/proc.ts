import { readFileSync, readdirSync } from 'node:fs';

/**
 * Cheap, synchronous readers of /proc for the host sampler (each is a few µs; they run every
 * ~50 ms while an operation is under way, so no promise machinery per read).
 */

/** Aggregate CPU time counters from the first line of /proc/stat, in clock ticks. */
export interface CpuTimes { busy: number; total: number }

export function parseProcStat(text: string): CpuTimes | undefined {
  const line = text.split('\n', 1)[0] ?? '';
  const m = /^cpu\s+(.*)$/.exec(line);
  if (!m?.[1]) return undefined;
  // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already
  // counted in user/nice, so it is left out of the total.
  const v = m[1].trim().split(/\s+/).map(Number).slice(0, 8);
  if (v.length < 4 || v.some((x) => !Number.isFinite(x))) return undefined;
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total };
}

/** Busy share of all CPUs between two readings, in percent (0–100); undefined without a delta. */
export function cpuBusyPercent(a: CpuTimes, b: CpuTimes): number | undefined {
  const dt = b.total - a.total;
  if (dt <= 0) return undefined;
  return Math.min(100, Math.max(0, ((b.busy - a.busy) / dt) * 100));
}

export interface MemInfo { totalBytes: number; availableBytes: number; usedBytes: number }

export function parseMeminfo(text: string): MemInfo | undefined {
  const kb = (key: string): number | undefined => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
    return m?.[1] === undefined ? undefined : Number(m[1]) * 1024;
  };
  const totalBytes = kb('MemTotal');
  const availableBytes = kb('MemAvailable');
  if (totalBytes === undefined || availableBytes === undefined) return undefined;
  return { totalBytes, availableBytes, usedBytes: totalBytes - availableBytes };
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

export const readCpuTimes = (): CpuTimes | undefined => parseProcStat(read('/proc/stat') ?? '');
export const readMeminfo = (): MemInfo | undefined => parseMeminfo(read('/proc/meminfo') ?? '');

/**
 * The fields of /proc/PID/stat after the command name (which may hold spaces and parentheses):
 * [0] state, [1] ppid, [3] session, [6] flags, [19] starttime (clock ticks since boot).
 */
export function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/**
 * A process's start time (field 22 of /proc/PID/stat, clock ticks since boot), or undefined when
 * it is gone. A pid with a different start time is another process (pids are reused).
 */
export function processStartTime(pid: number): string | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const stat = read(`/proc/${pid}/stat`);
  return stat === undefined ? undefined : statFields(stat)[19];
}

const PAGE_SIZE = 4096;

/** Pids of the tree rooted at `pid` (via /proc/<pid>/task/<tid>/children); [] when it is gone. */
export function treePids(pid: number): number[] {
  const out: number[] = [];
  const queue = [pid];
  while (queue.length && out.length < 10_000) {
    const p = queue.shift()!;
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    out.push(p);
    for (const t of tasks) {
      for (const k of (read(`/proc/${p}/task/${t}/children`) ?? '').trim().split(/\s+/)) if (k) queue.push(Number(k));
    }
  }
  return out;
}

/**
 * Resident memory of a process tree in bytes, from /proc/<pid>/statm (resident pages; cheap,
 * unlike smaps_rollup); undefined when the root is gone.
 */
export function treeRss(pid: number): number | undefined {
  const pids = treePids(pid);
  if (pids.length === 0) return undefined;
  let pages = 0;
  for (const p of pids) {
    const f = (read(`/proc/${p}/statm`) ?? '').trim().split(/\s+/);
    const resident = Number(f[1]);
    if (Number.isFinite(resident)) pages += resident;
  }
  return pages * PAGE_SIZE;
}
