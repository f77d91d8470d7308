import { availableParallelism } from 'node:os';
import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { hash128, hashBlocks } from '../native/index.js';
import { FerryError } from '../util/errors.js';

/**
 * The hash of every image file: XXH3-128 of the concatenated XXH3-128 hashes of its 4 KiB
 * blocks (a two-level tree, hex). The block hashes are what page dedup compares, so one pass
 * over a pages image yields both its checksum and its page index; and a large file's blocks are
 * hashed in 64 MiB ranges on several threads at once (native/hash.c, Debian's libxxhash).
 */
export const HASH_ALGORITHM = 'xxh3-128/4k';
export type HashAlgorithm = typeof HASH_ALGORITHM;
export const BLOCK = 4096;
/**
 * A tmpfs with huge pages reports them as its block size: files there are hashed through a
 * mapping (512 page-table entries per GiB) instead of copied out.
 */
const HUGE_PAGE = 2 << 20;
/** Bytes hashed by one thread-pool job. */
const RANGE = 64 << 20;

export type FileSums = Record<string, { size: number; hash: string }>;

/** Files of a snapshot that are not images: ferry's manifest and CRIU's logs (which it appends to). */
const NOT_CHECKSUMMED = /^(manifest\.json|.*\.log)$/;

/**
 * Block hashes of whole 64 MiB ranges already computed while the file was still being written
 * (FollowingHasher), by path: valid for the same inode only.
 */
export type Prehashed = Map<string, { ino: number; ranges: Map<number, Buffer> }>;

/** How hashFiles runs besides its defaults. */
export interface HashOptions {
  /** Stops between 64 MiB ranges once aborted (a range in flight runs to its end). */
  signal?: AbortSignal;
}

/** Hashes several files (and ranges of large ones) at once, with at most `parallel` jobs in flight. */
async function hashFiles(paths: string[], parallel = Math.max(2, availableParallelism()), pre?: Prehashed, how: HashOptions = {}): Promise<{ size: number; blocks: Buffer }[]> {
  const handles = await Promise.all(paths.map(async (p) => {
    const fh = await open(p, 'r');
    const st = await fh.stat();
    return { fh, size: st.size, ino: st.ino, path: p, mapped: st.blksize >= HUGE_PAGE };
  }));
  try {
    const parts: Buffer[][] = handles.map((h) => new Array<Buffer>(Math.max(1, Math.ceil(h.size / RANGE))));
    const jobs: { len: number; run: () => Promise<void> }[] = [];
    handles.forEach((h, fi) => {
      if (h.size === 0) { parts[fi]![0] = Buffer.alloc(0); return; }
      const done = pre?.get(h.path);
      const ranges = done && done.ino === h.ino ? done.ranges : undefined;
      for (let off = 0, k = 0; off < h.size; off += RANGE, k++) {
        const len = Math.min(RANGE, h.size - off);
        const have = ranges?.get(k);
        if (have && have.length === Math.ceil(len / BLOCK) * 16) { parts[fi]![k] = have; continue; }
        jobs.push({ len, run: async () => { parts[fi]![k] = await hashBlocks(h.fh.fd, off, len, BLOCK, h.mapped); } });
      }
    });
    // Big jobs first, so the last one to finish is a small one.
    jobs.sort((a, b) => b.len - a.len);
    let next = 0;
    const worker = async () => {
      while (next < jobs.length) {
        how.signal?.throwIfAborted();
        await jobs[next++]!.run();
      }
    };
    await Promise.all(Array.from({ length: Math.min(parallel, jobs.length) }, worker));
    return handles.map((h, fi) => ({ size: h.size, blocks: parts[fi]!.length === 1 ? parts[fi]![0]! : Buffer.concat(parts[fi]!) }));
  } finally {
    await Promise.all(handles.map((h) => h.fh.close()));
  }
}

/** The file hash from its block hashes. */
export function digestOfBlocks(blocks: Uint8Array): string {
  return hash128(blocks).toString('hex');
}

/** The hash of one file (HASH_ALGORITHM) and its block hashes (16 bytes per 4 KiB block). */
export async function hashFile(path: string): Promise<{ size: number; hash: string; blocks: Buffer }> {
  const [r] = await hashFiles([path]);
  return { size: r!.size, hash: digestOfBlocks(r!.blocks), blocks: r!.blocks };
}

/** Size and hash (HASH_ALGORITHM) of each of `paths`, in order; `parallel` jobs at most. */
export async function checksumFiles(paths: string[], parallel?: number, how: HashOptions = {}): Promise<{ size: number; hash: string }[]> {
  const results = await hashFiles(paths, parallel, undefined, how);
  return results.map((r) => ({ size: r.size, hash: digestOfBlocks(r.blocks) }));
}

/** The image files of a snapshot directory (regular files, not the manifest or logs; the `parent` link is a directory), sorted. */
export async function imageFiles(dir: string): Promise<string[]> {
  const names = (await readdir(dir)).filter((n) => !NOT_CHECKSUMMED.test(n)).sort();
  const out: string[] = [];
  for (const name of names) if ((await stat(join(dir, name)).catch(() => undefined))?.isFile()) out.push(name);
  return out;
}

/**
 * Size and hash of every image file in `dir`, plus the block hashes of the files `keepBlocks`
 * selects (for the page index of pages images).
 */
export async function checksumDirWithBlocks(dir: string, keepBlocks: (name: string) => boolean = () => false, pre?: Prehashed): Promise<{ sums: FileSums; blocks: Map<string, Buffer> }> {
  const names = await imageFiles(dir);
  const results = await hashFiles(names.map((n) => join(dir, n)), undefined, pre);
  const sums: FileSums = {};
  const blocks = new Map<string, Buffer>();
  names.forEach((name, i) => {
    const r = results[i]!;
    sums[name] = { size: r.size, hash: digestOfBlocks(r.blocks) };
    if (keepBlocks(name)) blocks.set(name, r.blocks);
  });
  return { sums, blocks };
}

/** Size and hash of every image file in `dir`. */
export async function checksumDir(dir: string): Promise<FileSums> {
  return (await checksumDirWithBlocks(dir)).sums;
}

/**
 * The error for a snapshot whose images differ from its manifest (`what` names the file);
 * ERR_SNAPSHOT_DAMAGED when a restore found it (nothing was restored).
 */
export function snapshotDamaged(id: string, what: string, code: 'ERR_SNAPSHOT_CORRUPT' | 'ERR_SNAPSHOT_DAMAGED' = 'ERR_SNAPSHOT_CORRUPT'): FerryError {
  return new FerryError(code, `snapshot ${id} is damaged: ${what}`, {
    hint: 'the images changed after the checkpoint; restore another snapshot, or take a new one',
  });
}

/** Refuses a snapshot checksummed with another algorithm than this ferry's. */
export function requireAlgorithm(id: string, algorithm: string): void {
  if (algorithm !== HASH_ALGORITHM) {
    throw new FerryError('ERR_SNAPSHOT_INCOMPATIBLE', `snapshot ${id} was checksummed with ${algorithm}; this ferry checks ${HASH_ALGORITHM}`, {
      hint: 'take a new snapshot with this version of ferry',
    });
  }
}

/** What is wrong with one file (its size and hash against the manifest's), or undefined. */
export function fileMismatch(name: string, actual: { size: number; hash: string } | undefined, expected: { size: number; hash: string }): string | undefined {
  if (!actual) return `${name} is missing`;
  if (actual.size !== expected.size) return `${name} has ${actual.size} bytes, expected ${expected.size}`;
  if (actual.hash !== expected.hash) return `${name} fails its checksum (${HASH_ALGORITHM} ${actual.hash.slice(0, 12)}…, expected ${String(expected.hash).slice(0, 12)}…)`;
  return undefined;
}

/** Throws ERR_SNAPSHOT_CORRUPT naming the first file that differs from the manifest. */
export async function verifyChecksums(dir: string, expected: FileSums, id: string, algorithm: string = HASH_ALGORITHM): Promise<void> {
  requireAlgorithm(id, algorithm);
  const actual = await checksumDir(dir);
  for (const [name, e] of Object.entries(expected)) {
    const bad = fileMismatch(name, actual[name], e);
    if (bad) throw snapshotDamaged(id, bad);
  }
  for (const name of Object.keys(actual)) if (!(name in expected)) throw snapshotDamaged(id, `${name} was added after the checkpoint`);
}

/**
 * Hashes the pages images of a directory while CRIU is still writing them: CRIU appends page
 * data and never goes back, so every whole 64 MiB range below a file's current size is final.
 * Polls the sizes, hashes one range at a time (CRIU keeps the other core busy), and hands the
 * ranges to checksumDirWithBlocks, which hashes only what is left. What is hashed is exactly
 * what a hash after the dump would see, or, if a file was replaced (another inode), nothing.
 */
export class FollowingHasher {
  private readonly done: Prehashed = new Map();
  private readonly open = new Map<string, { fd: number; mapped: boolean; close: () => Promise<void> }>();
  private timer: NodeJS.Timeout | undefined;
  private busy: Promise<void> | undefined;
  private stopped = false;
  private failed = false;

  constructor(private readonly dir: string, private readonly pattern = /^pages-\d+\.img$/, private readonly everyMs = 20) {}

  start(): this {
    const tick = () => {
      if (this.stopped) return;
      this.busy = this.step().catch(() => { this.failed = true; }).finally(() => {
        if (!this.stopped && !this.failed) this.timer = setTimeout(tick, this.everyMs);
      });
    };
    this.timer = setTimeout(tick, this.everyMs);
    return this;
  }

  private async step(): Promise<void> {
    for (const name of (await readdir(this.dir)).filter((n) => this.pattern.test(n))) {
      const path = join(this.dir, name);
      let f = this.open.get(path);
      if (!f) {
        const fh = await open(path, 'r');
        const st = await fh.stat();
        f = { fd: fh.fd, mapped: st.blksize >= HUGE_PAGE, close: () => fh.close() };
        this.open.set(path, f);
        this.done.set(path, { ino: st.ino, ranges: new Map() });
      }
      const entry = this.done.get(path)!;
      const size = (await stat(path)).size;
      for (let k = entry.ranges.size; (k + 1) * RANGE <= size; k++) {
        if (this.stopped) return;
        entry.ranges.set(k, await hashBlocks(f.fd, k * RANGE, RANGE, BLOCK, f.mapped, true));
      }
    }
  }

  /** Stops following; the ranges hashed so far (none if anything went wrong). */
  async finish(): Promise<Prehashed> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.busy;
    for (const f of this.open.values()) await f.close();
    return this.failed ? new Map() : this.done;
  }
}
