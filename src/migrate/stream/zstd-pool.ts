/**
 * zstd on the other cores: a pool of worker threads (zstd-worker.ts), one per core (at most
 * MAX_WORKERS), each compressing whole chunks at a fast level. A chunk's buffer is moved to the
 * worker and back (no copy), so it must own its whole ArrayBuffer (Buffer.allocUnsafeSlow).
 * Results come back per chunk; the caller keeps the order.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { PROJECT_ROOT } from '../../criu/binary.js';
import { FerryError } from '../../util/errors.js';
import type { ZstdDone, ZstdJob } from './zstd-worker.js';

export const MAX_WORKERS = 4;
/** zstd's fast level: ~0.5 GB/s a core on compressible pages. */
export const FAST_LEVEL = 1;

export interface Packed {
  /** The raw chunk (its buffer back from the worker). */
  raw: Buffer;
  /** The compressed bytes, or undefined when they would not be smaller by 1/32. */
  packed: Buffer | undefined;
  ms: number;
}

export class ZstdPool {
  private readonly workers: Worker[] = [];
  private readonly waiting = new Map<number, { resolve: (p: Packed) => void; reject: (e: Error) => void }>();
  private next = 0;
  private failed: Error | undefined;

  constructor(readonly size = Math.max(1, Math.min(MAX_WORKERS, availableParallelism())), private readonly level = FAST_LEVEL) {
    for (let i = 0; i < size; i++) {
      // tsc's output of zstd-worker.ts (found from the project's root: the CLI runs as a bundle).
      const w = new Worker(join(PROJECT_ROOT, 'dist', 'migrate', 'stream', 'zstd-worker.js'));
      w.on('message', (d: ZstdDone) => {
        const p = this.waiting.get(d.id);
        this.waiting.delete(d.id);
        p?.resolve({ raw: Buffer.from(d.raw), packed: d.packed ? Buffer.from(d.packed, 0, d.packedLength) : undefined, ms: d.ms });
      });
      w.on('error', (err) => this.fail(err));
      w.unref();
      this.workers.push(w);
    }
  }

  private fail(err: unknown): void {
    this.failed ??= new FerryError('ERR_INTERNAL', `a zstd worker failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    for (const p of this.waiting.values()) p.reject(this.failed);
    this.waiting.clear();
  }

  /** Compresses `raw` on a worker; `raw` is unusable until the promise gives it back. */
  compress(raw: Buffer): Promise<Packed> {
    if (this.failed) return Promise.reject(this.failed);
    if (raw.byteOffset !== 0 || raw.length !== raw.buffer.byteLength) throw new RangeError('a pooled chunk must own its whole ArrayBuffer');
    const id = this.next++;
    const job: ZstdJob = { id, raw: raw.buffer as ArrayBuffer, level: this.level };
    return new Promise<Packed>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.workers[id % this.workers.length]!.postMessage(job, [job.raw]);
    });
  }

  async close(): Promise<void> {
    this.fail(new Error('the pool was closed'));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
