import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../store/layout.js';
import { SNAPSHOT_ID_PATTERN } from '../store/manifest.js';

/**
 * A standby's record of the replicas it holds (`<store>/replicas/<snapshot>.json`). A replica's
 * snapshot arrives as a migration in replica mode (sealed, kept, not restored); the source then
 * confirms it with this record — so a replica is *complete* only once its images are sealed here
 * and the source said which workload and when it was taken. `ferry failover` reads these.
 */
export const ReplicaRecordSchema = z.strictObject({
  /** The snapshot in this (the standby's) store. */
  snapshot: z.string().regex(SNAPSHOT_ID_PATTERN),
  /** The workload's name, or container:ID. */
  workload: z.string().min(1).max(200),
  /** When the source took it (its manifest's createdAt): what a failover to it loses is the time since. */
  takenAt: z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'not a date'),
  /** Where it came from: the source's hostname, its agent's URL (when it knows it), its schedule. */
  from: z.strictObject({
    host: z.string().max(255),
    url: z.string().max(2048).optional(),
    schedule: z.string().max(64).optional(),
    snapshot: z.string().regex(SNAPSHOT_ID_PATTERN).optional(),
  }),
  receivedAt: z.string().optional(),
});
export type ReplicaRecord = z.infer<typeof ReplicaRecordSchema>;

export const replicasDir = (storeRoot: string): string => join(storeRoot, 'replicas');

export async function writeReplica(storeRoot: string, r: ReplicaRecord): Promise<void> {
  await mkdir(replicasDir(storeRoot), { recursive: true, mode: 0o700 });
  await writeFileAtomic(join(replicasDir(storeRoot), `${r.snapshot}.json`), JSON.stringify(r, null, 2));
}

export async function forgetReplica(storeRoot: string, snapshot: string): Promise<void> {
  await rm(join(replicasDir(storeRoot), `${snapshot}.json`), { force: true });
}

/** Every readable record, newest taken first (an unreadable one is skipped: its snapshot stays in `snapshots ls`). */
export async function listReplicas(storeRoot: string): Promise<ReplicaRecord[]> {
  const dir = replicasDir(storeRoot);
  const out: ReplicaRecord[] = [];
  for (const n of await readdir(dir).catch(() => [] as string[])) {
    if (!n.endsWith('.json') || n.startsWith('.')) continue;
    try {
      const r = ReplicaRecordSchema.safeParse(JSON.parse(await readFile(join(dir, n), 'utf8')));
      if (r.success && `${r.data.snapshot}.json` === n) out.push(r.data);
    } catch { /* a damaged record: skipped */ }
  }
  return out.sort((a, b) => b.takenAt.localeCompare(a.takenAt));
}
