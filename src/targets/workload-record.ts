import { readdir, readFile, rename, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode } from '../util/errors.js';
import { statFields } from './process.js';

/** A program started by `ferry run`, remembered by name (`<store>/workloads/NAME/workload.json`). */
export interface WorkloadRecord {
  name: string;
  /** Host pid of the workload's root (pid 1 of its own pid namespace). */
  pid: number;
  /**
   * The kernel's start time of `pid` (clock ticks since boot, /proc/PID/stat field 22) when it was
   * recorded; -1 when the process was already gone. A pid alone may name another process by the
   * time anyone looks (pid_max wraps); pid and start time (and boot id) name one process.
   */
  startTime?: number;
  /** /proc/sys/kernel/random/boot_id when the pid was recorded (start times count from boot). */
  bootId?: string;
  command: string[];
  stdout: string;
  stderr: string;
  startedAt: string;
  /** Set when the current pid comes from a restore. */
  restoredFrom?: string;
  /** When the current pid was restored. */
  restoredAt?: string;
  /** When `ferry stop` ended it. */
  stoppedAt?: string;
  /** Its service address (`ferry run --ip`); absent in records of workloads without one. */
  address?: WorkloadAddress;
}

/** A workload's service address, where it was configured, and whether ferry removed it again. */
export interface WorkloadAddress {
  address: string;
  prefix: number;
  dev: string;
  /**
   * The network namespace it was added in (`readlink /proc/self/ns/net`, e.g. `net:[4026531840]`):
   * ferry removes it only from there, never from whatever namespace a later command runs in.
   */
  netns?: string;
  /** When ferry removed it (the workload ended); absent while the address is up. */
  removedAt?: string;
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

/** Every workload record in `dir`, by name (directories without a record are skipped). */
export async function listWorkloads(dir: string): Promise<WorkloadRecord[]> {
  const names = await readdir(dir).catch((err: unknown) => {
    if (errnoCode(err) === 'ENOENT') return [] as string[];
    throw err;
  });
  const out: WorkloadRecord[] = [];
  for (const n of names.sort()) {
    const rec = await readWorkload(dir, n).catch(() => undefined);
    if (rec) out.push(rec);
  }
  return out;
}

/** Who a pid is right now: its start time and state letter (Z = zombie), or undefined when gone. */
export interface ProcessIdentity { startTime: number; state: string }

export async function processIdentity(pid: number): Promise<ProcessIdentity | undefined> {
  try {
    const f = statFields(await readFile(`/proc/${pid}/stat`, 'utf8'));
    return { startTime: Number(f[19]), state: f[0] ?? '?' };
  } catch {
    return undefined;
  }
}

let bootIdCache: string | undefined;
export async function bootId(): Promise<string> {
  bootIdCache ??= (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => '')).trim();
  return bootIdCache;
}

/**
 * Writes the record with `pid`'s current start time and this boot's id, so that
 * workloadIsRunning can tell the process from a later one that got the same pid. Call it right
 * after the process was started or restored (the restore calls it with the new pid and
 * `restoredFrom`).
 */
export async function recordWorkload(dir: string, rec: Omit<WorkloadRecord, 'startTime' | 'bootId'>): Promise<WorkloadRecord> {
  const id = await processIdentity(rec.pid);
  const { startTime: _s, bootId: _b, ...rest } = rec as WorkloadRecord;
  const out: WorkloadRecord = { ...rest, startTime: id && id.state !== 'Z' ? id.startTime : -1, bootId: await bootId() };
  await writeWorkload(dir, out);
  return out;
}

/**
 * True while the recorded process runs: its pid exists, is not a zombie, and has the recorded
 * start time on this boot. Records written before start times were kept (no startTime) fall
 * back to "the pid exists".
 */
export async function workloadIsRunning(rec: WorkloadRecord): Promise<boolean> {
  const id = await processIdentity(rec.pid);
  if (!id || id.state === 'Z') return false;
  if (rec.startTime === undefined) return true;
  if (rec.startTime < 0 || id.startTime !== rec.startTime) return false;
  return rec.bootId === undefined || rec.bootId === '' || rec.bootId === await bootId();
}
