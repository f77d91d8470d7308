import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readDumpStats } from '../criu/images/stats.js';
import { HASH_ALGORITHM, type FileSums } from './checksums.js';
import type { SnapshotManifest } from './manifest.js';
import type { PendingSnapshot } from './store.js';

/** What a checkpoint (of a process or a container) knows once CRIU has written the images. */
export interface SealInput<T extends SnapshotManifest['target']> {
  pending: PendingSnapshot;
  /** Where CRIU wrote dump.log and stats-dump. */
  workDir: string;
  /** When the checkpoint started (Date.now()). */
  started: number;
  criuMs: number;
  criuVersion: string;
  name: string | undefined;
  target: T;
  options: SnapshotManifest['options'];
  /** The host that took it (targets/host.ts hostFacts). */
  host: SnapshotManifest['host'];
  /** A runtime's own checkpoint may leave no dump.log/stats-dump in ferry's work dir. */
  logsOptional?: boolean;
  /** Checksums the images (and whatever else the snapshot records about them). */
  images: () => Promise<{ files: FileSums; parent?: string | undefined; dedup?: SnapshotManifest['dedup'] | undefined; logicalBytes?: number | undefined }>;
}

/**
 * The end every checkpoint shares: CRIU's log and stats copied in, the images checksummed, the
 * manifest written and the snapshot committed (renamed into place). Returns the manifest.
 */
export async function sealSnapshot<T extends SnapshotManifest['target']>(i: SealInput<T>): Promise<{ manifest: SnapshotManifest & { target: T }; dir: string; checksumMs: number }> {
  const { pending } = i;
  for (const f of ['dump.log', 'stats-dump']) {
    const copied = copyFile(join(i.workDir, f), join(pending.dir, f));
    await (i.logsOptional ? copied.catch(() => undefined) : copied);
  }
  const sumStarted = Date.now();
  const { files, ...about } = await i.images();
  const checksumMs = Date.now() - sumStarted;
  const stats = readDumpStats(pending.dir);
  const manifest: SnapshotManifest & { target: T } = {
    format: 1,
    id: pending.id,
    name: i.name,
    parent: about.parent,
    ...(about.dedup ? { dedup: about.dedup } : {}),
    ...(about.logicalBytes !== undefined ? { logicalBytes: about.logicalBytes } : {}),
    tier: pending.tier,
    createdAt: new Date().toISOString(),
    target: i.target,
    host: i.host,
    criu: { version: i.criuVersion },
    options: i.options,
    stats: await (i.logsOptional ? stats.catch(() => undefined) : stats),
    timings: { totalMs: 0, criuMs: i.criuMs, checksumMs },
    bytes: Object.values(files).reduce((a, f) => a + f.size, 0),
    algorithm: HASH_ALGORITHM,
    files,
  };
  manifest.timings.totalMs = Date.now() - i.started;
  const dir = await pending.commit(manifest);
  return { manifest, dir, checksumMs };
}
