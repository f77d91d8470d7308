/**
 * The destination's side of a stream transfer (segments.ts): segments become the image files of
 * a pending snapshot as they arrive — each chunk checked (wire.ts) before it is written at its
 * place, each segment against its hash — and the index at the end is checked against what was
 * written (the same files, sizes and hashes, computed here) before the snapshot is sealed with
 * the index's metadata. Any failure (a refused or damaged stream, a cut connection, no progress
 * for `idleMs`, the caller's abort, a full store) removes everything: nothing of it remains.
 */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { readDumpStats } from '../../criu/images/stats.js';
import { HASH_ALGORITHM, type FileSums } from '../../store/checksums.js';
import type { SnapshotManifest } from '../../store/manifest.js';
import { UNSUMMED } from '../../store/receive.js';
import type { PendingSnapshot, Store } from '../../store/store.js';
import { FerryError } from '../../util/errors.js';
import { formatBytes } from '../../util/format.js';
import { DEFAULT_IDLE_MS, FileSink, nextWireEvent, writeError, type ReceiveImagesOptions, type ReceiveImagesResult } from '../receive-images.js';
import { decodeImages, FileDigest, MetaSchema, type SnapshotMeta, type WireEvent } from '../wire.js';
import { INDEX_NAME, parseSegment, StreamIndexSchema } from './segments.js';

/** The index is small (a name, a size and a hash per file, and the metadata). */
const MAX_INDEX_BYTES = 16 << 20;

const IndexSchema = StreamIndexSchema.extend({ meta: MetaSchema });

interface Received { size: number; digest: FileDigest }

export async function receiveStream(store: Store, stream: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, o: ReceiveImagesOptions): Promise<ReceiveImagesResult> {
  const started = Date.now();
  const tier = o.tier ?? 'disk';
  const idleMs = o.idleMs ?? DEFAULT_IDLE_MS;
  const events = decodeImages(stream, o.limits)[Symbol.asyncIterator]();
  const files = new Map<string, Received>();
  let pending: PendingSnapshot | undefined;
  let sink: FileSink | undefined;
  let current: { file: string; offset: number } | 'index' | undefined;
  let indexBody: Buffer[] = [];
  let index: { files: Record<string, { size: number; hash: string }>; meta: SnapshotMeta } | undefined;
  let bytes = 0;
  const invalid = (why: string) => new FerryError('ERR_TRANSFER_INVALID', `stream transfer refused: ${why}`, { hint: 'the sender is not a compatible ferry; nothing was kept' });

  const next = (): Promise<IteratorResult<WireEvent>> =>
    nextWireEvent(events, idleMs, o.signal, () => ` (${files.size} files, ${formatBytes(bytes)} received)`);

  try {
    for (let r = await next(); !r.done; r = await next()) {
      const e = r.value;
      switch (e.type) {
        case 'header':
          if (e.header.migrationId !== o.migrationId) {
            throw new FerryError('ERR_TRANSFER_INVALID', `the image stream belongs to migration ${e.header.migrationId}, not ${o.migrationId}`, { hint: 'send it to its own migration\'s URL' });
          }
          pending = await store.begin(tier, o.name ?? store.newId(), { op: 'receive-images', payload: { migrationId: o.migrationId, from: e.header.meta.host.hostname, stream: true } });
          break;
        case 'begin': {
          if (index) throw invalid(`${e.name} follows the index`);
          if (e.name === INDEX_NAME) {
            if (e.size > MAX_INDEX_BYTES) throw invalid(`an index of ${e.size} bytes`);
            current = 'index';
            indexBody = [];
            break;
          }
          const seg = parseSegment(e.name);
          if (!seg) throw invalid(`${JSON.stringify(e.name)} is not a segment (FILE@OFFSET)`);
          if (UNSUMMED.test(seg.file) || seg.file === INDEX_NAME) throw invalid(`${seg.file} cannot be an image file`);
          const f = files.get(seg.file);
          if ((f?.size ?? 0) !== seg.offset) throw invalid(`${seg.file}'s segment at ${seg.offset} comes after ${f?.size ?? 0} bytes of it`);
          if (!f) files.set(seg.file, { size: 0, digest: new FileDigest(e.size) });
          const path = join(pending!.dir, seg.file);
          try { sink = f ? FileSink.wrap(await open(path, 'r+'), seg.file) : await FileSink.create(pending!.dir, seg.file); } catch (err) { throw writeError(err, seg.file); }
          current = seg;
          break;
        }
        case 'data':
          if (current === 'index') { indexBody.push(e.data); break; }
          try { await sink!.write(e.data, current!.offset + e.offset); } catch (err) { throw writeError(err, e.name); }
          files.get(current!.file)!.digest.update(e.data);
          bytes += e.data.length;
          o.onProgress?.({ bytes, files: files.size, totalBytes: undefined });
          break;
        case 'end': {
          if (current === 'index') {
            index = parseIndex(Buffer.concat(indexBody), invalid);
            checkIndex(index.files, files);
          } else {
            const s = sink!;
            sink = undefined;
            try { await s.close(); } catch (err) { throw writeError(err, current!.file); }
            files.get(current!.file)!.size += e.size;
          }
          current = undefined;
          break;
        }
        case 'final': {
          if (!index) throw invalid('the stream ends without its index');
          const p = pending!;
          const meta = index.meta;
          const sums: FileSums = {};
          for (const [name, f] of Object.entries(index.files)) sums[name] = f;
          const manifest: SnapshotManifest = {
            format: 1, id: p.id, name: o.name ?? meta.name, parent: undefined, tier, createdAt: new Date().toISOString(),
            target: meta.target, host: meta.host, criu: { version: meta.criuVersion }, options: meta.options,
            stats: await readDumpStats(p.dir).catch(() => undefined),
            timings: { totalMs: Date.now() - started, criuMs: meta.criuMs ?? 0, checksumMs: 0 },
            bytes: Object.values(sums).reduce((a, f) => a + f.size, 0),
            algorithm: HASH_ALGORITHM,
            files: sums,
          };
          pending = undefined;
          await p.commit(manifest);
          return { snapshot: p.id, tier, bytes, wireBytes: e.wireBytes, files: files.size, ms: Date.now() - started };
        }
      }
    }
    throw new FerryError('ERR_INTERNAL', 'the image stream ended without its final event');
  } catch (err) {
    const cleanup: unknown[] = [];
    events.return?.(undefined).catch(() => undefined);
    if (sink) await sink.discard().catch((e: unknown) => cleanup.push(e));
    if (pending) await pending.abandon().catch((e: unknown) => cleanup.push(e));
    if (err instanceof FerryError) for (const c of cleanup) err.addCleanupError(c);
    throw err;
  }
}

function parseIndex(body: Buffer, invalid: (why: string) => FerryError): { files: Record<string, { size: number; hash: string }>; meta: SnapshotMeta } {
  let raw: unknown;
  try { raw = JSON.parse(body.toString('utf8')); } catch { throw invalid('the index is not JSON'); }
  const r = IndexSchema.safeParse(raw);
  if (!r.success) throw invalid(`the index's ${r.error.issues[0]?.path.map(String).join('.') || 'body'} is invalid (${r.error.issues[0]?.message ?? '?'})`);
  return r.data as { files: Record<string, { size: number; hash: string }>; meta: SnapshotMeta };
}

/** The index lists exactly the files written, with the sizes and hashes computed here. */
function checkIndex(listed: Record<string, { size: number; hash: string }>, got: Map<string, Received>): void {
  for (const [name, f] of got) {
    const l = listed[name];
    if (!l) throw new FerryError('ERR_TRANSFER_INVALID', `stream transfer refused: ${name} came but the index does not list it`);
    if (l.size !== f.size) throw new FerryError('ERR_TRANSFER_CORRUPT', `${name}: ${f.size} bytes came, the sender's index says ${l.size}`, { hint: 'nothing was kept; send it again' });
    const ours = f.digest.digest();
    if (ours !== l.hash) throw new FerryError('ERR_TRANSFER_CORRUPT', `${name} fails its ${HASH_ALGORITHM} check against the sender's index (received ${ours.slice(0, 12)}…, sent ${l.hash.slice(0, 12)}…)`, { hint: 'nothing was kept; send it again' });
  }
  const missing = Object.keys(listed).filter((n) => !got.has(n));
  if (missing.length) throw new FerryError('ERR_TRANSFER_INVALID', `stream transfer refused: files the index lists never came: ${missing.slice(0, 5).join(', ')}`);
}
