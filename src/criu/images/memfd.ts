/**
 * memfd.img: one entry per memfd inode (name, size, the shared-memory id holding its data).
 * memfd entries in files.img point here by inode_id. The data is in pagemap-shmem-<shmid>.
 */
import { join } from 'node:path';
import { MemfdInodeEntrySchema } from '../gen/criu-images_pb.js';
import { readAllEntries, u64ToNumber } from './decode.js';
import { IMAGE_KINDS } from './magic.js';

export const MEMFD_FILE = 'memfd.img';

export interface MemfdInode {
  /** The name given to memfd_create(2), without the kernel's "memfd:" prefix. */
  name: string;
  size: number;
  shmid: number;
}

/** Reads `memfd.img` in `dir`, by inode id; empty when there is none. */
export async function readMemfdInodes(dir: string): Promise<Map<number, MemfdInode>> {
  const file = join(dir, MEMFD_FILE);
  const out = new Map<number, MemfdInode>();
  for (const e of await readAllEntries(MemfdInodeEntrySchema, file, IMAGE_KINDS.memfd)) {
    out.set(u64ToNumber(e.inodeId, 'inode_id', file), { name: e.name, size: u64ToNumber(e.size, 'size', file), shmid: e.shmid });
  }
  return out;
}
