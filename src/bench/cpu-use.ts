import { readFileSync } from 'node:fs';

/**
 * CPU used while a benchmark step runs, read from /proc: the whole machine's busy time, and a
 * process's own plus its waited-for children's (an agent and the CRIU runs it started). Seconds.
 */

const TICK_S = 0.01; // USER_HZ: 100 on Linux

/** The machine's busy CPU seconds so far (every state but idle and iowait). */
export function machineBusyS(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
  return (user + nice + system + irq + softirq + steal) * TICK_S;
}

/** A process's CPU seconds, its own and its waited-for children's; undefined once it is gone. */
export function processTreeS(pid: number): number | undefined {
  let stat: string;
  try { stat = readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch { return undefined; }
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14–17 of stat(5): utime, stime, cutime, cstime (here from field 3 on).
  const [utime, stime, cutime, cstime] = [f[11], f[12], f[13], f[14]].map(Number);
  return ((utime ?? 0) + (stime ?? 0) + (cutime ?? 0) + (cstime ?? 0)) * TICK_S;
}

/** Starts a measurement; `stop()` gives the seconds used since, per counter. */
export function cpuMeter(pids: Record<string, number>): { stop(): Record<string, number> } {
  const m0 = machineBusyS();
  const p0 = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, processTreeS(pid)]));
  return {
    stop() {
      const out: Record<string, number> = { machine: round(machineBusyS() - m0) };
      for (const [k, pid] of Object.entries(pids)) {
        const a = p0[k];
        const b = processTreeS(pid);
        if (a !== undefined && b !== undefined) out[k] = round(b - a);
      }
      return out;
    },
  };
}

const round = (x: number): number => Math.round(x * 100) / 100;
