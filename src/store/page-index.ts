/**
 * The page index (`ferry-pages.idx`) and the pure logic over pagemaps that page dedup, folds and
 * (later) incremental migration share: its codec, the address → page lookup over a pagemap's
 * runs, and the diff of one pagemap's pages against another snapshot's.
 *
 * The index holds, for every pagemap of a snapshot, one XXH3-128 per logical page (the pages it
 * holds plus the ones it takes from its parent; all-zero for a page it does not hold itself), so
 * a child compares against its parent's full content without walking the chain.
 *
 *   file    := MAGIC "FERRYPI1" | u32 sections | { section }
 *   section := u32 pagemap id | u32 pages | pages × 16-byte hash
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PAGE_SIZE, PE_PARENT, PE_PRESENT, type PagemapRun } from '../criu/images/pagemap.js';
import { FerryError } from '../util/errors.js';

export const PAGE_INDEX = 'ferry-pages.idx';
const MAGIC = Buffer.from('FERRYPI1');
/** Bytes of one page hash. */
export const HASH_BYTES = 16;

/** The logical page hashes of one pagemap-<id>.img, in pagemap entry order. */
export interface IndexSection {
  id: number;
  hashes: Buffer;
}

export function encodeIndex(sections: readonly IndexSection[]): Buffer {
  const head = Buffer.alloc(12);
  MAGIC.copy(head, 0);
  head.writeUInt32LE(sections.length, 8);
  const parts: Buffer[] = [head];
  for (const s of sections) {
    const h = Buffer.alloc(8);
    h.writeUInt32LE(s.id, 0);
    h.writeUInt32LE(s.hashes.length / HASH_BYTES, 4);
    parts.push(h, s.hashes);
  }
  return Buffer.concat(parts);
}

/** Decodes a page index; a damaged one is ERR_SNAPSHOT_CORRUPT naming `file`. */
export function decodeIndex(buf: Buffer, file: string): Map<number, Buffer> {
  const bad = (what: string) => new FerryError('ERR_SNAPSHOT_CORRUPT', `page index ${file}: ${what}`, {
    hint: 'the snapshot\'s page index is damaged; take a new snapshot with --no-dedup',
  });
  if (buf.length < 12 || !buf.subarray(0, 8).equals(MAGIC)) throw bad('not a ferry page index');
  const n = buf.readUInt32LE(8);
  const out = new Map<number, Buffer>();
  let pos = 12;
  for (let i = 0; i < n; i++) {
    if (buf.length - pos < 8) throw bad('truncated section header');
    const id = buf.readUInt32LE(pos);
    const pages = buf.readUInt32LE(pos + 4);
    pos += 8;
    if (buf.length - pos < pages * HASH_BYTES) throw bad('truncated section');
    if (out.has(id)) throw bad(`pagemap ${id} appears twice`);
    out.set(id, buf.subarray(pos, pos + pages * HASH_BYTES));
    pos += pages * HASH_BYTES;
  }
  if (pos !== buf.length) throw bad(`${buf.length - pos} bytes after the last section`);
  return out;
}

/** The page index of a snapshot directory; undefined when it has none. */
export async function readIndex(dir: string): Promise<Map<number, Buffer> | undefined> {
  let buf: Buffer;
  try {
    buf = await readFile(join(dir, PAGE_INDEX));
  } catch {
    return undefined;
  }
  return decodeIndex(buf, join(dir, PAGE_INDEX));
}

const PAGEMAP_RE = /^pagemap-(\d+)\.img$/;

/** The pagemap ids among file names (pagemap-<id>.img; not the shmem ones), ascending. */
export function pagemapIdsOf(names: Iterable<string>): number[] {
  return [...names].map((n) => PAGEMAP_RE.exec(n)).filter((m) => m !== null).map((m) => Number(m[1])).sort((a, b) => a - b);
}

/** The pagemap ids of a snapshot directory. */
export async function pagemapIds(dir: string): Promise<number[]> {
  return pagemapIdsOf(await readdir(dir));
}

export function totalPages(entries: readonly PagemapRun[]): number {
  return entries.reduce((a, e) => a + e.nrPages, 0);
}

/** The page number (vaddr / 4096) of an address. User addresses are below 2^57: exact in a double. */
export function pfnOf(vaddr: bigint): number {
  return Number(vaddr / BigInt(PAGE_SIZE));
}

/** One run of a pagemap, by page number: [start, end), its first logical page, its data's offset. */
export interface PageRun {
  start: number;
  end: number;
  flags: number;
  /** Index of its first page among the pagemap's logical pages (entry order). */
  first: number;
  /** Byte offset of its data in the pages image (PE_PRESENT runs), else -1. */
  offset: number;
}

/**
 * A pagemap's runs sorted by address, to find the run holding a page. Lookups in ascending order
 * (the common case: walking another pagemap) move a cursor; any other falls back to a binary search.
 */
export class PageRuns {
  readonly runs: PageRun[] = [];
  private cursor = 0;

  constructor(entries: readonly PagemapRun[]) {
    let first = 0, offset = 0;
    for (const e of entries) {
      const start = pfnOf(e.vaddr);
      const present = (e.flags & PE_PRESENT) !== 0;
      this.runs.push({ start, end: start + e.nrPages, flags: e.flags, first, offset: present ? offset : -1 });
      first += e.nrPages;
      if (present) offset += e.nrPages * PAGE_SIZE;
    }
    this.runs.sort((x, y) => x.start - y.start);
  }

  /** The run holding page `pfn`, or undefined. */
  find(pfn: number): PageRun | undefined {
    const runs = this.runs;
    let c = this.cursor;
    if (c < runs.length && runs[c]!.start <= pfn) {
      while (c < runs.length && runs[c]!.end <= pfn) c++;
      this.cursor = c;
      const r = runs[c];
      return r && pfn >= r.start ? r : undefined;
    }
    let lo = 0, hi = runs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = runs[mid]!;
      if (pfn < r.start) hi = mid - 1;
      else if (pfn >= r.end) lo = mid + 1;
      else { this.cursor = mid; return r; }
    }
    this.cursor = lo;
    return undefined;
  }
}

/** The hash of the page at a page number among a pagemap's logical pages. */
export class HashAt {
  private readonly runs: PageRuns;
  constructor(entries: readonly PagemapRun[], readonly hashes: Buffer) {
    this.runs = new PageRuns(entries);
  }
  /** The index in `hashes` of page number `pfn` (vaddr / 4096), or -1 when there is no such page. */
  get(pfn: number): number {
    const r = this.runs.find(pfn);
    if (!r) return -1;
    const page = r.first + (pfn - r.start);
    return (page + 1) * HASH_BYTES <= this.hashes.length ? page : -1;
  }
}

/** The logical page hashes of a pagemap: present pages take their block hash (in order), others zero. */
export function logicalHashes(entries: readonly PagemapRun[], blockHashes: Buffer): Buffer {
  const logical = Buffer.alloc(totalPages(entries) * HASH_BYTES);
  let src = 0, dst = 0;
  for (const e of entries) {
    if (e.flags & PE_PRESENT) {
      blockHashes.copy(logical, dst * HASH_BYTES, src * HASH_BYTES, (src + e.nrPages) * HASH_BYTES);
      src += e.nrPages;
    }
    dst += e.nrPages;
  }
  return logical;
}

/** The outcome of comparing one pagemap's present pages with another snapshot's pages. */
export interface PagemapDiff {
  /** The new pagemap: unchanged runs as PE_PARENT, the rest as they were. */
  out: PagemapRun[];
  /** Ranges of present pages (numbered in the old pages image) that stay. */
  keep: { from: number; pages: number }[];
  /** Block hashes of the pages that stay, in order. */
  kept: Buffer;
  /** Present pages compared. */
  pages: number;
  /** Of those, pages equal at the same address in the base. */
  inParent: number;
}

/**
 * Compares the present pages of `entries` (logical hashes `logical`) with the pages at the same
 * addresses of a base snapshot (its pagemap `baseMap` and page index `baseIndex`). Undefined
 * when no page is unchanged, when `entries` already reads from a parent, or when the base's
 * index does not fit its pagemap. A page the base does not hold itself has an all-zero hash,
 * which no content hashes to, so it never counts as unchanged.
 */
export function diffPagemap(entries: readonly PagemapRun[], logical: Buffer, baseMap: readonly PagemapRun[], baseIndex: Buffer): PagemapDiff | undefined {
  if (totalPages(baseMap) * HASH_BYTES !== baseIndex.length || entries.some((e) => e.flags & PE_PARENT)) return undefined;
  const at = new HashAt(baseMap, baseIndex);
  // Hashes compared as four u32 words in JS (a native compare per page costs more than the work).
  const bw = u32View(baseIndex), lw = u32View(logical);
  const out: PagemapRun[] = [];
  const keep: PagemapDiff['keep'] = [];
  const kept: Buffer[] = [];
  let present = 0, page = 0, pages = 0, inParent = 0;
  for (const e of entries) {
    if (!(e.flags & PE_PRESENT)) { out.push(e); page += e.nrPages; continue; }
    let runStart = 0, runSame: boolean | undefined;
    const flush = (end: number) => {
      if (end <= runStart || runSame === undefined) return;
      const vaddr = e.vaddr + BigInt(runStart * PAGE_SIZE);
      if (runSame) {
        out.push({ vaddr, nrPages: end - runStart, flags: PE_PARENT });
      } else {
        out.push({ vaddr, nrPages: end - runStart, flags: e.flags });
        keep.push({ from: present + runStart, pages: end - runStart });
        kept.push(logical.subarray((page + runStart) * HASH_BYTES, (page + end) * HASH_BYTES));
      }
    };
    const pfn = pfnOf(e.vaddr);
    for (let k = 0; k < e.nrPages; k++) {
      const p = at.get(pfn + k);
      const x = p * 4, y = (page + k) * 4;
      const same = p >= 0 && bw[x] === lw[y] && bw[x + 1] === lw[y + 1] && bw[x + 2] === lw[y + 2] && bw[x + 3] === lw[y + 3];
      if (same) inParent++;
      if (same !== runSame) { flush(k); runStart = k; runSame = same; }
    }
    flush(e.nrPages);
    pages += e.nrPages;
    present += e.nrPages;
    page += e.nrPages;
  }
  if (inParent === 0) return undefined;
  return { out, keep, kept: Buffer.concat(kept), pages, inParent };
}

/**
 * Checks the block hashes of a pages image against the page index: `blocks` (16 bytes per page
 * present in `entries`, in order) must equal the index's hash of the same logical page. Returns
 * undefined when they all match, else what differs: the address of the first page that does, or
 * that the counts disagree.
 */
export function indexMismatch(entries: readonly PagemapRun[], logical: Buffer, blocks: Buffer): { vaddr: bigint } | { count: true } | undefined {
  let page = 0, present = 0;
  for (const e of entries) {
    if (e.flags & PE_PRESENT) {
      for (let k = 0; k < e.nrPages; k++) {
        const l = (page + k) * HASH_BYTES, b = (present + k) * HASH_BYTES;
        if (l + HASH_BYTES > logical.length || b + HASH_BYTES > blocks.length
          || blocks.compare(logical, l, l + HASH_BYTES, b, b + HASH_BYTES) !== 0) {
          return { vaddr: e.vaddr + BigInt(k * PAGE_SIZE) };
        }
      }
      present += e.nrPages;
    }
    page += e.nrPages;
  }
  return present * HASH_BYTES === blocks.length ? undefined : { count: true };
}

/** A Uint32Array over a buffer's bytes (copied when the buffer is not 4-byte aligned). */
function u32View(b: Buffer): Uint32Array {
  const src = b.byteOffset % 4 === 0 ? b : Buffer.from(b);
  return new Uint32Array(src.buffer, src.byteOffset, src.length >> 2);
}
