/**
 * The destination's side of an image transfer: a wire stream (wire.ts) becomes a sealed snapshot
 * of this store, or nothing.
 *
 * The header is checked first (its migration id, its metadata) and so is room: when it declares
 * its size, a tier that cannot hold it is refused (ERR_STORE_FULL; for the memory tier also its
 * budget and the host's memory reserve) before anything is written. The files are then written
 * into a pending snapshot (store.begin: a `.tmp-*` directory with an intent record) as they
 * arrive — every chunk checked against its XXH3 before it is written, every file against its
 * hash (the manifest's form) at its end — and the snapshot is sealed with a manifest built from
 * the sender's metadata and the hashes computed here. On any failure (a refused or damaged
 * stream, a cut connection, no progress for `idleMs`, the caller's abort, a full disk) the
 * pending snapshot is abandoned: nothing of it remains in the store.
 */
import { open, statfs, symlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { readDumpStats } from '../criu/images/stats.js';
import { placeSnapshot, type BudgetOverrides } from '../store/budget.js';
import { HASH_ALGORITHM, type FileSums } from '../store/checksums.js';
import type { SnapshotManifest, Tier } from '../store/manifest.js';
import { PARENT_LINK, parentLinkTarget } from '../store/parent-link.js';
import { UNSUMMED } from '../store/receive.js';
import type { PendingSnapshot, Store } from '../store/store.js';
import { errnoCode, FerryError } from '../util/errors.js';
import { formatBytes } from '../util/format.js';
import { decodeImages, type WireEvent, type WireHeader, type WireLimits } from './wire.js';

export interface ReceiveImagesOptions {
  /** The migration this transfer belongs to: the stream's header must name it. */
  migrationId: string;
  /** Tier to write into (default disk). */
  tier?: Tier;
  /** The new snapshot's id (default: a new id); also its manifest name (default: the sender's name). */
  name?: string;
  /**
   * A snapshot of this store, in the same tier, the images build on (an incremental transfer's
   * PE_PARENT pages): the manifest names it and a `parent` link to it is made. The caller checks it.
   */
  parent?: string;
  /** Stops the transfer (ERR_TRANSFER_ABORTED, or the signal's reason when it is a FerryError). */
  signal?: AbortSignal;
  /** No event from the stream for this long: ERR_TRANSFER_STALLED (default 30 s). */
  idleMs?: number;
  limits?: Partial<WireLimits>;
  /** The memory tier's budget, as a checkpoint would take it (never spills: the tier is the caller's choice). */
  budget?: BudgetOverrides;
  onProgress?: (p: { bytes: number; files: number; totalBytes: number | undefined }) => void;
}

export interface ReceiveImagesResult {
  /** The id of the sealed snapshot. */
  snapshot: string;
  tier: Tier;
  /** Raw bytes of the files received. */
  bytes: number;
  /** Bytes of the stream (smaller than `bytes` when compressed). */
  wireBytes: number;
  files: number;
  ms: number;
}

export const DEFAULT_IDLE_MS = 30_000;
/** Room kept free beside the declared size (the manifest, file system overhead). */
const ROOM_MARGIN = 4 << 20;
/** Positioned writes in flight per file (reading the network and writing the disk overlap). */
const WRITES_IN_FLIGHT = 4;

export function aborted(signal: AbortSignal): FerryError {
  const r: unknown = signal.reason;
  if (r instanceof FerryError) return r;
  return new FerryError('ERR_TRANSFER_ABORTED', `the image transfer was cancelled${r instanceof Error ? `: ${r.message}` : ''}`, { hint: 'nothing was kept' });
}

/** Refuses, before anything is written, a transfer the tier has no room for. */
export async function checkRoom(store: Store, tier: Tier, bytes: number, budget: BudgetOverrides): Promise<void> {
  await store.ensure(tier);
  if (tier === 'memory') await placeSnapshot(store, 'memory', bytes, { ...budget, spillToDisk: false });
  const fs = await statfs(store.tierDir(tier));
  const free = fs.bavail * fs.bsize;
  if (bytes + ROOM_MARGIN > free) {
    throw new FerryError('ERR_STORE_FULL', `the ${tier} tier has ${formatBytes(free)} free; the images coming need ${formatBytes(bytes)}`, {
      hint: tier === 'memory' ? 'receive into the disk tier, or free memory-tier space (`ferry snapshots rm`)' : 'free space in the destination\'s store, or use a store on a larger file system',
      detail: `free ${free} bytes, needed ${bytes} bytes plus a margin of ${ROOM_MARGIN}`,
    });
  }
}

export function writeError(err: unknown, where: string): unknown {
  const code = errnoCode(err);
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new FerryError('ERR_STORE_FULL', `the store ran out of space while receiving ${where}`, { cause: err, hint: 'free space in the destination\'s store; nothing was kept' });
  }
  if (code !== undefined) return new FerryError('ERR_STORE_UNWRITABLE', `cannot write ${where} into the store: ${code}`, { cause: err, hint: 'check the destination\'s store is writable; nothing was kept' });
  return err;
}

/** The file being written: positioned writes, a few in flight. */
export class FileSink {
  private readonly inflight = new Set<Promise<unknown>>();
  private failed: Error | undefined;

  private constructor(private readonly fh: FileHandle, readonly name: string) {}

  static async create(dir: string, name: string): Promise<FileSink> {
    return new FileSink(await open(join(dir, name), 'wx', 0o600), name);
  }

  /** A file opened by the caller (a stream transfer continues a file it began earlier). */
  static wrap(fh: FileHandle, name: string): FileSink {
    return new FileSink(fh, name);
  }

  private check(): void {
    if (this.failed !== undefined) throw this.failed;
  }

  /** A short write (the disk filling up) is continued: the next one says why it stopped. */
  private async writeFully(data: Buffer, position: number): Promise<void> {
    for (let off = 0; off < data.length;) {
      const { bytesWritten } = await this.fh.write(data, off, data.length - off, position + off);
      if (bytesWritten === 0) throw new Error(`nothing written at byte ${position + off}`);
      off += bytesWritten;
    }
  }

  async write(data: Buffer, position: number): Promise<void> {
    this.check();
    const p = this.writeFully(data, position).catch((err: unknown) => { this.failed ??= err instanceof Error ? err : new Error(String(err)); }).finally(() => this.inflight.delete(p));
    this.inflight.add(p);
    while (this.inflight.size >= WRITES_IN_FLIGHT) await Promise.race(this.inflight);
    this.check();
  }

  /** Waits for the writes, closes; throws the first write error. */
  async close(): Promise<void> {
    await Promise.all(this.inflight);
    await this.fh.close();
    this.check();
  }

  /** After a failure: waits for the writes and closes, quietly. */
  async discard(): Promise<void> {
    await Promise.all(this.inflight);
    await this.fh.close().catch(() => undefined);
  }
}

/**
 * Receives the image stream `stream` into `store` as a new sealed snapshot; see the file's
 * comment. Throws a FerryError on any failure, after removing everything it wrote.
 */
export async function receiveImages(store: Store, stream: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, o: ReceiveImagesOptions): Promise<ReceiveImagesResult> {
  const started = Date.now();
  const tier = o.tier ?? 'disk';
  const idleMs = o.idleMs ?? DEFAULT_IDLE_MS;
  const events = decodeImages(stream, o.limits)[Symbol.asyncIterator]();
  let pending: PendingSnapshot | undefined;
  let sink: FileSink | undefined;
  let header: WireHeader | undefined;
  let bytes = 0;
  let count = 0;
  const sums: FileSums = {};

  /** The next event, or a stall / abort error. */
  const next = (): Promise<IteratorResult<WireEvent>> =>
    nextWireEvent(events, idleMs, o.signal, () => (header ? ` (${count} files, ${formatBytes(bytes)} received)` : ''));

  try {
    for (let r = await next(); !r.done; r = await next()) {
      const e = r.value;
      switch (e.type) {
        case 'header': {
          header = e.header;
          if (header.migrationId !== o.migrationId) {
            throw new FerryError('ERR_TRANSFER_INVALID', `the image stream belongs to migration ${header.migrationId}, not ${o.migrationId}`, { hint: 'send it to its own migration\'s URL' });
          }
          if (header.totalBytes !== undefined) await checkRoom(store, tier, header.totalBytes, o.budget ?? {});
          pending = await store.begin(tier, o.name ?? store.newId(), { op: 'receive-images', payload: { migrationId: o.migrationId, from: header.meta.host.hostname } });
          break;
        }
        case 'begin':
          try { sink = await FileSink.create(pending!.dir, e.name); } catch (err) { throw writeError(err, e.name); }
          break;
        case 'data':
          try { await sink!.write(e.data, e.offset); } catch (err) { throw writeError(err, e.name); }
          bytes += e.data.length;
          o.onProgress?.({ bytes, files: count, totalBytes: header?.totalBytes });
          break;
        case 'end': {
          const s = sink!;
          sink = undefined;
          try { await s.close(); } catch (err) { throw writeError(err, e.name); }
          if (!UNSUMMED.test(e.name)) sums[e.name] = { size: e.size, hash: e.hash };
          count++;
          break;
        }
        case 'final': {
          const p = pending!;
          const meta = header!.meta;
          if (o.parent !== undefined) await symlink(parentLinkTarget(o.parent), join(p.dir, PARENT_LINK));
          const manifest: SnapshotManifest = {
            format: 1,
            id: p.id,
            name: o.name ?? meta.name,
            parent: o.parent,
            tier,
            createdAt: new Date().toISOString(),
            target: meta.target,
            host: meta.host,
            criu: { version: meta.criuVersion },
            options: meta.options,
            // CRIU's stats travel as the image file stats-dump, when the sender had it.
            stats: await readDumpStats(p.dir).catch(() => undefined),
            timings: { totalMs: Date.now() - started, criuMs: meta.criuMs ?? 0, checksumMs: 0 },
            bytes: Object.values(sums).reduce((a, f) => a + f.size, 0),
            algorithm: HASH_ALGORITHM,
            files: sums,
          };
          pending = undefined;
          await p.commit(manifest);
          return { snapshot: p.id, tier, bytes: e.bytes, wireBytes: e.wireBytes, files: e.files, ms: Date.now() - started };
        }
      }
    }
    // decodeImages ends only after its final frame (or throws).
    throw new FerryError('ERR_INTERNAL', 'the image stream ended without its final event');
  } catch (err) {
    const cleanup: unknown[] = [];
    // The decoder may be waiting on its source (a stall, an abort): do not wait for it.
    events.return?.(undefined).catch(() => undefined);
    if (sink) await sink.discard().catch((e: unknown) => cleanup.push(e));
    if (pending) await pending.abandon().catch((e: unknown) => cleanup.push(e));
    if (err instanceof FerryError) for (const c of cleanup) err.addCleanupError(c);
    throw err;
  }
}

/**
 * The next event of an image stream, or ERR_TRANSFER_STALLED after `idleMs` without one (what was
 * received so far from `soFar`), or the abort's error: every receiver's watchdog.
 */
export async function nextWireEvent(
  events: AsyncIterator<WireEvent>, idleMs: number, signal: AbortSignal | undefined, soFar: () => string,
): Promise<IteratorResult<WireEvent>> {
  if (signal?.aborted) throw aborted(signal);
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new FerryError('ERR_TRANSFER_STALLED', `the image stream sent nothing for ${Math.round(idleMs / 1000)} s${soFar()}`, {
      hint: 'the sender or the network stopped; nothing was kept',
    })), idleMs);
    if (signal) {
      onAbort = () => reject(aborted(signal));
      signal.addEventListener('abort', onAbort, { once: true });
    }
  });
  try {
    return await Promise.race([events.next(), stop]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}
