/**
 * pagemap-N.img (and pagemap-shmem-N.img): which virtual pages a dump holds and where their
 * data is. The first entry is a head naming `pages-<pages_id>.img`; each following entry is a
 * run of pages. The pages file is the concatenation of the data of the PE_PRESENT runs, in
 * pagemap order (criu/pagemap.c, skip_pagemap_pages).
 *
 * Two layouts exist:
 *  - CRIU 4.2+: the page count is the uint64 field 5 (`nr_pages`); field 2 (`compat_nr_pages`)
 *    is written as 0;
 *  - CRIU <= 4.1: the page count is the uint32 field 2; there is no field 5.
 * Like CRIU, readers take field 5 when present, else field 2. Entries older still have no
 * `flags`: `in_parent` means PE_PARENT, anything else PE_PRESENT (init_compat_pagemap_entry).
 */
import { create, isFieldSet, toBinary } from '@bufbuild/protobuf';
import { join } from 'node:path';
import { PagemapEntrySchema, PagemapHeadSchema, type PagemapEntry as PagemapEntryMsg } from '../gen/criu-images_pb.js';
import { decodeEntry, u64ToNumber } from './decode.js';
import { imageFormatError, readImageEntries, writeImageFile, type ImageEntry } from './framing.js';
import { IMAGE_KINDS } from './magic.js';

/** Pages are in the parent snapshot. */
export const PE_PARENT = 1;
/** Pages may be restored lazily. */
export const PE_LAZY = 2;
/** Page data is in the pages file. */
export const PE_PRESENT = 4;

/** The page size of every architecture ferry runs on (x86-64, arm64 with 4K pages). */
export const PAGE_SIZE = 4096;

export interface PagemapRun {
  vaddr: bigint;
  nrPages: number;
  /** PE_PARENT | PE_LAZY | PE_PRESENT. */
  flags: number;
}

export interface Pagemap {
  /** The id N of the pages-N.img holding the PE_PRESENT data. */
  pagesId: number;
  entries: PagemapRun[];
}

export function pagemapPath(dir: string, pid: number): string {
  return join(dir, `pagemap-${pid}.img`);
}

export function pagesPath(dir: string, pagesId: number): string {
  return join(dir, `pages-${pagesId}.img`);
}

/** The run an entry describes, whichever CRIU line wrote it. */
export function runFromEntry(e: PagemapEntryMsg, file: string, offset?: number): PagemapRun {
  const nrPages = isFieldSet(e, PagemapEntrySchema.field.nrPages)
    ? u64ToNumber(e.nrPages, 'nr_pages', file, offset)
    : e.compatNrPages;
  let flags = e.flags; // 0 when unset
  if (isFieldSet(e, PagemapEntrySchema.field.inParent) && e.inParent) flags |= PE_PARENT;
  else if (!isFieldSet(e, PagemapEntrySchema.field.flags)) flags = PE_PRESENT;
  return { vaddr: e.vaddr, nrPages, flags };
}

/** Reads a pagemap image. A missing or empty file, or one without a head, is an error. */
export async function readPagemap(path: string): Promise<Pagemap> {
  const entries = await readImageEntries(path, IMAGE_KINDS.pagemap);
  return decodePagemap(entries, path);
}

export function decodePagemap(entries: readonly ImageEntry[], file: string): Pagemap {
  const [headEntry, ...rest] = entries;
  if (headEntry === undefined) throw imageFormatError(file, 'no pagemap head (the file is missing or empty)');
  const head = decodeEntry(PagemapHeadSchema, headEntry, file);
  return {
    pagesId: head.pagesId,
    entries: rest.map((entry) => runFromEntry(decodeEntry(PagemapEntrySchema, entry, file), file, entry.offset)),
  };
}

/** Where a PE_PRESENT run's data sits in pages-<pagesId>.img. */
export interface PresentRun extends PagemapRun {
  /** Index of the run in `Pagemap.entries`. */
  index: number;
  /** Byte offset of the run's first page in the pages file. */
  offset: number;
}

/**
 * The PE_PRESENT runs with their byte offsets in the pages file, and the size the pages file
 * must have. Runs without PE_PRESENT have no data there and do not advance the offset.
 */
export function presentRuns(entries: readonly PagemapRun[], pageSize = PAGE_SIZE): { runs: PresentRun[]; totalBytes: number } {
  const runs: PresentRun[] = [];
  let offset = 0;
  entries.forEach((e, index) => {
    if ((e.flags & PE_PRESENT) === 0) return;
    runs.push({ ...e, index, offset });
    offset += e.nrPages * pageSize;
  });
  return { runs, totalBytes: offset };
}

/**
 * The byte offset in the pages file of the data at `vaddr`, or undefined when no PE_PRESENT
 * run covers it (not dumped, a zero page, or in the parent snapshot).
 */
export function pagesFileOffset(entries: readonly PagemapRun[], vaddr: bigint, pageSize = PAGE_SIZE): number | undefined {
  for (const run of presentRuns(entries, pageSize).runs) {
    const end = run.vaddr + BigInt(run.nrPages) * BigInt(pageSize);
    if (vaddr >= run.vaddr && vaddr < end) return run.offset + Number(vaddr - run.vaddr);
  }
  return undefined;
}

const U64_MAX = (1n << 64n) - 1n;

/**
 * One entry encoded in CRIU 4.2's layout: nr_pages in field 5, compat_nr_pages 0, flags set.
 * `file` names the image being written, in errors.
 */
export function encodePagemapRun(run: PagemapRun, file = '(pagemap being written)'): Uint8Array {
  if (run.vaddr < 0n || run.vaddr > U64_MAX) {
    throw imageFormatError(file, `vaddr must be a uint64, got ${run.vaddr}`);
  }
  if (!Number.isSafeInteger(run.nrPages) || run.nrPages < 0) {
    throw imageFormatError(file, `nrPages must be a non-negative integer, got ${run.nrPages}`);
  }
  if (!Number.isInteger(run.flags) || run.flags < 0 || run.flags > 0xffffffff) {
    throw imageFormatError(file, `flags must be a uint32, got ${run.flags}`);
  }
  return toBinary(PagemapEntrySchema, create(PagemapEntrySchema, {
    vaddr: run.vaddr,
    compatNrPages: 0,
    flags: run.flags,
    nrPages: BigInt(run.nrPages),
  }));
}

/**
 * Writes a pagemap image in CRIU 4.2's layout (readable by CRIU 4.2+, not by 4.1). The file
 * is replaced atomically.
 */
export async function writePagemap(path: string, head: { pagesId: number }, entries: readonly PagemapRun[]): Promise<void> {
  if (!Number.isInteger(head.pagesId) || head.pagesId < 0 || head.pagesId > 0xffffffff) {
    throw imageFormatError(path, `pagesId must be a uint32, got ${head.pagesId}`);
  }
  const payloads = [
    toBinary(PagemapHeadSchema, create(PagemapHeadSchema, { pagesId: head.pagesId })),
    ...entries.map((run) => encodePagemapRun(run, path)),
  ];
  await writeImageFile(path, IMAGE_KINDS.pagemap, payloads);
}
