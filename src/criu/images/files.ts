/**
 * files.img: every open file of the dumped tree, once per open file description (CRIU has
 * kept all kinds here since 3.x; the per-kind images reg-files.img, inetsk.img, ... are
 * legacy and not read). Each entry names its kind and carries the matching part (reg, isk,
 * usk, pipe, ...). fdinfo-N.img maps fds to these ids.
 */
import { join } from 'node:path';
import { FileEntrySchema, type FileEntry } from '../gen/criu-images_pb.js';
import { decodeEntry } from './decode.js';
import { imageFormatError, readImageEntries } from './framing.js';
import { IMAGE_KINDS } from './magic.js';

export const FILES_FILE = 'files.img';

/** CRIU's fd_types, by number, with ferry's short names. */
const FD_TYPES = {
  1: 'reg', 2: 'pipe', 3: 'fifo', 4: 'inet', 5: 'unix', 6: 'eventfd', 7: 'eventpoll', 8: 'inotify',
  9: 'signalfd', 10: 'packet', 11: 'tty', 12: 'fanotify', 13: 'netlink', 14: 'ns', 15: 'tun', 16: 'ext',
  17: 'timerfd', 18: 'memfd', 19: 'bpfmap', 20: 'pidfd',
} as const;

export type FdTypeName = (typeof FD_TYPES)[keyof typeof FD_TYPES];

/** ferry's name for a CRIU fd_types number; undefined for a kind ferry does not know. */
export function fdTypeName(type: number): FdTypeName | undefined {
  return (FD_TYPES as Readonly<Record<number, FdTypeName>>)[type];
}

export type { FileEntry };

/** Reads `files.img` in `dir`: the open files by id; empty when there is none. */
export async function readFiles(dir: string): Promise<Map<number, FileEntry>> {
  const file = join(dir, FILES_FILE);
  const out = new Map<number, FileEntry>();
  for (const entry of await readImageEntries(file, IMAGE_KINDS.files)) {
    const f = decodeEntry(FileEntrySchema, entry, file);
    if (out.has(f.id)) throw imageFormatError(file, `two files with id ${f.id}`, entry.offset);
    out.set(f.id, f);
  }
  return out;
}
