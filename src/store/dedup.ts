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
import { link, mkdir, readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { basename, join } from 'node:path';
import { PAGE_SIZE, PE_PARENT, PE_PRESENT, readPagemap, writePagemap, type PagemapRun } from '../criu/images/pagemap.js';
import { FerryError } from '../util/errors.js';
import { BLOCK, checksumDirWithBlocks, digestOfBlocks, hashFile, type FileSums, type Prehashed } from './checksums.js';
import type { SnapshotManifest } from './manifest.js';

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

/** The logical page hashes of a pagemap: present pages take their block hash, others zero. */
function logicalHashes(entries: readonly PagemapRun[], data: Buffer): Buffer {
  const logical = Buffer.alloc(totalPages(entries) * 16);
  let src = 0, dst = 0;
  for (const e of entries) {
    if (e.flags & PE_PRESENT) {
      data.copy(logical, dst * 16, src * 16, (src + e.nrPages) * 16);
      src += e.nrPages;
    }
    dst += e.nrPages;
  }
  return logical;
}

/** The outcome of comparing one pagemap's present pages with another snapshot's pages. */
interface PagemapDiff {
  /** The new pagemap: unchanged runs as PE_PARENT, the rest as they were. */
  out: PagemapRun[];
  /** Ranges of present pages (numbered in the old pages image) that stay. */
  keep: { from: number; pages: number }[];
  /** Block hashes of the pages that stay, in order. */
  kept: Buffer;
  pages: number;
  inParent: number;
}

/**
 * Compares the present pages of `entries` (logical hashes `logical`) with the pages at the same
 * addresses of a base snapshot (its pagemap `baseMap` and page index `baseIndex`). Undefined
 * when no page is unchanged (or the base's index does not fit its pagemap).
 */
function diffPagemap(entries: readonly PagemapRun[], logical: Buffer, baseMap: readonly PagemapRun[], baseIndex: Buffer): PagemapDiff | undefined {
  if (totalPages(baseMap) * 16 !== baseIndex.length || entries.some((e) => e.flags & PE_PARENT)) return undefined;
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
        kept.push(logical.subarray((page + runStart) * 16, (page + end) * 16));
      }
    };
    const pfn = Number(e.vaddr / BigInt(PAGE_SIZE));
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
 * Copies the kept page ranges of a pages image into a new file. Synchronous reads and writes:
 * thousands of small runs on tmpfs, a few µs each; an await per run would cost more than the copy.
 */
function copyKept(from: string, to: string, keep: PagemapDiff['keep']): void {
  const src = openSync(from, 'r');
  const dst = openSync(to, 'wx', 0o600);
  try {
    const out = Buffer.allocUnsafe(4 << 20);
    let fill = 0;
    for (const r of keep) {
      let left = r.pages * BLOCK, rpos = r.from * BLOCK;
      while (left > 0) {
        if (fill === out.length) { writeAll(dst, out, fill); fill = 0; }
        const n = readSync(src, out, fill, Math.min(out.length - fill, left), rpos);
        if (n === 0) throw new FerryError('ERR_SNAPSHOT_CORRUPT', `${from} is shorter than its pagemap says`);
        fill += n; left -= n; rpos += n;
      }
    }
    writeAll(dst, out, fill);
  } finally {
    closeSync(src);
    closeSync(dst);
  }
}

/**
 * Checksums a freshly dumped snapshot directory and writes its page index; when `parent` is
 * given (a committed snapshot in the same tier directory, with a page index), also rewrites its
 * pagemaps and pages images so that unchanged pages come from the parent ("forward" chains).
 * Returns the final per-file checksums.
 */
export async function storeImages(dir: string, parent?: { id: string; dir: string }, pre?: Prehashed): Promise<StoreImagesResult> {
  const started = Date.now();
  const ids = await pagemapIds(dir);
  const pagemaps = new Map<number, { entries: PagemapRun[]; pagesId: number }>();
  for (const id of ids) pagemaps.set(id, await readPagemap(join(dir, `pagemap-${id}.img`)));
  const pagesFiles = new Set([...pagemaps.values()].map((p) => `pages-${p.pagesId}.img`));
  const { sums, blocks } = await checksumDirWithBlocks(dir, (n) => pagesFiles.has(n), pre);
  const logicalBytes = Object.values(sums).reduce((a, f) => a + f.size, 0);

  const parentIndex = parent ? await readIndex(parent.dir) : undefined;
  const sections: IndexSection[] = [];
  let pages = 0, inParent = 0, savedBytes = 0;
  for (const [id, pm] of pagemaps) {
    const pagesName = `pages-${pm.pagesId}.img`;
    const logical = logicalHashes(pm.entries, blocks.get(pagesName) ?? Buffer.alloc(0));
    sections.push({ id, hashes: logical });
    const ph = parentIndex?.get(id);
    if (!parent || !ph) continue;
    const parentMap = await readPagemap(join(parent.dir, `pagemap-${id}.img`)).catch(() => undefined);
    if (!parentMap) continue;
    const d = diffPagemap(pm.entries, logical, parentMap.entries, ph);
    if (!d) continue;
    pages += d.pages;
    inParent += d.inParent;
    const oldPath = join(dir, pagesName);
    copyKept(oldPath, `${oldPath}.dedup`, d.keep);
    // The whole pages image leaves the snapshot at once and is freed in the background.
    const doomed = join(dir, '..', `.rm-${basename(dir)}-${pagesName}`);
    await rename(oldPath, doomed);
    await rename(`${oldPath}.dedup`, oldPath);
    discardInBackground(doomed);
    await writePagemap(join(dir, `pagemap-${id}.img`), { pagesId: pm.pagesId }, d.out);
    const before = sums[pagesName]!.size;
    sums[pagesName] = { size: d.kept.length / 16 * BLOCK, hash: digestOfBlocks(d.kept) };
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

/**
 * "Newest stays flat" chains: rewrites `older` (a flat snapshot) so that its pages equal to
 * `newer`'s pages at the same addresses are read from `newer` (PE_PARENT, `parent -> ../newer`).
 * The newest snapshot — the one restored after a crash or migrated — stays whole and restores at
 * full speed; an older one reads its unchanged pages through the chain of its successors.
 * Built in a staging directory (unchanged files hard-linked), checked against the page index,
 * then swapped in by two renames: `older` stays intact until then. Returns the new manifest,
 * or undefined when nothing could be shared.
 */
export async function rebaseOnto(older: { manifest: SnapshotManifest; dir: string }, newer: { manifest: SnapshotManifest; dir: string }): Promise<SnapshotManifest | undefined> {
  const started = Date.now();
  if (older.manifest.parent !== undefined) return undefined;
  const [olderIndex, newerIndex] = await Promise.all([readIndex(older.dir), readIndex(newer.dir)]);
  if (!olderIndex || !newerIndex) return undefined;
  let pages = 0, inParent = 0;
  return restage(older, newer.manifest.id, 'rebase', async (stage) => {
    const rewritten = new Set<string>();
    for (const [pmId, logical] of olderIndex) {
      const nh = newerIndex.get(pmId);
      if (!nh) continue;
      const pm = await readPagemap(join(older.dir, `pagemap-${pmId}.img`));
      const nm = await readPagemap(join(newer.dir, `pagemap-${pmId}.img`)).catch(() => undefined);
      if (!nm) continue;
      const d = diffPagemap(pm.entries, logical, nm.entries, nh);
      if (!d) continue;
      const pagesName = `pages-${pm.pagesId}.img`;
      copyKept(join(older.dir, pagesName), join(stage, pagesName), d.keep);
      await writePagemap(join(stage, `pagemap-${pmId}.img`), { pagesId: pm.pagesId }, d.out);
      rewritten.add(pagesName).add(`pagemap-${pmId}.img`);
      pages += d.pages;
      inParent += d.inParent;
    }
    return inParent === 0 ? undefined : rewritten;
  }, (files, bytes) => ({
    ...older.manifest,
    parent: newer.manifest.id,
    files,
    bytes,
    logicalBytes: older.manifest.logicalBytes ?? older.manifest.bytes,
    dedup: { parent: newer.manifest.id, pages, inParent, savedBytes: older.manifest.bytes - bytes, ms: Date.now() - started },
  }));
}

/**
 * Rewrites a committed snapshot without ever leaving it broken: `rewrite(stage)` writes the new
 * pagemap and pages images into a staging directory beside it and returns their names
 * (undefined: nothing to do); every other file is hard-linked, `parent` points at `parentId`,
 * every page the new pages images hold is re-hashed and checked against the page index taken at
 * checkpoint, and `manifestOf` gives the new manifest. Then swapIn. Until then the original is
 * untouched; on any failure it stays as it was.
 */
export async function restage(s: { manifest: SnapshotManifest; dir: string }, parentId: string | undefined, why: string,
  rewrite: (stage: string) => Promise<Set<string> | undefined>, manifestOf: (files: FileSums, bytes: number) => SnapshotManifest): Promise<SnapshotManifest | undefined> {
  const stage = join(s.dir, '..', `.fold-${s.manifest.id}-${Date.now()}`);
  await mkdir(stage, { mode: 0o700 });
  try {
    const rewritten = await rewrite(stage);
    if (!rewritten) return undefined;
    for (const name of await readdir(s.dir)) {
      if (rewritten.has(name) || name === PARENT_LINK || name === 'manifest.json') continue;
      await link(join(s.dir, name), join(stage, name));
    }
    if (parentId !== undefined) await symlink(`../${parentId}`, join(stage, PARENT_LINK));
    const { sums, blocks } = await checksumDirWithBlocks(stage, (f) => rewritten.has(f) && f.startsWith('pages-'));
    await checkAgainstIndex(stage, blocks, s.manifest.id);
    const manifest = manifestOf(sums, Object.values(sums).reduce((a, f) => a + f.size, 0));
    await swapIn(stage, s.dir, manifest, why);
    return manifest;
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}

/**
 * Proves a rewritten snapshot holds the pages it held at checkpoint: every page now in the
 * pages images of `blocksByFile` must hash to the page index's entry for that address.
 */
export async function checkAgainstIndex(dir: string, blocksByFile: Map<string, Buffer>, id: string): Promise<void> {
  const index = await readIndex(dir);
  if (!index) throw new FerryError('ERR_SNAPSHOT_CORRUPT', `snapshot ${id} has no page index`);
  for (const [pmId, logical] of index) {
    const pm = await readPagemap(join(dir, `pagemap-${pmId}.img`));
    const blocks = blocksByFile.get(`pages-${pm.pagesId}.img`);
    if (!blocks) continue; // not rewritten
    let page = 0, present = 0;
    for (const e of pm.entries) {
      if (e.flags & PE_PRESENT) {
        for (let k = 0; k < e.nrPages; k++) {
          if (blocks.compare(logical, (page + k) * 16, (page + k + 1) * 16, (present + k) * 16, (present + k + 1) * 16) !== 0) {
            throw new FerryError('ERR_SNAPSHOT_CORRUPT', `snapshot ${id}: page ${((e.vaddr / BigInt(PAGE_SIZE)) + BigInt(k)) * BigInt(PAGE_SIZE)} does not match its page index after a rewrite`, {
              hint: 'the snapshot was left as it was; its chain may be damaged — verify it with `ferry restore`',
            });
          }
        }
        present += e.nrPages;
      }
      page += e.nrPages;
    }
    if (present * 16 !== blocks.length) throw new FerryError('ERR_SNAPSHOT_CORRUPT', `snapshot ${id}: pages image and pagemap disagree after a rewrite`);
  }
}

/** A Uint32Array over a buffer's bytes (copied when the buffer is not 4-byte aligned). */
function u32View(b: Buffer): Uint32Array {
  const src = b.byteOffset % 4 === 0 ? b : Buffer.from(b);
  return new Uint32Array(src.buffer, src.byteOffset, src.length >> 2);
}

/**
 * Replaces a snapshot directory by its rewritten copy in `stage` (same tier directory): writes
 * the manifest last, then two renames; if the second fails the original is put back. The old
 * directory is freed in the background.
 */
export async function swapIn(stage: string, dir: string, manifest: SnapshotManifest, why: string): Promise<void> {
  await writeFile(join(stage, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n', { mode: 0o600 });
  const old = join(dir, '..', `.rm-${basename(dir)}-${why}-${Date.now()}`);
  await rename(dir, old);
  try {
    await rename(stage, dir);
  } catch (err) {
    await rename(old, dir); // put the original back
    throw err;
  }
  discardInBackground(old);
}

/**
 * Removes an obsolete copy (a `.rm-*` directory or file) in a detached `rm -rf`, so that freeing
 * its pages (≈ 150 ms per GiB of tmpfs) does not delay the command; `ferry snapshots gc` sweeps
 * any that an interrupted rm left behind.
 */
export function discardInBackground(path: string): void {
  try {
    spawn('rm', ['-rf', '--', path], { detached: true, stdio: 'ignore' }).unref();
  } catch {
    // gc sweeps it later
  }
}

/** Writes `len` bytes of `buf` at the fd's position, however many writes it takes. */
export function writeAll(fd: number, buf: Buffer, len: number): void {
  for (let off = 0; off < len;) off += writeSync(fd, buf, off, len - off);
}

function sorted(sums: FileSums): FileSums {
  return Object.fromEntries(Object.entries(sums).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
