/**
 * Content-addressed page dedup into CRIU-native image chains.
 *
 * CRIU dumps every page (no soft-dirty here, so no incremental dump). Afterwards ferry hashes
 * each 4 KiB page (the same pass that checksums the images) and compares it with the hash of
 * the page at the same virtual address in the parent snapshot, read from the parent's page
 * index (`ferry-pages.idx`, written with every snapshot). Runs of unchanged pages become
 * PE_PARENT pagemap entries, only changed pages stay in the pages image, and a relative
 * `parent -> ../<parentId>` link lets CRIU itself read the rest from the parent at restore
 * (criu/pagemap.c follows `parent` for PE_PARENT runs, recursively). No reassembly step.
 *
 * The page index holds, for every pagemap of the snapshot, one XXH3-128 per logical page (the
 * pages it holds plus the ones it takes from its parent), so a child compares against its
 * parent's full content without walking the chain.
 */
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { readdir, readFile, rename, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PAGE_SIZE, PE_PARENT, PE_PRESENT, readPagemap, writePagemap, type PagemapRun } from '../criu/images/pagemap.js';
import { FerryError } from '../util/errors.js';
import { BLOCK, checksumDirWithBlocks, digestOfBlocks, hashFile, type FileSums } from './checksums.js';

export const PAGE_INDEX = 'ferry-pages.idx';
export const PARENT_LINK = 'parent';
const MAGIC = Buffer.from('FERRYPI1');

/** The logical page hashes of one pagemap-<id>.img, in pagemap entry order. */
export interface IndexSection {
  id: number;
  hashes: Buffer;
}

export interface DedupStats {
  parent: string;
  /** Pages the dump held. */
  pages: number;
  /** Of those, pages now read from the parent chain. */
  inParent: number;
  /** Bytes no longer stored in this snapshot. */
  savedBytes: number;
  ms: number;
}

const PAGEMAP_RE = /^pagemap-(\d+)\.img$/;

// ------------------------------------------------------------------ the page index file

export function encodeIndex(sections: readonly IndexSection[]): Buffer {
  const head = Buffer.alloc(12);
  MAGIC.copy(head, 0);
  head.writeUInt32LE(sections.length, 8);
  const parts: Buffer[] = [head];
  for (const s of sections) {
    const h = Buffer.alloc(8);
    h.writeUInt32LE(s.id, 0);
    h.writeUInt32LE(s.hashes.length / 16, 4);
    parts.push(h, s.hashes);
  }
  return Buffer.concat(parts);
}

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
    if (buf.length - pos < pages * 16) throw bad('truncated section');
    out.set(id, buf.subarray(pos, pos + pages * 16));
    pos += pages * 16;
  }
  return out;
}

export async function readIndex(dir: string): Promise<Map<number, Buffer> | undefined> {
  let buf: Buffer;
  try {
    buf = await readFile(join(dir, PAGE_INDEX));
  } catch {
    return undefined;
  }
  return decodeIndex(buf, join(dir, PAGE_INDEX));
}

// ------------------------------------------------------------------ helpers over pagemaps

/** The pagemap ids of a snapshot directory (pagemap-<id>.img; not the shmem ones). */
async function pagemapIds(dir: string): Promise<number[]> {
  return (await readdir(dir)).map((n) => PAGEMAP_RE.exec(n)).filter((m) => m !== null).map((m) => Number(m[1])).sort((a, b) => a - b);
}

function totalPages(entries: readonly PagemapRun[]): number {
  return entries.reduce((a, e) => a + e.nrPages, 0);
}

/** The hash of the page at a virtual address among a pagemap's logical pages. */
class HashAt {
  /** Runs sorted by address, with the index of their first page in `hashes`. */
  private readonly runs: { start: number; end: number; first: number }[] = [];
  private cursor = 0;
  constructor(entries: readonly PagemapRun[], readonly hashes: Buffer) {
    let p = 0;
    for (const e of entries) {
      // User addresses are below 2^57, pages are 4 KiB: page numbers fit a double exactly.
      const start = Number(e.vaddr / BigInt(PAGE_SIZE));
      this.runs.push({ start, end: start + e.nrPages, first: p });
      p += e.nrPages;
    }
    this.runs.sort((x, y) => x.start - y.start);
  }
  /** The index in `hashes` of page number `pfn` (vaddr / 4096), or -1 when there is no such page. */
  get(vaddr: number): number {
    // Addresses are asked in ascending order: a moving cursor, reset when one goes back.
    if (this.cursor >= this.runs.length || this.runs[this.cursor]!.start > vaddr) this.cursor = 0;
    while (this.cursor < this.runs.length && this.runs[this.cursor]!.end <= vaddr) this.cursor++;
    const r = this.runs[this.cursor];
    if (!r || vaddr < r.start) return -1;
    const page = r.first + (vaddr - r.start);
    // A page the parent does not hold itself has an all-zero hash, which no content hashes to.
    return (page + 1) * 16 <= this.hashes.length ? page : -1;
  }
}

// ------------------------------------------------------------------ dedup

export interface StoreImagesResult {
  files: FileSums;
  /** Bytes of a flat snapshot with the same content (what restoring materialises). */
  logicalBytes: number;
  dedup: DedupStats | undefined;
  /** Time spent hashing and rewriting, in ms. */
  ms: number;
}

/**
 * Checksums a freshly dumped snapshot directory, writes its page index, and, when `parent` is
 * given (a committed snapshot in the same tier directory, with a page index), rewrites its
 * pagemaps and pages images so that unchanged pages come from the parent. Returns the final
 * per-file checksums.
 */
export async function storeImages(dir: string, parent?: { id: string; dir: string }): Promise<StoreImagesResult> {
  const started = Date.now();
  const ids = await pagemapIds(dir);
  const pagemaps = new Map<number, { entries: PagemapRun[]; pagesId: number }>();
  for (const id of ids) pagemaps.set(id, await readPagemap(join(dir, `pagemap-${id}.img`)));
  const pagesFiles = new Set([...pagemaps.values()].map((p) => `pages-${p.pagesId}.img`));
  const { sums, blocks } = await checksumDirWithBlocks(dir, (n) => pagesFiles.has(n));
  const logicalBytes = Object.values(sums).reduce((a, f) => a + f.size, 0);

  const parentIndex = parent ? await readIndex(parent.dir) : undefined;
  const sections: IndexSection[] = [];
  let pages = 0, inParent = 0, savedBytes = 0;
  for (const [id, pm] of pagemaps) {
    const pagesName = `pages-${pm.pagesId}.img`;
    const data = blocks.get(pagesName) ?? Buffer.alloc(0);
    // Logical hashes, in entry order: present pages take their block hash, others none.
    const n = totalPages(pm.entries);
    const logical = Buffer.alloc(n * 16);
    let src = 0, dst = 0;
    for (const e of pm.entries) {
      if (e.flags & PE_PRESENT) {
        data.copy(logical, dst * 16, src * 16, (src + e.nrPages) * 16);
        src += e.nrPages;
      }
      dst += e.nrPages;
    }
    sections.push({ id, hashes: logical });
    const ph = parentIndex?.get(id);
    if (!parent || !ph || pm.entries.some((e) => e.flags & PE_PARENT)) continue;
    let parentMap: PagemapRun[];
    try {
      parentMap = (await readPagemap(join(parent.dir, `pagemap-${id}.img`))).entries;
    } catch {
      continue;
    }
    if (totalPages(parentMap) * 16 !== ph.length) continue; // index and pagemap disagree: no dedup
    const at = new HashAt(parentMap, ph);
    // Hashes compared as four u32 words in JS (a native compare per page costs more than the work).
    const pw = u32View(ph), lw = u32View(logical);
    const out: PagemapRun[] = [];
    const keep: { from: number; pages: number }[] = []; // page ranges of the old pages file to keep
    const keptHashes: Buffer[] = [];
    let oldPage = 0, page = 0, changed = false;
    const size = BigInt(PAGE_SIZE);
    for (const e of pm.entries) {
      if (!(e.flags & PE_PRESENT)) { out.push(e); page += e.nrPages; continue; }
      let runStart = 0, runSame: boolean | undefined;
      const flush = (end: number) => {
        if (end <= runStart || runSame === undefined) return;
        const vaddr = e.vaddr + BigInt(runStart) * size;
        if (runSame) {
          out.push({ vaddr, nrPages: end - runStart, flags: PE_PARENT });
        } else {
          out.push({ vaddr, nrPages: end - runStart, flags: e.flags });
          keep.push({ from: oldPage + runStart, pages: end - runStart });
          keptHashes.push(data.subarray((oldPage + runStart) * 16, (oldPage + end) * 16));
        }
      };
      const pfn = Number(e.vaddr / size);
      for (let k = 0; k < e.nrPages; k++) {
        const p = at.get(pfn + k);
        const a = p * 4, b = (page + k) * 4;
        const same = p >= 0 && pw[a] === lw[b] && pw[a + 1] === lw[b + 1] && pw[a + 2] === lw[b + 2] && pw[a + 3] === lw[b + 3];
        if (same) { inParent++; changed = true; }
        if (same !== runSame) { flush(k); runStart = k; runSame = same; }
      }
      flush(e.nrPages);
      pages += e.nrPages;
      oldPage += e.nrPages;
      page += e.nrPages;
    }
    if (!changed) continue;
    // Only the changed pages stay: copy them into a new pages image, then swap both files.
    const oldPath = join(dir, pagesName);
    const newPath = join(dir, `${pagesName}.dedup`);
    // Synchronous reads and writes: thousands of small runs on tmpfs, a few µs each; an await
    // per run would cost more than the copy.
    const src2 = openSync(oldPath, 'r');
    const dst2 = openSync(newPath, 'wx', 0o600);
    try {
      const out = Buffer.allocUnsafe(4 << 20);
      let fill = 0;
      for (const r of keep) {
        let left = r.pages * BLOCK, rpos = r.from * BLOCK;
        while (left > 0) {
          if (fill === out.length) { writeAll(dst2, out, fill); fill = 0; }
          const n = readSync(src2, out, fill, Math.min(out.length - fill, left), rpos);
          if (n === 0) throw new FerryError('ERR_SNAPSHOT_CORRUPT', `${oldPath} is shorter than its pagemap says`);
          fill += n; left -= n; rpos += n;
        }
      }
      writeAll(dst2, out, fill);
    } finally {
      closeSync(src2);
      closeSync(dst2);
    }
    await rename(newPath, oldPath);
    await writePagemap(join(dir, `pagemap-${id}.img`), { pagesId: pm.pagesId }, out);
    const keptBlocks = Buffer.concat(keptHashes);
    const before = sums[pagesName]!.size;
    sums[pagesName] = { size: keptBlocks.length / 16 * BLOCK, hash: digestOfBlocks(keptBlocks) };
    savedBytes += before - sums[pagesName].size;
    const pmFile = `pagemap-${id}.img`;
    const h = await hashFile(join(dir, pmFile));
    sums[pmFile] = { size: h.size, hash: h.hash };
  }
  const index = encodeIndex(sections);
  await writeFile(join(dir, PAGE_INDEX), index, { mode: 0o600 });
  sums[PAGE_INDEX] = { size: index.length, hash: (await hashFile(join(dir, PAGE_INDEX))).hash };
  let dedup: DedupStats | undefined;
  if (parent && inParent > 0) {
    await symlink(`../${parent.id}`, join(dir, PARENT_LINK));
    dedup = { parent: parent.id, pages, inParent, savedBytes, ms: 0 };
  }
  const ms = Date.now() - started;
  if (dedup) dedup.ms = ms;
  return { files: sorted(sums), logicalBytes, dedup, ms };
}

/** A Uint32Array over a buffer's bytes (copied when the buffer is not 4-byte aligned). */
function u32View(b: Buffer): Uint32Array {
  const src = b.byteOffset % 4 === 0 ? b : Buffer.from(b);
  return new Uint32Array(src.buffer, src.byteOffset, src.length >> 2);
}

function writeAll(fd: number, buf: Buffer, len: number): void {
  for (let off = 0; off < len;) off += writeSync(fd, buf, off, len - off);
}

function sorted(sums: FileSums): FileSums {
  return Object.fromEntries(Object.entries(sums).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
