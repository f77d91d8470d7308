/**
 * The source's side of a stream transfer: started on the images directory before CRIU writes
 * into it, it sends the pages as CRIU appends them (tail.ts → encode.ts → one PUT, send-images.ts's
 * putImageStream: backpressure, stall watchdog, abort); `complete()` — at CRIU's post-dump, the
 * images complete — sends the rest and the index, and answers the destination's sealed snapshot.
 * Compression follows the policy (compress-policy.ts) on a zstd pool.
 */
import { Readable } from 'node:stream';
import type { Tier } from '../../store/manifest.js';
import { errnoCode, FerryError } from '../../util/errors.js';
import { formatBytes } from '../../util/format.js';
import type { ReceiveImagesResult } from '../receive-images.js';
import { putImageStream } from '../send-images.js';
import { WIRE_VERSION, type SnapshotMeta } from '../wire.js';
import { CompressionPolicy, type CompressionReport } from './compress-policy.js';
import { encodeStream, type EncodeTotals } from './encode.js';
import { STREAM_CONTENT_TYPE } from './segments.js';
import { ImageTail, type TailOptions } from './tail.js';
import { ZstdPool } from './zstd-pool.js';

export interface StreamSendOptions {
  url: string;
  token?: string | undefined;
  migrationId: string;
  tier?: Tier;
  /** 'auto': measured (compress-policy.ts); 'forced'; 'off'. */
  compress: 'auto' | 'forced' | 'off';
  /** What the header carries before the dump (the index carries the final metadata). */
  headerMeta: SnapshotMeta;
  signal: AbortSignal;
  stallMs?: number;
  onProgress?: (rawBytes: number) => void;
  tail?: TailOptions;
  /** Compressing workers (default: one per core). */
  workers?: number;
}

export interface StreamSendResult {
  bytes: number;
  wireBytes: number;
  files: number;
  segments: number;
  ms: number;
  snapshot: string;
  /** Bytes sent before the dump completed (while CRIU still wrote). */
  bytesBeforeComplete: number;
  /** From complete() to the destination's answer. */
  tailMs: number;
  compression: CompressionReport;
  destination: ReceiveImagesResult;
}

export class StreamSender {
  private tail: ImageTail | undefined;
  private pool: ZstdPool | undefined;
  private policy: CompressionPolicy | undefined;
  private answer: Promise<ReceiveImagesResult> | undefined;
  private meta: SnapshotMeta | undefined;
  private readonly totals: EncodeTotals = { bytes: 0, segments: 0, files: 0 };
  private raw = 0;
  private wire = 0;
  private started = 0;
  private readonly stop = new AbortController();

  constructor(private readonly o: StreamSendOptions) {
    // The compressors start now, while the workload runs: not during the dump.
    if (o.compress !== 'off') this.pool = new ZstdPool(o.workers);
  }

  /** Starts sending what CRIU writes into `dir` (call before CRIU starts). */
  start(dir: string): void {
    if (this.answer) throw new FerryError('ERR_INTERNAL', 'a stream transfer was started twice');
    this.started = Date.now();
    this.tail = new ImageTail(dir, this.o.tail);
    this.policy = new CompressionPolicy(this.o.compress, this.pool?.size ?? 0);
    const policy = this.policy;
    const frames = encodeStream({ version: WIRE_VERSION, migrationId: this.o.migrationId, meta: this.o.headerMeta }, this.tail.segments(), {
      policy, pool: this.pool,
      onRaw: (n) => { this.raw += n; this.o.onProgress?.(this.raw); },
      meta: () => {
        if (!this.meta) throw new FerryError('ERR_INTERNAL', 'the stream ended before the dump completed');
        return this.meta;
      },
    }, this.totals);
    const signal = AbortSignal.any([this.o.signal, this.stop.signal]);
    this.answer = putImageStream({
      url: this.o.url, token: this.o.token, migrationId: this.o.migrationId, signal, contentType: STREAM_CONTENT_TYPE,
      ...(this.o.tier ? { destination: { tier: this.o.tier } } : {}),
      ...(this.o.stallMs !== undefined ? { stallMs: this.o.stallMs } : {}),
    }, Readable.from(frames, { objectMode: true, highWaterMark: 2 }), {
      describe: () => `${this.totals.segments} segments, ${formatBytes(this.raw)}`,
      onFrame: (n) => { this.wire += n; policy.sent(n); },
      readError: (err) => new FerryError('ERR_TRANSFER_FAILED', `streaming the images in ${dir} failed: ${errnoCode(err) ?? err.message}`, { cause: err }),
    });
    this.answer.catch(() => undefined);
  }

  /** The dump is complete (CRIU's post-dump): sends the rest; answers once the destination sealed it. */
  async complete(meta: SnapshotMeta): Promise<StreamSendResult> {
    if (!this.answer || !this.tail || !this.policy) throw new FerryError('ERR_INTERNAL', 'a stream transfer was completed before it started');
    const before = this.raw;
    const t0 = Date.now();
    this.meta = meta;
    this.policy.linkOpen();
    this.tail.complete();
    const d = await this.answer;
    return {
      bytes: this.totals.bytes, wireBytes: this.wire, files: this.totals.files, segments: this.totals.segments, ms: Date.now() - this.started,
      snapshot: d.snapshot, bytesBeforeComplete: before, tailMs: Date.now() - t0, compression: this.policy.report(), destination: d,
    };
  }

  /** What was decided about compression so far. */
  compression(): CompressionReport | undefined {
    return this.policy?.report();
  }

  /** Ends the transfer (if it still runs: the destination removes what it got) and the pool. */
  async close(reason = 'the migration ended'): Promise<void> {
    const why = new FerryError('ERR_TRANSFER_ABORTED', `the stream transfer was stopped: ${reason}`, { hint: 'the destination removes what it received' });
    this.tail?.stop(why);
    this.stop.abort(why);
    await this.answer?.catch(() => undefined);
    await this.pool?.close();
  }
}
