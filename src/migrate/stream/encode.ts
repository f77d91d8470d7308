/**
 * The stream strategy's encoder: segments (tail.ts) → wire frames (wire.ts), in order. Each chunk
 * is read into its own buffer, hashed here (its XXH3, its segment's and its file's digests), then
 * — while the policy says so — compressed on the zstd pool, several chunks in flight so that the
 * cores work while the socket drains. The last wire file is the index (segments.ts).
 */
import { open, type FileHandle } from 'node:fs/promises';
import { hash128 } from '../../native/index.js';
import { encodeBegin, encodeDataFrame, encodeEnd, encodeFinal, encodeHeader, FileDigest, MAX_CHUNK, type SnapshotMeta, type WireHeader } from '../wire.js';
import type { CompressionPolicy } from './compress-policy.js';
import { INDEX_NAME, segmentName, type StreamIndex } from './segments.js';
import type { Segment } from './tail.js';
import type { ZstdPool } from './zstd-pool.js';

export interface EncodeOptions {
  policy: CompressionPolicy;
  pool?: ZstdPool | undefined;
  /** Chunks compressing at once (default: 2 per worker). */
  inFlight?: number;
  /** Raw bytes read, as they are. */
  onRaw?: (bytes: number) => void;
  /** The snapshot metadata the destination seals with, known once the dump is complete. */
  meta: () => SnapshotMeta;
}

export interface EncodeTotals { bytes: number; segments: number; files: number }

export async function* encodeStream(header: WireHeader, segments: AsyncIterable<Segment>, o: EncodeOptions, totals: EncodeTotals = { bytes: 0, segments: 0, files: 0 }): AsyncGenerator<Buffer> {
  const depth = o.inFlight ?? 2 * (o.pool?.size ?? 1);
  const files = new Map<string, { digest: FileDigest; size: number }>();
  const handles = new Map<string, FileHandle>();
  let wireFiles = 0;
  let wireTotal = 0;
  try {
    yield encodeHeader(header);
    for await (const seg of segments) {
      let f = files.get(seg.file);
      if (!f) { f = { digest: new FileDigest(seg.size), size: 0 }; files.set(seg.file, f); }
      if (seg.offset !== f.size) throw new Error(`segment of ${seg.file} at ${seg.offset}, after ${f.size} bytes`);
      yield encodeBegin(segmentName(seg.file, seg.offset), seg.size);
      const segDigest = new FileDigest(seg.size);
      let fh = handles.get(seg.file);
      if (!fh && seg.size > 0) { fh = await open(seg.path, 'r'); handles.set(seg.file, fh); }
      const queue: Promise<Buffer[]>[] = [];
      for (let at = 0; at < seg.size;) {
        const n = Math.min(MAX_CHUNK, seg.size - at);
        const raw = Buffer.allocUnsafeSlow(n);
        for (let got = 0; got < n;) {
          const { bytesRead } = await fh!.read(raw, got, n - got, seg.offset + at + got);
          if (bytesRead === 0) throw new Error(`${seg.file} ended at ${seg.offset + at + got} bytes; ${seg.offset + seg.size} were expected`);
          got += bytesRead;
        }
        at += n;
        const h = hash128(raw);
        segDigest.update(raw);
        f.digest.update(raw);
        o.onRaw?.(n);
        if (o.pool && o.policy.compressing()) {
          const pool = o.pool;
          queue.push(pool.compress(raw).then((p) => {
            o.policy.sampled(n, p.packed?.length ?? n, p.ms);
            return encodeDataFrame(h, n, p.packed, p.raw);
          }));
        } else {
          queue.push(Promise.resolve(encodeDataFrame(h, n, undefined, raw)));
        }
        while (queue.length >= depth) yield Buffer.concat(await queue.shift()!);
      }
      while (queue.length > 0) yield Buffer.concat(await queue.shift()!);
      f.size += seg.size;
      yield encodeEnd(seg.size, segDigest.digest());
      wireFiles++;
      wireTotal += seg.size;
      totals.bytes += seg.size;
      totals.segments++;
      if (seg.last) {
        totals.files++;
        const h = handles.get(seg.file);
        handles.delete(seg.file);
        await h?.close();
      }
    }
    // The index: every file, its size and hash, and the metadata to seal with.
    const index: StreamIndex & { meta: SnapshotMeta } = { files: {}, meta: o.meta() };
    for (const [name, f] of files) index.files[name] = { size: f.size, hash: f.digest.digest() };
    const body = Buffer.from(JSON.stringify(index));
    yield encodeBegin(INDEX_NAME, body.length);
    const d = new FileDigest(body.length);
    for (let at = 0; at < body.length; at += MAX_CHUNK) {
      const c = body.subarray(at, Math.min(body.length, at + MAX_CHUNK));
      d.update(c);
      yield Buffer.concat(encodeDataFrame(hash128(c), c.length, undefined, c));
    }
    yield encodeEnd(body.length, d.digest());
    yield encodeFinal(wireFiles + 1, wireTotal + body.length);
  } finally {
    for (const h of handles.values()) await h.close().catch(() => undefined);
  }
}
