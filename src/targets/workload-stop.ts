import { readFile } from 'node:fs/promises';
import { treePids } from '../telemetry/proc.js';
import { FerryError } from '../util/errors.js';
import { addressIsUp, addressReachableHere, releaseEndedAddress, removeWorkloadAddress } from './workload-address.js';
import { readWorkload, workloadIsRunning, writeWorkload, type WorkloadRecord } from './workload-record.js';

export interface StopResult {
  name: string;
  pid: number;
  /** `terminated`: it exited after SIGTERM; `killed`: the namespace's init got SIGKILL. */
  outcome: 'terminated' | 'killed';
  /** Whether the init handles SIGTERM (a pid namespace's init ignores it from outside otherwise). */
  initHandlesSigterm: boolean;
  /** Processes of the tree that got SIGTERM (the init included when it handles it). */
  sigtermSent: number;
  sigkillSent: boolean;
  durationMs: number;
  /** Its service address (`ferry run --ip`) and whether this stop removed it; null without one. */
  address: { address: string; removed: boolean } | null;
}

/** How long the kernel gets to tear down a namespace after SIGKILL of its init. */
const KILL_WATCHDOG_MS = 5000;
const SIGTERM_BIT = 1n << 14n;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** True when `pid` has a handler for SIGTERM (SigCgt in /proc/PID/status). */
async function catchesSigterm(pid: number): Promise<boolean> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const cgt = /^SigCgt:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  return cgt !== undefined && (BigInt(`0x${cgt}`) & SIGTERM_BIT) !== 0n;
}

function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** Polls until `done()` or the deadline; true when done. */
async function waitUntil(done: () => Promise<boolean> | boolean, deadline: number): Promise<boolean> {
  for (;;) {
    if (await done()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(20);
  }
}

/**
 * Ends a workload started by `ferry run` (or restored from one). The init of a pid namespace
 * ignores SIGTERM from outside unless it installed a handler, so: SIGTERM to every process of
 * the tree (the init only if it handles it), wait up to `timeoutMs` for the init to exit (an
 * init without a handler is not waited for once its descendants are gone), then SIGKILL the
 * init, which ends the whole namespace. Refuses an unknown name and a workload that is not
 * running; the pid is signalled only while it still has the recorded start time. Its service
 * address (if any) is removed once it is gone (an ended workload's too, before the refusal).
 */
export async function stopWorkload(workloadsDir: string, name: string, timeoutMs: number): Promise<StopResult> {
  const rec = await readWorkload(workloadsDir, name);
  if (!rec) {
    throw new FerryError('ERR_NO_WORKLOAD', `no workload named '${name}'`, { hint: '`ferry ps` lists the workloads started with `ferry run`' });
  }
  if (!(await workloadIsRunning(rec))) {
    // Nothing to stop, but an address it left up goes now.
    await releaseEndedAddress(workloadsDir, rec);
    throw new FerryError('ERR_WORKLOAD_NOT_RUNNING', `workload '${name}' is not running (its process ${rec.pid} ${rec.stoppedAt ? `was stopped at ${rec.stoppedAt}` : 'has exited'})`, {
      hint: `nothing to stop; \`ferry ps\` shows its state, its output is in ${rec.stderr}`,
    });
  }
  const started = Date.now();
  // An address added in another network namespace than this command's is reachable only
  // through the workload's own, so it goes before the workload does.
  let current = rec;
  if (addressIsUp(rec) && !(await addressReachableHere(rec.address))) current = await removeWorkloadAddress(workloadsDir, rec, { pid: rec.pid });
  const gone = async (): Promise<boolean> => !(await workloadIsRunning(rec));
  const handles = await catchesSigterm(rec.pid);
  const descendants = treePids(rec.pid).filter((p) => p !== rec.pid);
  let sigtermSent = 0;
  if (handles && signal(rec.pid, 'SIGTERM')) sigtermSent++;
  for (const p of descendants) if (signal(p, 'SIGTERM')) sigtermSent++;
  const deadline = started + timeoutMs;
  // An init without a handler never exits from SIGTERM: wait only for its descendants (or for
  // it exiting on its own once they are gone, as a shell running one command does).
  const settled = handles
    ? gone
    : async () => (await gone()) || treePids(rec.pid).length <= 1;
  await waitUntil(settled, deadline);
  let outcome: StopResult['outcome'] = 'terminated';
  let sigkillSent = false;
  if (!(await gone())) {
    if (!handles) await waitUntil(gone, Math.min(deadline, Date.now() + 100));
    if (!(await gone()) && (await workloadIsRunning(rec))) {
      sigkillSent = signal(rec.pid, 'SIGKILL');
      outcome = 'killed';
      if (!(await waitUntil(gone, Date.now() + KILL_WATCHDOG_MS))) {
        throw new FerryError('ERR_STOP_TIMEOUT', `workload '${name}' (pid ${rec.pid}) is still there ${KILL_WATCHDOG_MS} ms after SIGKILL`, {
          hint: `a process in uninterruptible sleep (state D) cannot die until its I/O ends; look at \`cat /proc/${rec.pid}/stack\``,
        });
      }
    }
  }
  const updated: WorkloadRecord = { ...current, stoppedAt: new Date().toISOString() };
  await writeWorkload(workloadsDir, updated);
  const after = await removeWorkloadAddress(workloadsDir, updated);
  const address = rec.address && !rec.address.removedAt ? { address: rec.address.address, removed: !addressIsUp(after) } : null;
  return { name, pid: rec.pid, outcome, initHandlesSigterm: handles, sigtermSent, sigkillSent, durationMs: Date.now() - started, address };
}
