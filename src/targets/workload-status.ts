import { workloadIsRunning, type WorkloadRecord } from './workload-record.js';

/**
 * What became of a workload: `running` (its recorded process, same pid and start time),
 * `stopped` (ended by `ferry stop`), `exited` (gone otherwise: it ended, was killed, or a
 * checkpoint without --leave-running stopped it — `lastSnapshot` then names the newest snapshot
 * taken of this incarnation). A workload that is not running keeps its service address until
 * ferry removes it: callers that list workloads first pass each record through
 * releaseEndedAddress (workload-address.ts), as `ferry ps` does.
 */
export type WorkloadState = 'running' | 'stopped' | 'exited';

export interface WorkloadStatus {
  name: string;
  pid: number;
  state: WorkloadState;
  command: string[];
  startedAt: string;
  /** The snapshot the current pid was restored from, and when. */
  restoredFrom: string | null;
  restoredAt: string | null;
  stoppedAt: string | null;
  /** The newest snapshot of this workload taken since its current process started. */
  lastSnapshot: string | null;
  stdout: string;
  stderr: string;
  /**
   * Its service address (`ferry run --ip`): `up` while ferry has it configured, `removed` once the
   * workload ended and ferry removed it (see releaseEndedAddress); null without one.
   */
  address: { address: string; prefix: number; dev: string; state: 'up' | 'removed'; removedAt: string | null } | null;
}

/** What workloadStatus needs to know of a snapshot (a manifest's id, createdAt and target.workload). */
export interface SnapshotOfWorkload { id: string; createdAt: string; workload: string | undefined }

export async function workloadStatus(rec: WorkloadRecord, snapshots: readonly SnapshotOfWorkload[] = []): Promise<WorkloadStatus> {
  const running = await workloadIsRunning(rec);
  const since = rec.restoredAt ?? rec.startedAt;
  const last = snapshots
    .filter((m) => m.workload === rec.name && m.createdAt >= since)
    .sort((a, b) => a.createdAt.localeCompare(b.createdAt))
    .at(-1);
  return {
    name: rec.name,
    pid: rec.pid,
    state: running ? 'running' : rec.stoppedAt !== undefined ? 'stopped' : 'exited',
    command: rec.command,
    startedAt: rec.startedAt,
    restoredFrom: rec.restoredFrom ?? null,
    restoredAt: rec.restoredAt ?? null,
    stoppedAt: rec.stoppedAt ?? null,
    lastSnapshot: last?.id ?? null,
    stdout: rec.stdout,
    stderr: rec.stderr,
    address: rec.address
      ? { address: rec.address.address, prefix: rec.address.prefix, dev: rec.address.dev, state: rec.address.removedAt ? 'removed' : 'up', removedAt: rec.address.removedAt ?? null }
      : null,
  };
}
