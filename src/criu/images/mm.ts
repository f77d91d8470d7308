/**
 * mm-N.img: a process's address space layout (N = pid): code/data/brk/stack/arguments/
 * environment boundaries, the executable's file id, and every VMA. Addresses stay bigints
 * here (they are u64); reports turn them into hex strings.
 */
import { join } from 'node:path';
import { MmEntrySchema } from '../gen/criu-images_pb.js';
import { readSingleEntry, u64ToNumber } from './decode.js';
import { IMAGE_KINDS } from './magic.js';

/** VMA status bits (criu/include/image.h). */
export const VMA_AREA_REGULAR = 1 << 0;
export const VMA_AREA_STACK = 1 << 1;
export const VMA_AREA_VSYSCALL = 1 << 2;
export const VMA_AREA_VDSO = 1 << 3;
export const VMA_AREA_HEAP = 1 << 5;
export const VMA_FILE_PRIVATE = 1 << 6;
export const VMA_FILE_SHARED = 1 << 7;
export const VMA_ANON_SHARED = 1 << 8;
export const VMA_ANON_PRIVATE = 1 << 9;
export const VMA_AREA_SYSVIPC = 1 << 10;
export const VMA_AREA_SOCKET = 1 << 11;
export const VMA_AREA_VVAR = 1 << 12;
export const VMA_AREA_AIORING = 1 << 13;
export const VMA_AREA_MEMFD = 1 << 14;
export const VMA_AREA_SHSTK = 1 << 15;
/** A synthetic entry for a MADV_GUARD_INSTALL range, not a real mapping. */
export const VMA_AREA_GUARD = 1 << 16;
export const VMA_AREA_UPROBES = 1 << 17;

/** mmap(2) bits as they appear in vma_entry.prot and .flags. */
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const PROT_EXEC = 4;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;
export const MAP_GROWSDOWN = 0x100;

export interface Vma {
  start: bigint;
  end: bigint;
  pgoff: bigint;
  /** File id (files.img) of a file or memfd mapping; shared-memory id of an anonymous shared one. */
  shmid: number;
  prot: number;
  flags: number;
  status: number;
}

export interface Mm {
  start_code: bigint;
  end_code: bigint;
  start_data: bigint;
  end_data: bigint;
  start_stack: bigint;
  start_brk: bigint;
  brk: bigint;
  arg_start: bigint;
  arg_end: bigint;
  env_start: bigint;
  env_end: bigint;
  /** The executable's file id in files.img. */
  exe_file_id: number;
  vmas: Vma[];
}

export function mmPath(dir: string, pid: number): string {
  return join(dir, `mm-${pid}.img`);
}

/** Reads `mm-<pid>.img` in `dir`; undefined when there is none (a zombie has none). */
export async function readMm(dir: string, pid: number): Promise<Mm | undefined> {
  const file = mmPath(dir, pid);
  const mm = await readSingleEntry(MmEntrySchema, file, IMAGE_KINDS.mm);
  if (mm === undefined) return undefined;
  return {
    start_code: mm.mmStartCode,
    end_code: mm.mmEndCode,
    start_data: mm.mmStartData,
    end_data: mm.mmEndData,
    start_stack: mm.mmStartStack,
    start_brk: mm.mmStartBrk,
    brk: mm.mmBrk,
    arg_start: mm.mmArgStart,
    arg_end: mm.mmArgEnd,
    env_start: mm.mmEnvStart,
    env_end: mm.mmEnvEnd,
    exe_file_id: mm.exeFileId,
    vmas: mm.vmas.map((v) => ({
      start: v.start,
      end: v.end,
      pgoff: v.pgoff,
      shmid: u64ToNumber(v.shmid, 'vma shmid', file),
      prot: v.prot,
      flags: v.flags,
      status: v.status,
    })),
  };
}
