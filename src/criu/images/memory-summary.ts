/**
 * A task's memory in numbers: what its VMAs map (by kind), what the pagemap put in the
 * images, and the largest mappings with their backing files.
 */
import type { MappingSummary, TaskMemorySummary } from './inspect-types.js';
import {
  MAP_GROWSDOWN, MAP_SHARED, PROT_EXEC, PROT_READ, PROT_WRITE,
  VMA_ANON_PRIVATE, VMA_ANON_SHARED, VMA_AREA_AIORING, VMA_AREA_GUARD, VMA_AREA_HEAP, VMA_AREA_MEMFD,
  VMA_AREA_SHSTK, VMA_AREA_SOCKET, VMA_AREA_STACK, VMA_AREA_SYSVIPC, VMA_AREA_UPROBES, VMA_AREA_VDSO,
  VMA_AREA_VSYSCALL, VMA_AREA_VVAR, VMA_FILE_PRIVATE, VMA_FILE_SHARED,
  type Mm, type Vma,
} from './mm.js';
import { PAGE_SIZE, PE_LAZY, PE_PARENT, PE_PRESENT, type Pagemap } from './pagemap.js';

/** The path of the file behind a file or memfd VMA, if it can be found. */
export type VmaFileResolver = (vma: Vma) => string | undefined;

const KINDS: readonly [number, string][] = [
  [VMA_AREA_HEAP, 'heap'], [VMA_AREA_VDSO, 'vdso'], [VMA_AREA_VVAR, 'vvar'],
  [VMA_AREA_VSYSCALL, 'vsyscall'], [VMA_AREA_SYSVIPC, 'sysvipc'], [VMA_AREA_SOCKET, 'socket'],
  [VMA_AREA_AIORING, 'aio'], [VMA_AREA_MEMFD, 'memfd'], [VMA_AREA_SHSTK, 'shadow-stack'], [VMA_AREA_UPROBES, 'uprobes'],
];

export const hexAddress = (v: bigint): string => `0x${v.toString(16)}`;

export function protText(prot: number): string {
  return `${prot & PROT_READ ? 'r' : '-'}${prot & PROT_WRITE ? 'w' : '-'}${prot & PROT_EXEC ? 'x' : '-'}`;
}

const isShared = (v: Vma): boolean => (v.flags & MAP_SHARED) !== 0 || (v.status & (VMA_ANON_SHARED | VMA_FILE_SHARED)) !== 0;
const isFile = (v: Vma): boolean => (v.status & (VMA_FILE_PRIVATE | VMA_FILE_SHARED)) !== 0;
const isAnon = (v: Vma): boolean => (v.status & (VMA_ANON_PRIVATE | VMA_ANON_SHARED)) !== 0;

/**
 * The main stack: CRIU does not mark it VMA_AREA_STACK in dumps; it is the MAP_GROWSDOWN
 * mapping, or the one holding mm_start_stack.
 */
function isStack(v: Vma, mm: Mm): boolean {
  return (v.status & VMA_AREA_STACK) !== 0 || (v.flags & MAP_GROWSDOWN) !== 0
    || (mm.start_stack >= v.start && mm.start_stack < v.end);
}

export function vmaFlags(v: Vma, mm: Mm): string[] {
  const flags = [isShared(v) ? 'shared' : 'private'];
  if (isAnon(v)) flags.push('anon');
  if (isFile(v)) flags.push('file');
  if (isStack(v, mm)) flags.push('stack');
  for (const [bit, name] of KINDS) if ((v.status & bit) !== 0) flags.push(name);
  return flags;
}

function mapping(v: Vma, mm: Mm, resolve: VmaFileResolver): MappingSummary {
  const m: MappingSummary = {
    start: hexAddress(v.start), end: hexAddress(v.end), size: Number(v.end - v.start), prot: protText(v.prot), flags: vmaFlags(v, mm),
  };
  const file = isFile(v) || (v.status & VMA_AREA_MEMFD) !== 0 ? resolve(v) : undefined;
  if (file !== undefined) m.file = file;
  return m;
}

export function pageCounts(pagemap: Pagemap): NonNullable<TaskMemorySummary['pages']> {
  let present = 0;
  let lazy = 0;
  let inParent = 0;
  for (const e of pagemap.entries) {
    if ((e.flags & PE_PRESENT) !== 0) present += e.nrPages;
    else if ((e.flags & PE_PARENT) !== 0) inParent += e.nrPages;
    else if ((e.flags & PE_LAZY) !== 0) lazy += e.nrPages;
  }
  return { present, presentBytes: present * PAGE_SIZE, lazy, inParent, pagesFile: `pages-${pagemap.pagesId}.img` };
}

/** The memory summary of task `pid` from its mm and (when dumped) pagemap. */
export function summariseMemory(
  pid: number, mm: Mm, pagemap: Pagemap | undefined, resolve: VmaFileResolver, largest: number,
): TaskMemorySummary {
  const vmas = mm.vmas.filter((v) => (v.status & VMA_AREA_GUARD) === 0 && v.end > v.start);
  const sum = (pick: (v: Vma) => boolean): number => vmas.filter(pick).reduce((n, v) => n + Number(v.end - v.start), 0);
  const out: TaskMemorySummary = {
    pid,
    mappedBytes: sum(() => true),
    anonPrivateBytes: sum((v) => (v.status & VMA_ANON_PRIVATE) !== 0),
    fileBytes: sum(isFile),
    sharedBytes: sum(isShared),
    stackBytes: sum((v) => isStack(v, mm)),
    heapBytes: sum((v) => (v.status & VMA_AREA_HEAP) !== 0),
    vmaCount: vmas.length,
    largestMappings: [...vmas]
      .sort((a, b) => Number((b.end - b.start) - (a.end - a.start)) || Number(a.start - b.start))
      .slice(0, Math.max(0, largest))
      .map((v) => mapping(v, mm, resolve)),
  };
  if (pagemap !== undefined) out.pages = pageCounts(pagemap);
  return out;
}
