/**
 * Verification for a restore, split along what CRIU does with the images. What ferry guarantees
 * is that no restored process ever runs on memory that was not verified, not that CRIU never
 * starts before the last byte is hashed:
 *   small: every image CRIU parses (everything but the pages images) of every snapshot of the
 *          chain, hashed and compared before CRIU starts; and, cheaply, that the pages images
 *          are all there with their sizes and nothing was added;
 *   pages: the pages images (raw memory, which CRIU copies into the tasks without parsing),
 *          hashed concurrently with CRIU's restore. The engine answers CRIU's post-restore
 *          notification (memory restored, tasks still parked in CRIU's restorer) with
 *          `postRestore()`, which waits for this; a damaged file answers failure and CRIU kills
 *          the restored tasks. A damaged pages image never fails the small phase, so it is
 *          always refused that way, whichever phase finishes first.
 * The pages of a deduped snapshot come from its whole chain, so every snapshot of it is verified.
 */
import { stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { FerryError } from '../util/errors.js';
import { checksumFiles, fileMismatch, imageFiles, requireAlgorithm, snapshotDamaged, type FileSums } from './checksums.js';

/** What a restore's verification raises for a damaged file: nothing of the snapshot was restored (or ran). */
const DAMAGED = 'ERR_SNAPSHOT_DAMAGED';

/** A snapshot as far as verification needs it (StoredSnapshot fits). */
export interface VerifiableSnapshot {
  dir: string;
  manifest: { id: string; files: FileSums; algorithm?: string };
}

/** The images CRIU reads as raw memory (`pages-<id>.img`), hashed beside the restore. */
export const PAGES_IMAGE = /^pages-\d+\.img$/;

export interface VerifyOptions {
  /**
   * Watchdog of each phase (ms): a phase that has not finished by then fails (ERR_VERIFY_TIMEOUT)
   * instead of keeping CRIU's tasks parked forever. Default: 60 s plus 1 s per 20 MiB it hashes.
   */
  timeoutMs?: number;
  /**
   * Hashing jobs in flight for the pages images (default: every core, at normal priority). Done
   * fast, the hashing is over early in CRIU's restore; measured on 2 cores (bench overhead,
   * 1 GiB), one job at the lowest priority stretched it over CRIU's whole memory phase and slowed
   * CRIU more (×1.39, up to ×2.0) than two jobs at normal priority (×1.14, up to ×1.27).
   */
  parallel?: number;
}

/** One file to check: where it is, whose it is, what the manifest says. */
interface Item { snapshot: string; name: string; path: string; expected: { size: number; hash: string } }

/** Wall times of the two phases, once they have finished. */
export interface VerifyTimings { smallMs?: number; pagesMs?: number }

/**
 * A running verification. `small` and `pages` start at once; both always settle (watchdog).
 * Call `cancel()` when the restore ends for any reason (a no-op once both are done).
 */
export class RestoreVerification {
  readonly small: Promise<void>;
  readonly pages: Promise<void>;
  readonly timings: VerifyTimings = {};
  // Separate, so that a damaged pages image never fails the small phase: which way a damaged
  // snapshot is refused does not depend on which phase finishes first (always post-restore).
  readonly #smallAbort = new AbortController();
  readonly #pagesAbort = new AbortController();
  /** The pages phase's failure, once it was the answer to CRIU's post-restore. */
  #answered: unknown;

  constructor(chain: readonly VerifiableSnapshot[], opts: VerifyOptions = {}) {
    const started = Date.now();
    const smallItems: Item[] = [];
    const pageItems: Item[] = [];
    for (const s of chain) {
      for (const [name, expected] of Object.entries(s.manifest.files)) {
        (PAGES_IMAGE.test(name) ? pageItems : smallItems).push({ snapshot: s.manifest.id, name, path: join(s.dir, name), expected });
      }
    }
    const deadline = (items: Item[]) => opts.timeoutMs ?? 60_000 + Math.ceil(items.reduce((a, i) => a + i.expected.size, 0) / (20 << 20)) * 1000;
    this.small = this.#watch('small images', deadline(smallItems), this.#smallAbort, (async () => {
      for (const s of chain) await checkListing(s);
      await checkFiles(smallItems, { signal: this.#smallAbort.signal });
    })()).then(() => { this.timings.smallMs = Date.now() - started; }, (err: unknown) => {
      // The restore is refused: the pages need not be hashed any more.
      this.#pagesAbort.abort(err);
      throw err;
    });
    // One file after the other (each in parallel ranges): the nearest snapshot's first, and a
    // file that cannot be read is named without hashing the others again.
    this.pages = this.#watch('pages images', deadline(pageItems), this.#pagesAbort, (async () => {
      for (const item of pageItems) {
        await checkFiles([item], { signal: this.#pagesAbort.signal, parallel: opts.parallel ?? pageJobs() });
      }
    })()).then(() => { this.timings.pagesMs = Date.now() - started; });
    // Whoever uses them awaits them; a restore refused early must not leave an unhandled rejection.
    this.small.catch(() => undefined);
    this.pages.catch(() => undefined);
  }

  /**
   * The answer to CRIU's post-restore notification: resolves once every pages image verified,
   * rejects (CRIU then kills the restored tasks) when one is damaged or unreadable.
   */
  async postRestore(): Promise<void> {
    try {
      // Both phases: an answer of success never follows a failed small phase.
      await this.small;
      await this.pages;
    } catch (err) {
      this.#answered = err;
      throw err;
    }
  }

  /** Stops hashing (the restore is over). Pending phases reject with ERR_VERIFY_CANCELLED. */
  cancel(): void {
    const why = new FerryError('ERR_VERIFY_CANCELLED', 'the restore ended before the images were verified');
    for (const c of [this.#smallAbort, this.#pagesAbort]) if (!c.signal.aborted) c.abort(why);
  }

  /**
   * The error a failed restore should report: the damaged pages image (not CRIU's "post-restore
   * handler failed") when that was what post-restore was answered with, else `err` unchanged.
   */
  explain(err: unknown): unknown {
    return this.#answered instanceof FerryError ? this.#answered : err;
  }

  /** `p`, or ERR_VERIFY_TIMEOUT after `ms` (hashing stops then too). */
  #watch(what: string, ms: number, abort: AbortController, p: Promise<void>): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = new FerryError('ERR_VERIFY_TIMEOUT', `verifying the ${what} did not finish within ${ms >= 1000 ? `${Math.round(ms / 1000)} s` : `${ms} ms`}`, {
          hint: 'the store\'s storage is stalled or very slow; check it, then restore again',
        });
        abort.abort(err);
        reject(err);
      }, ms);
    });
    return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
  }
}

/** Starts verifying `chain` (the snapshot to restore first, then its ancestors). */
export function verifyForRestore(chain: readonly VerifiableSnapshot[], opts: VerifyOptions = {}): RestoreVerification {
  return new RestoreVerification(chain, opts);
}

/**
 * Cheap checks on one snapshot directory, no hashing: the algorithm is this ferry's, every image
 * file of the manifest is there (pages images with their recorded sizes), nothing was added.
 */
async function checkListing(s: VerifiableSnapshot): Promise<void> {
  const id = s.manifest.id;
  // Manifests older than the xxh3 tree named no algorithm: they were sha256.
  requireAlgorithm(id, s.manifest.algorithm ?? 'sha256');
  const present = new Set(await imageFiles(s.dir));
  for (const name of present) if (!(name in s.manifest.files)) throw snapshotDamaged(id, `${name} was added after the checkpoint`, DAMAGED);
  for (const [name, e] of Object.entries(s.manifest.files)) {
    if (!present.has(name)) throw snapshotDamaged(id, `${name} is missing`, DAMAGED);
    if (!PAGES_IMAGE.test(name)) continue;
    const size = (await stat(join(s.dir, name))).size;
    if (size !== e.size) throw snapshotDamaged(id, `${name} has ${size} bytes, expected ${e.size}`, DAMAGED);
  }
}

/** Hashes `items` together and names the first that differs (in chain order) or cannot be read. */
async function checkFiles(items: Item[], how: { signal: AbortSignal; parallel?: number }): Promise<void> {
  if (!items.length) return;
  let sums: { size: number; hash: string }[];
  try {
    sums = await checksumFiles(items.map((i) => i.path), how.parallel, { signal: how.signal });
  } catch (err) {
    if (how.signal.aborted) throw how.signal.reason;
    if (items.length === 1) throw unreadable(items[0]!, err);
    // Which one failed: the first that cannot be read on its own (these are the small files).
    for (const i of items) {
      const readable = await checksumFiles([i.path], 1, { signal: how.signal }).then(() => true, () => false);
      if (!readable) throw unreadable(i, err);
    }
    throw err;
  }
  items.forEach((i, k) => {
    const bad = fileMismatch(i.name, sums[k], i.expected);
    if (bad) throw snapshotDamaged(i.snapshot, bad, DAMAGED);
  });
}

function unreadable(i: Item, err: unknown): FerryError {
  const why = err instanceof Error ? err.message : String(err);
  return new FerryError(DAMAGED, `snapshot ${i.snapshot} is damaged: ${i.name} cannot be read (${why})`, {
    hint: 'the store\'s storage failed or the file was removed; restore another snapshot, or take a new one',
    cause: err,
  });
}

/**
 * Hashing jobs for the pages images: FERRY_VERIFY_JOBS (a tuning knob), else one core fewer than
 * there are (at least one). CRIU restores memory on one thread; a hashing job on every core made
 * it ≈ 70 ms slower at 1 GiB (×1.13–1.18 of raw), one job left it ×1.05 and still finished long
 * before post-restore (≈ 250 ms of ≈ 530 ms), on a quiet 2-core machine.
 */
function pageJobs(): number {
  const n = Number(process.env['FERRY_VERIFY_JOBS']);
  return Number.isInteger(n) && n > 0 ? n : Math.max(1, availableParallelism() - 1);
}
