import { readlink, stat } from 'node:fs/promises';
import { FerryError } from '../util/errors.js';
import { removeServiceAddress, type NetnsOption } from '../net/service-address.js';
import { listWorkloads, readWorkload, workloadIsRunning, writeWorkload, type WorkloadAddress, type WorkloadRecord } from './workload-record.js';

/**
 * A workload's service address lives as long as the workload: `ferry stop` removes it, and the
 * address of a workload that ended on its own (or was checkpointed without --leave-running) is
 * removed the next time ferry looks at the workload (`ferry ps`, `ferry run`, `ferry stop`).
 */

/** The calling process's network namespace, as the kernel names it (`net:[INODE]`). */
export async function currentNetns(): Promise<string> {
  return readlink('/proc/self/ns/net');
}

/** The kernel's name (`net:[INODE]`) of the network namespace at `path` (a bind mount or /proc link). */
export async function netnsId(path: string): Promise<string> {
  return `net:[${(await stat(path)).ino}]`;
}

/** True while the record's address is up as far as ferry knows (added and not yet removed). */
export function addressIsUp(rec: WorkloadRecord): rec is WorkloadRecord & { address: WorkloadAddress } {
  return rec.address !== undefined && rec.address.removedAt === undefined;
}

/**
 * Where the address can be reached: here (the namespace it was added in), through the running
 * workload's own namespace (`/proc/PID/ns/net`), or nowhere (another namespace, and the
 * workload that could lead there is gone): undefined.
 */
async function whereIs(a: WorkloadAddress, pid?: number): Promise<NetnsOption | undefined> {
  if (a.netns === undefined || a.netns === await currentNetns()) return {};
  if (pid !== undefined && await readlink(`/proc/${pid}/ns/net`).catch(() => undefined) === a.netns) return { netns: `/proc/${pid}/ns/net` };
  return undefined;
}

/** True when this process can remove the address without the workload's help. */
export async function addressReachableHere(a: WorkloadAddress): Promise<boolean> {
  return (await whereIs(a)) !== undefined;
}

/**
 * Removes the record's service address (if it is up and reachable: see whereIs) and records
 * when. `pid` lets it go through a running workload's namespace. Answers the record as it is
 * now. The record is rewritten only while it still names the same process: a restore may have
 * written a new one in the meantime.
 */
export async function removeWorkloadAddress(workloadsDir: string, rec: WorkloadRecord, opts: { pid?: number } = {}): Promise<WorkloadRecord> {
  if (!addressIsUp(rec)) return rec;
  const where = await whereIs(rec.address, opts.pid);
  if (where === undefined) return rec;
  await removeServiceAddress({ address: rec.address.address, dev: rec.address.dev }, where);
  const updated: WorkloadRecord = { ...rec, address: { ...rec.address, removedAt: new Date().toISOString() } };
  const now = await readWorkload(workloadsDir, rec.name);
  if (now && (now.pid !== rec.pid || now.startTime !== rec.startTime)) return now;
  await writeWorkload(workloadsDir, updated);
  return updated;
}

/** Removes the service address of a workload that is no longer running; a running one is left alone. */
export async function releaseEndedAddress(workloadsDir: string, rec: WorkloadRecord): Promise<WorkloadRecord> {
  if (!addressIsUp(rec) || await workloadIsRunning(rec)) return rec;
  return removeWorkloadAddress(workloadsDir, rec);
}

/**
 * The store's workload records, with the address of every workload that ended removed first (what
 * `ferry ps` and the agent's workload list show). A removal that fails is reported to `warn` and
 * the record kept as it was: listing never fails for it.
 */
export async function listWorkloadsReleasingEnded(workloadsDir: string, warn: (rec: WorkloadRecord, err: unknown) => void): Promise<WorkloadRecord[]> {
  return Promise.all((await listWorkloads(workloadsDir)).map((r) => releaseEndedAddress(workloadsDir, r).catch((err: unknown) => {
    warn(r, err);
    return r;
  })));
}

/**
 * Records `a` as the service address of workload `name` (up, in this network namespace), for a
 * record written without it: a restore, or a migration's destination once it took the address.
 * The address is in this process's network namespace, or in the one at `netnsPath`
 * (`/run/netns/NAME`, `/proc/PID/ns/net`).
 */
export async function attachWorkloadAddress(workloadsDir: string, name: string, a: { address: string; prefix: number; dev: string }, opts: { netnsPath?: string } = {}): Promise<WorkloadRecord> {
  const rec = await readWorkload(workloadsDir, name);
  if (!rec) throw new FerryError('ERR_NO_WORKLOAD', `no workload named '${name}' to give the address ${a.address}`, { hint: 'the workload record is written by the restore; attach the address after it' });
  const netns = opts.netnsPath !== undefined ? await netnsId(opts.netnsPath) : await currentNetns();
  const updated: WorkloadRecord = { ...rec, address: { address: a.address, prefix: a.prefix, dev: a.dev, netns } };
  await writeWorkload(workloadsDir, updated);
  return updated;
}
