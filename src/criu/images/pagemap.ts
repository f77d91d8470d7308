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
    entries: rest.map((entry) => fastRun(entry.payload) ?? runFromEntry(decodeEntry(PagemapEntrySchema, entry, file), file, entry.offset)),
  };
}

/**
 * A pagemap entry decoded without reflection: its five fields are varints, and a chain of deduped
 * snapshots has pagemaps of tens of thousands of entries (the generic decoder costs ~4 µs each).
 * Returns undefined for anything unexpected (another field or wire type, a truncated varint, an
 * out-of-range value), and the generic decoder, with its precise errors, takes over.
 */
function fastRun(b: Uint8Array): PagemapRun | undefined {
  let pos = 0;
  let vaddr: bigint | undefined, compat: number | undefined, inParent: boolean | undefined, flags: number | undefined, nr: number | undefined;
  while (pos < b.length) {
    const tag = b[pos++]!;
    if ((tag & 7) !== 0 || tag > 0x28) return undefined;
    // varint, up to 10 bytes: low 28 bits as a number, the rest as a bigint only when present
    let lo = 0, shift = 0, hi = 0n, byte: number;
    do {
      if (pos >= b.length) return undefined;
      byte = b[pos++]!;
      if (shift < 28) lo |= (byte & 0x7f) << shift;
      else hi |= BigInt(byte & 0x7f) << BigInt(shift - 28);
      shift += 7;
    } while (byte & 0x80 && shift < 70);
    if (byte & 0x80) return undefined;
    const small = hi === 0n ? lo >>> 0 : undefined;
    switch (tag >> 3) {
      case 1: vaddr = (hi << 28n) | BigInt(lo >>> 0); break;
      case 2: if (small === undefined) return undefined; compat = small; break;
      case 3: inParent = small !== 0; break;
      case 4: if (small === undefined) return undefined; flags = small; break;
      case 5: { const n = hi === 0n ? lo >>> 0 : Number((hi << 28n) | BigInt(lo >>> 0)); if (!Number.isSafeInteger(n)) return undefined; nr = n; break; }
      default: return undefined;
    }
  }
  if (vaddr === undefined || compat === undefined) return undefined;
  let f = flags ?? 0;
  if (inParent) f |= PE_PARENT;
  else if (flags === undefined) f = PE_PRESENT;
  return { vaddr, nrPages: nr ?? compat, flags: f };
}

const MAX_SAFE_BIG = BigInt(Number.MAX_SAFE_INTEGER);

/** Appends a varint at `pos`, returns the new position (numbers below 2^53 stay numbers). */
function putVarint(out: Uint8Array, pos: number, v: bigint | number): number {
  if (typeof v === 'number' || v <= MAX_SAFE_BIG) {
    let x = Number(v);
    while (x >= 0x80) { out[pos++] = (x % 0x80) | 0x80; x = Math.floor(x / 0x80); }
    out[pos++] = x;
    return pos;
  }
  let x = v;
  while (x >= 0x80n) { out[pos++] = Number(x & 0x7fn) | 0x80; x >>= 7n; }
  out[pos++] = Number(x);
  return pos;
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
  // Encoded by hand (same bytes as the generic encoder, field order 1, 2, 4, 5): a deduped
  // snapshot's pagemap has tens of thousands of entries.
  const out = new Uint8Array(36);
  let pos = 0;
  out[pos++] = 0x08;
  pos = putVarint(out, pos, run.vaddr);
  out[pos++] = 0x10;
  out[pos++] = 0x00;
  out[pos++] = 0x20;
  pos = putVarint(out, pos, run.flags);
  out[pos++] = 0x28;
  pos = putVarint(out, pos, run.nrPages);
  return out.subarray(0, pos);
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
