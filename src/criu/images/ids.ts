/**
 * ids-N.img: the kernel-object ids of one task (N = pid): which mm, files table, fs and
 * signal handlers it shares, and its namespaces. The same shape as inventory's root_ids.
 * Ids are CRIU's own small numbers, equal for tasks that share the object.
 */
import { join } from 'node:path';
import { TaskKobjIdsSchema } from '../gen/criu-images_pb.js';
import { readSingleEntry } from './decode.js';
import { rootIdsFrom, type RootIds } from './inventory.js';
import { IMAGE_KINDS } from './magic.js';

export type TaskIds = RootIds;

export function idsPath(dir: string, pid: number): string {
  return join(dir, `ids-${pid}.img`);
}

/** Reads `ids-<pid>.img` in `dir`; undefined when there is none. */
export async function readTaskIds(dir: string, pid: number): Promise<TaskIds | undefined> {
  const ids = await readSingleEntry(TaskKobjIdsSchema, idsPath(dir, pid), IMAGE_KINDS.ids);
  return ids === undefined ? undefined : rootIdsFrom(ids);
}
