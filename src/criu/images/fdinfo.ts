/**
 * fdinfo-<files_id>.img: the descriptor table shared by the tasks whose ids name this
 * files_id: for each fd, the id of the open file in files.img and its kind.
 */
import { join } from 'node:path';
import { FdinfoEntrySchema } from '../gen/criu-images_pb.js';
import { readAllEntries } from './decode.js';
import { IMAGE_KINDS } from './magic.js';

export interface FdinfoRecord {
  fd: number;
  /** The open file's id in files.img. */
  id: number;
  /** CRIU's fd_types number (see fdTypeName). */
  type: number;
  /** FD_CLOEXEC (1) or 0. */
  flags: number;
}

export function fdinfoPath(dir: string, filesId: number): string {
  return join(dir, `fdinfo-${filesId}.img`);
}

/** Reads `fdinfo-<filesId>.img` in `dir`, sorted by fd; empty when there is none. */
export async function readFdinfo(dir: string, filesId: number): Promise<FdinfoRecord[]> {
  const entries = await readAllEntries(FdinfoEntrySchema, fdinfoPath(dir, filesId), IMAGE_KINDS.fdinfo);
  return entries.map((e) => ({ fd: e.fd, id: e.id, type: e.type, flags: e.flags })).sort((a, b) => a.fd - b.fd);
}
