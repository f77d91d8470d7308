/**
 * One compressor of the pool (zstd-pool.ts), on its own thread: a chunk in (its buffer moved
 * here), the chunk back compressed — or the raw one moved back when it would not shrink by 1/32.
 */
import { parentPort } from 'node:worker_threads';
import zstd from 'zstd-napi/binding.js';

export interface ZstdJob { id: number; raw: ArrayBuffer; level: number }
export interface ZstdDone { id: number; packed: ArrayBuffer | undefined; packedLength: number; raw: ArrayBuffer; ms: number }

const cctx = new zstd.CCtx();
parentPort?.on('message', (job: ZstdJob) => {
  const t0 = performance.now();
  const raw = Buffer.from(job.raw);
  const room = raw.length - (raw.length >> 5);
  let packed: Buffer | undefined;
  if (room > 0) {
    const out = Buffer.allocUnsafeSlow(room);
    try {
      packed = out.subarray(0, cctx.compress(out, raw, job.level));
    } catch {
      // "Destination buffer is too small": it would not shrink enough.
      packed = undefined;
    }
  }
  const done: ZstdDone = { id: job.id, packed: packed?.buffer as ArrayBuffer | undefined, packedLength: packed?.length ?? 0, raw: job.raw, ms: performance.now() - t0 };
  parentPort!.postMessage(done, packed ? [job.raw, packed.buffer as ArrayBuffer] : [job.raw]);
});
