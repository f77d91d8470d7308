/**
 * pstree.img: one entry per dumped process, parents before children. Pids are as seen in
 * the dumped pid namespace (a container's init is 1; the root's ppid is 0).
 */
import { join } from 'node:path';
import { PstreeEntrySchema } from '../gen/criu-images_pb.js';
import { decodeEntry } from './decode.js';
import { readImageEntries } from './framing.js';
import { IMAGE_KINDS } from './magic.js';

export const PSTREE_FILE = 'pstree.img';

export interface PstreeProcess {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  /** Thread ids, the main thread (== pid) included. */
  threads: number[];
}

/** Reads `pstree.img` in `dir`; an empty list when there is none. */
export async function readPstree(dir: string): Promise<PstreeProcess[]> {
  const file = join(dir, PSTREE_FILE);
  const entries = await readImageEntries(file, IMAGE_KINDS.pstree);
  return entries.map((entry) => {
    const e = decodeEntry(PstreeEntrySchema, entry, file);
    return { pid: e.pid, ppid: e.ppid, pgid: e.pgid, sid: e.sid, threads: [...e.threads] };
  });
}
