/**
 * The wire format of an image transfer between agents: one CRIU image directory, streamed as a
 * sequence of frames, checked chunk by chunk and file by file, never held whole.
 *
 *   stream := MAGIC "FERRYWI1" | HEADER | { BEGIN { DATA } END } | FINAL
 *   frame  := u8 type | u8 flags | u16 zero | u32 payload length | payload      (big-endian)
 *
 *   HEADER (1)  JSON (UTF-8, ≤ 4 MiB): WireHeader — version, migration id, what the stream holds,
 *               and the SnapshotMeta the destination needs to seal a manifest.       | XXH3
 *   BEGIN  (2)  u64 size | file name (UTF-8, 1–255 bytes; a plain name, as in a snapshot dir) | XXH3
 *   DATA   (3)  16-byte XXH3-128 of the raw bytes | u32 raw length (1 … 1 MiB) | body
 *               flags bit 0: the body is one zstd frame of the raw bytes (sent only when smaller)
 *   END    (4)  u64 size | 16-byte file hash in the manifest's form (HASH_ALGORITHM: XXH3-128 of
 *               the XXH3-128s of its 4 KiB blocks), so the check is end to end           | XXH3
 *   FINAL  (5)  u32 files | u64 bytes (raw bytes of all files)                          | XXH3
 *
 * "| XXH3": control frames end with the XXH3-128 of the rest of their payload, so a flipped bit
 * anywhere — a name, a size, the header's metadata — is caught, not only in the data.
 *
 * The decoder refuses, with a FerryError naming the byte offset: a missing magic, an unknown
 * frame type or flag, a frame longer than its type allows (checked before it is buffered), a
 * frame out of order, an unsafe or repeated name, more data than a file declared, a chunk whose
 * XXH3 differs (ERR_TRANSFER_CORRUPT), a file whose hash differs (ERR_TRANSFER_CORRUPT), a final
 * frame whose counts differ, anything after it, and a stream that ends — or breaks — before it
 * (ERR_TRANSFER_TRUNCATED). Data it yields has passed its chunk check.
 */
import { z } from 'zod';
import zstd from 'zstd-napi/binding.js';
import { hash128, hashEach } from '../native/index.js';
import { BLOCK, HASH_ALGORITHM, type FileSums } from '../store/checksums.js';
import { ManifestSchema, SNAPSHOT_ID_PATTERN, type RecordedOptions, type SnapshotManifest } from '../store/manifest.js';
import { FerryError } from '../util/errors.js';
import { MIGRATION_ID_PATTERN } from './protocol.js';

export const WIRE_MAGIC = Buffer.from('FERRYWI1');
export const WIRE_VERSION = 1;
/** The Content-Type of a stream on HTTP. */
export const WIRE_CONTENT_TYPE = 'application/vnd.ferry.images';

export const FRAME = { header: 1, begin: 2, data: 3, end: 4, final: 5 } as const;
const FRAME_HEAD = 8;
const HASH_BYTES = 16;
const FLAG_ZSTD = 1;
/** Largest raw chunk (and the sender's chunk size: a multiple of BLOCK, so chunks hash as blocks). */
export const MAX_CHUNK = 1 << 20;
const MAX_NAME_BYTES = 255;

/** Migration ids (protocol.ts's). */
export const MIGRATION_ID_RE = MIGRATION_ID_PATTERN;

/** What a decoder accepts at most; every frame is bounded before it is buffered. */
export interface WireLimits {
  headerBytes: number;
  chunkBytes: number;
  fileBytes: number;
  totalBytes: number;
  files: number;
}

export const DEFAULT_LIMITS: WireLimits = {
  headerBytes: 4 << 20,
  chunkBytes: MAX_CHUNK,
  fileBytes: 2 ** 44,
  totalBytes: 2 ** 46,
  files: 100_000,
};

/**
 * What the destination needs, beside the images, to seal them as a snapshot of its own: the
 * manifest's fields that describe what was checkpointed, how, by which CRIU, on which host.
 */
export interface SnapshotMeta {
  /** The user-given name of the snapshot on the source (the manifest's `name`), if any. */
  name?: string | undefined;
  target: SnapshotManifest['target'];
  options: RecordedOptions;
  criuVersion: string;
  /** The host that took it (its facts decide where it can be restored). */
  host: SnapshotManifest['host'];
  /** How long CRIU took on the source (the manifest's timings.criuMs). */
  criuMs?: number;
  /** Size and hash (HASH_ALGORITHM) of image files, when the sender knows them beforehand. */
  files?: FileSums;
}

export interface WireHeader {
  version: typeof WIRE_VERSION;
  migrationId: string;
  /** Raw bytes of all files (lets the destination refuse for lack of room before writing). */
  totalBytes?: number;
  fileCount?: number;
  meta: SnapshotMeta;
}

const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
export const MetaSchema = z.strictObject({
  name: z.string().regex(SNAPSHOT_ID_PATTERN, 'not a snapshot name').optional(),
  target: ManifestSchema.shape.target,
  options: ManifestSchema.shape.options,
  criuVersion: z.string().min(1).max(64),
  host: ManifestSchema.shape.host,
  criuMs: count.optional(),
  files: z.record(z.string(), z.strictObject({ size: count, hash: z.string().regex(/^[0-9a-f]{32}$/, 'not a 128-bit hex hash') })).optional(),
});
const HeaderSchema = z.strictObject({
  version: z.literal(WIRE_VERSION),
  migrationId: z.string().regex(MIGRATION_ID_RE, 'not a migration id'),
  totalBytes: count.optional(),
  fileCount: count.optional(),
  meta: MetaSchema,
});

/** What a decoder yields, in stream order. */
export type WireEvent =
  | { type: 'header'; header: WireHeader }
  | { type: 'begin'; name: string; size: number }
  /** Raw bytes of the open file at `offset`, chunk checked. */
  | { type: 'data'; name: string; offset: number; data: Buffer }
  /** The file is complete; `hash` (HASH_ALGORITHM, hex) was computed here and matched the sender's. */
  | { type: 'end'; name: string; size: number; hash: string }
  | { type: 'final'; files: number; bytes: number; wireBytes: number };

// ---------------------------------------------------------------------------------------------
// Names and hashes

/** Why `name` cannot be a file of a snapshot directory, or undefined when it can. */
export function badFileName(name: string): string | undefined {
  if (name === '' || name === '.' || name === '..') return 'is empty, . or ..';
  if (name.includes('/')) return "contains '/'";
  if (name.includes('\0')) return 'contains NUL';
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) return `is longer than ${MAX_NAME_BYTES} bytes`;
  // The destination writes these itself: a sender never provides them.
  if (name === 'manifest.json' || name === 'parent') return 'is reserved for the snapshot itself';
  return undefined;
}

/**
 * The manifest's file hash (HASH_ALGORITHM), computed as the bytes stream by: XXH3-128 of each
 * 4 KiB block (the last may be short), then XXH3-128 of their concatenation.
 */
export class FileDigest {
  private blocks: Buffer;
  private used = 0;
  private carry: Buffer | undefined;

  constructor(sizeHint = 0) {
    this.blocks = Buffer.allocUnsafe(Math.max(1, Math.ceil(Math.min(sizeHint, 2 ** 40) / BLOCK)) * HASH_BYTES);
  }

  /** Room for `n` more block hashes. */
  private reserve(n: number): void {
    if (this.used + n * HASH_BYTES <= this.blocks.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.blocks.length * 2, this.used + n * HASH_BYTES));
    this.blocks.copy(grown, 0, 0, this.used);
    this.blocks = grown;
  }

  private push(block: Uint8Array): void {
    this.reserve(1);
    hash128(block).copy(this.blocks, this.used);
    this.used += HASH_BYTES;
  }

  update(data: Buffer): void {
    let off = 0;
    if (this.carry) {
      const need = BLOCK - this.carry.length;
      if (data.length < need) { this.carry = Buffer.concat([this.carry, data]); return; }
      this.push(Buffer.concat([this.carry, data.subarray(0, need)]));
      this.carry = undefined;
      off = need;
    }
    // The whole blocks in one native call (one per block cost most of the hashing's time).
    const whole = Math.floor((data.length - off) / BLOCK);
    if (whole > 0) {
      this.reserve(whole);
      this.used += hashEach(data.subarray(off, off + whole * BLOCK), BLOCK, this.blocks, this.used) * HASH_BYTES;
      off += whole * BLOCK;
    }
    if (off < data.length) this.carry = Buffer.from(data.subarray(off));
  }

  /** The file hash, hex (an empty file hashes an empty block list, as checksums.ts does). */
  digest(): string {
    if (this.carry) { this.push(this.carry); this.carry = undefined; }
    return hash128(this.blocks.subarray(0, this.used)).toString('hex');
  }
}

// ---------------------------------------------------------------------------------------------
// Encoder

function frame(type: number, flags: number, payload: readonly Buffer[]): Buffer[] {
  const head = Buffer.alloc(FRAME_HEAD);
  head.writeUInt8(type, 0);
  head.writeUInt8(flags, 1);
  head.writeUInt32BE(payload.reduce((a, p) => a + p.length, 0), 4);
  return [head, ...payload];
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

/** A control frame's payload: its body, then the body's XXH3-128. */
function sealed(...parts: Buffer[]): Buffer[] {
  const body = Buffer.concat(parts);
  return [body, hash128(body)];
}

export function encodeHeader(h: WireHeader): Buffer {
  return Buffer.concat([WIRE_MAGIC, ...frame(FRAME.header, 0, sealed(Buffer.from(JSON.stringify(h))))]);
}

export function encodeBegin(name: string, size: number): Buffer {
  return Buffer.concat(frame(FRAME.begin, 0, sealed(u64(size), Buffer.from(name))));
}

export function encodeEnd(size: number, hash: string): Buffer {
  return Buffer.concat(frame(FRAME.end, 0, sealed(u64(size), Buffer.from(hash, 'hex'))));
}

export function encodeFinal(files: number, bytes: number): Buffer {
  const n = Buffer.alloc(4);
  n.writeUInt32BE(files);
  return Buffer.concat(frame(FRAME.final, 0, sealed(n, u64(bytes))));
}

/**
 * Compresses chunks with zstd when that is asked for and pays: a chunk is sent compressed only
 * when it shrinks by 1/32 or more; after a run of chunks that did not, only every 16th is tried
 * (pages of random or already compressed data cost a compression attempt each otherwise).
 */
export class ChunkCompressor {
  private readonly cctx = new zstd.CCtx();
  private misses = 0;
  private skipped = 0;

  constructor(private readonly level = 1) {}

  /** The compressed body, or undefined when it does not pay. */
  compress(raw: Buffer): Buffer | undefined {
    if (this.misses >= 4 && ++this.skipped % 16 !== 0) return undefined;
    const room = raw.length - (raw.length >> 5);
    if (room <= 0) return undefined;
    const out = Buffer.allocUnsafe(room);
    let n: number;
    try {
      n = this.cctx.compress(out, raw, this.level);
    } catch {
      // zstd: "Destination buffer is too small" — it would not shrink enough.
      this.misses++;
      return undefined;
    }
    this.misses = 0;
    this.skipped = 0;
    return out.subarray(0, n);
  }

  /** A new file: its data may compress differently. */
  reset(): void {
    this.misses = 0;
    this.skipped = 0;
  }
}

/** One DATA frame (≤ MAX_CHUNK raw bytes), as a list of buffers (the raw bytes are not copied). */
export function encodeData(raw: Buffer, compressor?: ChunkCompressor): Buffer[] {
  if (raw.length === 0 || raw.length > MAX_CHUNK) throw new RangeError(`a chunk holds 1 to ${MAX_CHUNK} bytes, not ${raw.length}`);
  const packed = compressor?.compress(raw);
  return encodeDataFrame(hash128(raw), raw.length, packed, raw);
}

/**
 * One DATA frame from parts computed elsewhere (a streaming sender hashes on its thread and
 * compresses on others): the raw bytes' XXH3-128, their length, and the body — `packed` (one
 * zstd frame of them, smaller) or else `raw`.
 */
export function encodeDataFrame(rawHash: Buffer, rawLength: number, packed: Buffer | undefined, raw?: Buffer): Buffer[] {
  if (rawLength === 0 || rawLength > MAX_CHUNK) throw new RangeError(`a chunk holds 1 to ${MAX_CHUNK} bytes, not ${rawLength}`);
  const body = packed ?? raw;
  if (!body) throw new RangeError('a data frame needs its raw or its packed bytes');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(rawLength);
  return frame(FRAME.data, packed ? FLAG_ZSTD : 0, [rawHash, len, body]);
}

/** A file to encode: its name, its size, and its bytes (any chunking). */
export interface WireFile {
  name: string;
  size: number;
  /** Hash (HASH_ALGORITHM) the sender expects; checked as it is read when given. */
  hash?: string;
  data: () => AsyncIterable<Buffer> | Iterable<Buffer>;
}

/**
 * The whole stream for `files`, frame by frame (whole frames, in order). Files are re-chunked to
 * MAX_CHUNK; a file that turns out longer or shorter than its declared size, or whose hash
 * differs from the one given, throws (it changed while it was sent).
 */
export async function* encodeImages(header: WireHeader, files: Iterable<WireFile>, o: { compress?: boolean; level?: number } = {}): AsyncGenerator<Buffer> {
  const compressor = o.compress ? new ChunkCompressor(o.level) : undefined;
  yield encodeHeader(header);
  let count = 0;
  let total = 0;
  for (const f of files) {
    const why = badFileName(f.name);
    if (why !== undefined) throw new FerryError('ERR_TRANSFER_INVALID', `cannot send ${JSON.stringify(f.name)}: its name ${why}`);
    yield encodeBegin(f.name, f.size);
    compressor?.reset();
    const digest = new FileDigest(f.size);
    let sent = 0;
    let pending: Buffer[] = [];
    let pendingLen = 0;
    const flush = function* (all: boolean): Generator<Buffer> {
      while (pendingLen >= MAX_CHUNK || (all && pendingLen > 0)) {
        const joined = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingLen);
        const n = Math.min(MAX_CHUNK, joined.length);
        const chunk = joined.subarray(0, n);
        const rest = joined.subarray(n);
        pending = rest.length ? [rest] : [];
        pendingLen = rest.length;
        digest.update(chunk);
        yield Buffer.concat(encodeData(chunk, compressor));
      }
    };
    for await (const piece of f.data()) {
      sent += piece.length;
      if (sent > f.size) throw new FerryError('ERR_TRANSFER_INVALID', `${f.name} grew while it was sent (more than its ${f.size} bytes)`, { hint: 'image files must not change during a transfer' });
      pending.push(piece);
      pendingLen += piece.length;
      yield* flush(false);
    }
    yield* flush(true);
    if (sent !== f.size) throw new FerryError('ERR_TRANSFER_INVALID', `${f.name} shrank while it was sent (${sent} of its ${f.size} bytes)`, { hint: 'image files must not change during a transfer' });
    const hash = digest.digest();
    if (f.hash !== undefined && f.hash !== hash) {
      throw new FerryError('ERR_TRANSFER_CORRUPT', `${f.name} as read (${hash.slice(0, 12)}…) differs from its recorded hash (${f.hash.slice(0, 12)}…)`, { hint: 'the source images changed or are damaged; take a new dump' });
    }
    yield encodeEnd(f.size, hash);
    count++;
    total += f.size;
  }
  yield encodeFinal(count, total);
}

// ---------------------------------------------------------------------------------------------
// Decoder

/** Bytes received, kept as the chunks they came in until a frame is taken out. */
class ByteQueue {
  private chunks: Buffer[] = [];
  length = 0;

  push(b: Buffer): void {
    if (b.length === 0) return;
    this.chunks.push(b);
    this.length += b.length;
  }

  /** The first `n` bytes (n ≤ length), left in place. */
  peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first && first.length >= n) return first.subarray(0, n);
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    for (const c of this.chunks) {
      if (got === n) break;
      const k = Math.min(c.length, n - got);
      c.copy(out, got, 0, k);
      got += k;
    }
    return out;
  }

  /** The first `n` bytes (n ≤ length), removed. */
  take(n: number): Buffer {
    const first = this.chunks[0];
    if (first && first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift(); else this.chunks[0] = first.subarray(n);
      this.length -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - got);
      c.copy(out, got, 0, k);
      got += k;
      if (k === c.length) this.chunks.shift(); else this.chunks[0] = c.subarray(k);
    }
    this.length -= n;
    return out;
  }
}

const TYPE_NAMES: Record<number, string> = { 1: 'header', 2: 'begin', 3: 'data', 4: 'end', 5: 'final' };

/**
 * Decodes a stream (any chunking) into checked events. Throws FerryErrors: ERR_TRANSFER_INVALID
 * (malformed, out of order, beyond a limit), ERR_TRANSFER_CORRUPT (a checksum differs),
 * ERR_TRANSFER_TRUNCATED (the stream ended or broke before its final frame; `cause` holds the
 * source's error).
 */
export async function* decodeImages(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, limits: Partial<WireLimits> = {}): AsyncGenerator<WireEvent> {
  const lim = { ...DEFAULT_LIMITS, ...limits };
  const q = new ByteQueue();
  let offset = 0; // stream offset of q's first byte
  let header: WireHeader | undefined;
  let open: { name: string; size: number; got: number; digest: FileDigest; chunks: number } | undefined;
  const names = new Set<string>();
  let total = 0;
  let finished = false;
  let magic = false;
  const dctx = new zstd.DCtx();
  const invalid = (why: string) => new FerryError('ERR_TRANSFER_INVALID', `image stream refused at byte ${offset}: ${why}`, { hint: 'the sender is not a compatible ferry, or the stream was altered; nothing was kept' });
  const corrupt = (why: string) => new FerryError('ERR_TRANSFER_CORRUPT', `image stream damaged at byte ${offset}: ${why}`, { hint: 'the data changed on the way; nothing was kept, send it again' });

  const maxPayload = (type: number): number => {
    switch (type) {
      case FRAME.header: return lim.headerBytes + HASH_BYTES;
      case FRAME.begin: return 8 + MAX_NAME_BYTES + HASH_BYTES;
      case FRAME.data: return HASH_BYTES + 4 + lim.chunkBytes;
      case FRAME.end: return 8 + HASH_BYTES + HASH_BYTES;
      case FRAME.final: return 12 + HASH_BYTES;
      default: throw invalid(`unknown frame type ${type}`);
    }
  };
  const readU64 = (b: Buffer, at: number, what: string): number => {
    const v = b.readBigUInt64BE(at);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(`${what} ${v} is too large`);
    return Number(v);
  };

  /** One whole frame → its events (zero or one). */
  const onFrame = (type: number, flags: number, frameBody: Buffer): WireEvent | undefined => {
    if (finished) throw invalid('data follows the final frame');
    let p = frameBody;
    if (type !== FRAME.data) {
      if (flags !== 0) throw invalid(`a ${TYPE_NAMES[type] ?? '?'} frame has flags ${flags}`);
      if (p.length < HASH_BYTES) throw invalid(`a ${TYPE_NAMES[type] ?? '?'} frame is too short`);
      p = frameBody.subarray(0, p.length - HASH_BYTES);
      if (!hash128(p).equals(frameBody.subarray(p.length))) throw corrupt(`a ${TYPE_NAMES[type] ?? '?'} frame fails its XXH3 check`);
    }
    if (!header && type !== FRAME.header) throw invalid(`the stream starts with a ${TYPE_NAMES[type] ?? '?'} frame, not its header`);
    switch (type) {
      case FRAME.header: {
        if (header) throw invalid('a second header');
        let raw: unknown;
        try { raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(p)); } catch { throw invalid('the header is not UTF-8 JSON'); }
        const r = HeaderSchema.safeParse(raw);
        if (!r.success) {
          const issue = r.error.issues[0];
          const v = (raw as { version?: unknown } | null)?.version;
          if (issue?.path[0] === 'version') throw invalid(`wire version ${JSON.stringify(v)}; this ferry speaks ${WIRE_VERSION}`);
          throw invalid(`the header's ${issue?.path.map(String).join('.') || 'body'} is invalid (${issue?.message ?? '?'})`);
        }
        const h = r.data as WireHeader;
        for (const n of Object.keys(h.meta.files ?? {})) {
          const why = badFileName(n);
          if (why !== undefined) throw invalid(`the header lists a file name that ${why}`);
        }
        if (h.totalBytes !== undefined && h.totalBytes > lim.totalBytes) throw invalid(`it declares ${h.totalBytes} bytes; at most ${lim.totalBytes} are accepted`);
        if (h.fileCount !== undefined && h.fileCount > lim.files) throw invalid(`it declares ${h.fileCount} files; at most ${lim.files} are accepted`);
        header = h;
        return { type: 'header', header: h };
      }
      case FRAME.begin: {
        if (open) throw invalid(`a file begins before ${open.name} ended`);
        if (p.length < 9) throw invalid('a begin frame without a name');
        const size = readU64(p, 0, 'a file size');
        let name: string;
        try { name = new TextDecoder('utf-8', { fatal: true }).decode(p.subarray(8)); } catch { throw invalid('a file name is not UTF-8'); }
        const why = badFileName(name);
        if (why !== undefined) throw invalid(`file name ${JSON.stringify(name)} ${why}`);
        if (names.has(name)) throw invalid(`${name} comes twice`);
        if (names.size >= lim.files) throw invalid(`more than ${lim.files} files`);
        if (size > lim.fileBytes) throw invalid(`${name} declares ${size} bytes; at most ${lim.fileBytes} are accepted per file`);
        const cap = header!.totalBytes ?? lim.totalBytes;
        if (total + size > cap) throw invalid(`${name} (${size} bytes) takes the stream past the ${cap} bytes ${header!.totalBytes !== undefined ? 'its header declared' : 'accepted'}`);
        const expected = header!.meta.files?.[name];
        if (expected && expected.size !== size) throw invalid(`${name} declares ${size} bytes; the header listed ${expected.size}`);
        names.add(name);
        total += size;
        open = { name, size, got: 0, digest: new FileDigest(size), chunks: 0 };
        return { type: 'begin', name, size };
      }
      case FRAME.data: {
        if (!open) throw invalid('data outside a file');
        if ((flags & ~FLAG_ZSTD) !== 0) throw invalid(`a data frame has unknown flags ${flags}`);
        if (p.length < HASH_BYTES + 4) throw invalid('a data frame is too short');
        const want = p.subarray(0, HASH_BYTES);
        const rawLen = p.readUInt32BE(HASH_BYTES);
        const body = p.subarray(HASH_BYTES + 4);
        if (rawLen === 0 || rawLen > lim.chunkBytes) throw invalid(`a chunk of ${rawLen} bytes (1 to ${lim.chunkBytes} allowed)`);
        if (open.got + rawLen > open.size) throw invalid(`${open.name} gets more than its ${open.size} bytes`);
        const where = `chunk ${open.chunks} of ${open.name} (bytes ${open.got}–${open.got + rawLen})`;
        let raw: Buffer;
        if (flags & FLAG_ZSTD) {
          if (body.length >= rawLen) throw invalid(`${where} is "compressed" to ${body.length} bytes`);
          raw = Buffer.allocUnsafe(rawLen);
          let n: number;
          // The output buffer is the chunk's declared size: zstd cannot write past it.
          try { n = dctx.decompress(raw, body); } catch (err) { throw corrupt(`${where} does not decompress (${(err as Error).message})`); }
          if (n !== rawLen) throw corrupt(`${where} decompresses to ${n} bytes, not ${rawLen}`);
        } else {
          if (body.length !== rawLen) throw invalid(`${where} holds ${body.length} bytes, its frame says ${rawLen}`);
          raw = body;
        }
        if (!hash128(raw).equals(want)) throw corrupt(`${where} fails its XXH3 check`);
        open.digest.update(raw);
        const ev: WireEvent = { type: 'data', name: open.name, offset: open.got, data: raw };
        open.got += rawLen;
        open.chunks++;
        return ev;
      }
      case FRAME.end: {
        if (!open) throw invalid('a file ends that did not begin');
        if (p.length !== 8 + HASH_BYTES) throw invalid('an end frame of the wrong length');
        const size = readU64(p, 0, 'a file size');
        if (size !== open.size || open.got !== open.size) throw invalid(`${open.name} ends after ${open.got} of its ${open.size} bytes`);
        const theirs = p.subarray(8).toString('hex');
        const ours = open.digest.digest();
        if (theirs !== ours) throw corrupt(`${open.name} fails its ${HASH_ALGORITHM} check (received ${ours.slice(0, 12)}…, sent ${theirs.slice(0, 12)}…)`);
        const expected = header!.meta.files?.[open.name];
        if (expected && expected.hash !== ours) throw corrupt(`${open.name} differs from the source's recorded hash (${ours.slice(0, 12)}…, recorded ${expected.hash.slice(0, 12)}…)`);
        const ev: WireEvent = { type: 'end', name: open.name, size, hash: ours };
        open = undefined;
        return ev;
      }
      case FRAME.final: {
        if (open) throw invalid(`the stream ends inside ${open.name}`);
        if (p.length !== 12) throw invalid('a final frame of the wrong length');
        const files = p.readUInt32BE(0);
        const bytes = readU64(p, 4, 'a byte count');
        if (files !== names.size || bytes !== total) throw invalid(`the final frame counts ${files} files and ${bytes} bytes; ${names.size} files and ${total} bytes came`);
        const h = header!;
        if (h.fileCount !== undefined && h.fileCount !== files) throw invalid(`${files} files came; the header declared ${h.fileCount}`);
        if (h.totalBytes !== undefined && h.totalBytes !== bytes) throw invalid(`${bytes} bytes came; the header declared ${h.totalBytes}`);
        const missing = Object.keys(h.meta.files ?? {}).filter((n) => !names.has(n));
        if (missing.length) throw invalid(`files the header listed never came: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}`);
        finished = true;
        return { type: 'final', files, bytes, wireBytes: offset + FRAME_HEAD + frameBody.length };
      }
      default:
        throw invalid(`unknown frame type ${type}`);
    }
  };

  try {
    for await (const piece of source) {
      q.push(Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength));
      if (!magic) {
        if (q.length < WIRE_MAGIC.length) continue;
        if (!q.take(WIRE_MAGIC.length).equals(WIRE_MAGIC)) throw invalid('it does not start with ferry\'s image-stream magic');
        offset += WIRE_MAGIC.length;
        magic = true;
      }
      while (q.length >= FRAME_HEAD) {
        if (finished) throw invalid('data follows the final frame');
        const head = q.peek(FRAME_HEAD);
        const type = head.readUInt8(0);
        const flags = head.readUInt8(1);
        const len = head.readUInt32BE(4);
        if (head.readUInt16BE(2) !== 0) throw invalid('a frame\'s reserved bytes are not zero');
        const max = maxPayload(type);
        if (len > max) throw invalid(`a ${TYPE_NAMES[type] ?? '?'} frame of ${len} bytes (at most ${max})`);
        if (q.length < FRAME_HEAD + len) break;
        q.take(FRAME_HEAD);
        const ev = onFrame(type, flags, q.take(len));
        offset += FRAME_HEAD + len;
        if (ev) yield ev;
      }
      if (finished && q.length > 0) throw invalid('data follows the final frame');
    }
  } catch (err) {
    if (err instanceof FerryError) throw err;
    throw new FerryError('ERR_TRANSFER_TRUNCATED', `image stream broke after ${offset + q.length} bytes${open ? `, inside ${open.name}` : ''}: ${(err as Error).message}`, {
      cause: err, hint: 'the connection was cut or the sender stopped; nothing was kept, send it again',
    });
  }
  if (!finished) {
    const where = !magic || !header ? 'before its header' : open ? `inside ${open.name} (${open.got} of ${open.size} bytes)` : `after ${names.size} files`;
    throw new FerryError('ERR_TRANSFER_TRUNCATED', `image stream ended ${where}, at byte ${offset + q.length}, without its final frame`, {
      hint: 'the connection was cut or the sender stopped; nothing was kept, send it again',
    });
  }
}
