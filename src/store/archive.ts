/**
 * `ferry export` / `ferry import`: one snapshot, with every ancestor it depends on, as one
 * streaming archive — tar (tar-stream) compressed with zstd (zstd-napi, frame checksum on).
 * Nothing is ever held whole in memory: image files stream from disk into the archive and
 * from the archive into the store. The layout and its checks are archive-format.ts; what is
 * sent comes from send.ts, what is received goes through receive.ts (checked, then committed
 * atomically: `ls` never shows a partial snapshot or a child without its parent).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { CompressStream, DecompressStream } from 'zstd-napi';
import { FerryError } from '../util/errors.js';
import {
  ARCHIVE_FORMAT, ARCHIVE_HEADER, ARCHIVE_TRAILER, ARCHIVE_VERSION, MAX_JSON_BYTES, checkTrailer, classifyMemberName, classifyStreamError,
  parseHeader, rejected, type ArchiveHeader, type ArchiveTrailer, type TrailerMember,
} from './archive-format.js';
import type { Tier } from './manifest.js';
import { beginReceive, MAX_LOG_BYTES, type Reception, type RejectKind } from './receive.js';
import { planSnapshot, resolveChain, type PlannedMember } from './send.js';
import { SNAPSHOT_ID_RE, type Store } from './store.js';

export {
  ARCHIVE_FORMAT, ARCHIVE_HEADER, ARCHIVE_TRAILER, ARCHIVE_VERSION, classifyMemberName,
  type ArchiveChainEntry, type ArchiveHeader, type ArchiveTrailer, type TrailerMember,
} from './archive-format.js';
export { resolveChain } from './send.js';

export interface ExportResult {
  snapshot: string;
  /** Every snapshot in the archive, oldest first (the last is `snapshot`). */
  chain: string[];
  members: number;
  /** Bytes of the files put into the archive (uncompressed). */
  bytes: number;
  /** Bytes of the archive (compressed). */
  archiveBytes: number;
  durationMs: number;
}

export interface ImportOptions {
  /** Tier to import into (default: the tier of an ancestor already in the store, else disk). */
  tier?: Tier;
  /** Import the archive's snapshot under this id instead (its ancestors keep theirs). */
  as?: string;
  /** Shown in errors: the file name, or 'stdin'. */
  source?: string;
}

export interface ImportResult {
  snapshot: string;
  tier: Tier;
  /** Snapshots created, oldest first. */
  imported: string[];
  /** Ancestors that were already in the store (identical), not imported again. */
  present: string[];
  /** Bytes of the files written into the store. */
  bytes: number;
  archiveBytes: number;
  durationMs: number;
}

// ---------------------------------------------------------------------------------------------
// Export

function writeEntry(pack: tar.Pack, header: Partial<tar.Header> & { name: string }, body?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (body) pack.entry(header, body, (err) => (err ? reject(err) : resolve()));
    else pack.entry(header, (err) => (err ? reject(err) : resolve())).end(undefined);
  });
}

/**
 * Writes snapshot `id`, with its ancestors, to `out` as a zstd-compressed tar. `out` is not
 * closed on failure (the caller removes a partial file).
 */
export async function exportSnapshot(store: Store, id: string, out: Writable, opts: { level?: number } = {}): Promise<ExportResult> {
  const started = Date.now();
  const chain = await resolveChain(store, id);
  const planned: PlannedMember[] = [];
  for (const s of chain) planned.push(...await planSnapshot(s));
  const header: ArchiveHeader = {
    format: ARCHIVE_FORMAT, version: ARCHIVE_VERSION, snapshot: id, createdAt: new Date().toISOString(),
    chain: chain.map((s) => ({ id: s.manifest.id, parent: s.manifest.parent ?? null, bytes: s.manifest.bytes })),
  };
  const pack = tar.pack();
  const compress = new CompressStream({ compressionLevel: opts.level ?? 1, checksumFlag: true });
  let archiveBytes = 0;
  const counter = new PassThrough();
  counter.on('data', (c: Buffer) => { archiveBytes += c.length; });
  const sending = pipeline(pack, compress, counter, out, { end: out !== process.stdout });
  sending.catch(() => undefined);
  const mtime = new Date();
  const trailer: ArchiveTrailer = { members: [] };
  let bytes = 0;
  try {
    const headerBuf = Buffer.from(JSON.stringify(header, null, 2) + '\n');
    await writeEntry(pack, { name: ARCHIVE_HEADER, type: 'file', size: headerBuf.length, mode: 0o600, mtime }, headerBuf);
    trailer.members.push({ name: ARCHIVE_HEADER, type: 'file', size: headerBuf.length, sha256: sha256(headerBuf) });
    for (const p of planned) {
      if (p.type === 'directory') {
        await writeEntry(pack, { name: p.name, type: 'directory', mode: 0o700, mtime });
        trailer.members.push({ name: p.name, type: 'directory', size: 0 });
      } else if (p.type === 'symlink') {
        await writeEntry(pack, { name: p.name, type: 'symlink', linkname: p.linkname ?? '', mode: 0o777, mtime });
        trailer.members.push({ name: p.name, type: 'symlink', size: 0 });
      } else if (!p.summed) {
        // Small files the manifest does not cover: read whole, hashed into the trailer.
        const body = await readFile(p.path ?? '');
        await writeEntry(pack, { name: p.name, type: 'file', size: body.length, mode: 0o600, mtime }, body);
        trailer.members.push({ name: p.name, type: 'file', size: body.length, sha256: sha256(body) });
        bytes += body.length;
      } else {
        await new Promise<void>((resolve, reject) => {
          const entry = pack.entry({ name: p.name, type: 'file', size: p.size, mode: 0o600, mtime }, (err) => (err ? reject(err) : resolve()));
          pipeline(createReadStream(p.path ?? ''), entry).catch(reject);
        });
        trailer.members.push({ name: p.name, type: 'file', size: p.size });
        bytes += p.size;
      }
    }
    const trailerBuf = Buffer.from(JSON.stringify(trailer) + '\n');
    await writeEntry(pack, { name: ARCHIVE_TRAILER, type: 'file', size: trailerBuf.length, mode: 0o600, mtime }, trailerBuf);
    pack.finalize();
    await sending;
  } catch (err) {
    pack.destroy();
    throw err instanceof FerryError ? err : new FerryError('ERR_EXPORT', `export of ${id} failed: ${(err as Error).message}`, { cause: err });
  }
  return { snapshot: id, chain: chain.map((s) => s.manifest.id), members: trailer.members.length + 1, bytes, archiveBytes, durationMs: Date.now() - started };
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

// ---------------------------------------------------------------------------------------------
// Import

async function readBody(entry: AsyncIterable<unknown>, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of entry) {
    const c = chunk as Buffer;
    n += c.length;
    if (n > limit) throw new Error('member larger than allowed');
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

const REJECT_CODES = { invalid: 'ERR_ARCHIVE_INVALID', corrupt: 'ERR_ARCHIVE_CORRUPT' } as const;

/**
 * Reads a ferry archive from `input` into the store. Everything is checked (member names and
 * types, sizes against the manifests, the trailer, every image's checksum) before any snapshot
 * becomes visible; on any failure nothing of the archive remains in the store.
 */
export async function importArchive(store: Store, input: Readable, opts: ImportOptions = {}): Promise<ImportResult> {
  const started = Date.now();
  const source = opts.source ?? 'stdin';
  if (opts.as !== undefined && !SNAPSHOT_ID_RE.test(opts.as)) {
    throw new FerryError('ERR_USAGE', `invalid snapshot name '${opts.as}'`, { hint: 'use letters, digits, dot, dash and underscore' });
  }
  let archiveBytes = 0;
  const decompress = new DecompressStream();
  const extract = tar.extract();
  input.on('data', (c: Buffer) => { archiveBytes += c.length; });
  input.on('error', (e) => extract.destroy(e));
  decompress.on('error', (e) => extract.destroy(e));
  input.pipe(decompress).pipe(extract);

  const reject = (kind: RejectKind, why: string, cause?: unknown) => rejected(REJECT_CODES[kind], source, why, cause);
  let rx: Reception | undefined;
  let header: ArchiveHeader | undefined;
  let chainIds: Set<string> | undefined;
  let trailer: ArchiveTrailer | undefined;
  const seen: TrailerMember[] = [];
  const names = new Set<string>();
  let stage = 'reading';

  try {
    try {
      for await (const entry of extract) {
        const h = entry.header;
        const name = h.name;
        if (trailer) throw new Error(`member ${JSON.stringify(name)} follows the trailer`);
        if (names.has(name) || names.has(name.endsWith('/') ? name.slice(0, -1) : `${name}/`)) throw new Error(`member ${JSON.stringify(name)} appears twice`);
        names.add(name);
        if (!header && name !== ARCHIVE_HEADER) throw new Error(`the archive does not start with ${ARCHIVE_HEADER}`);
        const cls = classifyMemberName(name, chainIds);
        const type = h.type;
        if (type !== 'file' && type !== 'directory' && type !== 'symlink') {
          const what = type === 'link' ? 'a hard link' : type === 'character-device' || type === 'block-device' ? 'a device file' : type === 'fifo' ? 'a fifo' : `of type ${String(type)}`;
          throw new Error(`member ${JSON.stringify(name)} is ${what}; only regular files, directories and a snapshot's parent link are allowed`);
        }
        const size = h.size ?? 0;
        if (!header || !rx) {
          if (cls.kind !== 'header' || type !== 'file') throw new Error(`the archive does not start with ${ARCHIVE_HEADER}`);
          if (size > MAX_JSON_BYTES) throw new Error(`${ARCHIVE_HEADER} is too large`);
          const body = await readBody(entry, MAX_JSON_BYTES);
          header = parseHeader(body);
          chainIds = new Set(header.chain.map((c) => c.id));
          seen.push({ name, type, size: body.length, sha256: sha256(body) });
          rx = await beginReceive(store, { chain: header.chain, ...(opts.as !== undefined ? { as: opts.as } : {}), ...(opts.tier ? { tier: opts.tier } : {}), reject });
          continue;
        }
        if (cls.kind === 'header') throw new Error(`member ${JSON.stringify(name)} appears twice`);
        if (cls.kind === 'trailer') {
          if (type !== 'file' || size > MAX_JSON_BYTES) throw new Error(`${ARCHIVE_TRAILER} is not a small file`);
          const body = await readBody(entry, MAX_JSON_BYTES);
          try { trailer = JSON.parse(body.toString('utf8')) as ArchiveTrailer; } catch { throw new Error(`${ARCHIVE_TRAILER} is not JSON`); }
          continue;
        }
        const snap = rx.snapshot(cls.id);
        if (cls.kind === 'dir') {
          if (type !== 'directory') throw new Error(`member ${JSON.stringify(name)} must be a directory`);
          seen.push({ name, type, size: 0 });
          entry.resume();
          continue;
        }
        const file = cls.file;
        if (type === 'directory') throw new Error(`member ${JSON.stringify(name)} is a directory inside a snapshot`);
        if (type === 'symlink') {
          await snap.addLink(file, h.linkname ?? '');
          seen.push({ name, type, size: 0 });
          entry.resume();
          continue;
        }
        if (!snap.manifest) {
          if (file !== 'manifest.json') throw new Error(`member ${JSON.stringify(name)} comes before ${snap.id}/manifest.json`);
          if (size > MAX_JSON_BYTES) throw new Error(`${name} is too large`);
          const body = await readBody(entry, MAX_JSON_BYTES);
          await snap.setManifest(body);
          seen.push({ name, type, size: body.length, sha256: sha256(body) });
          continue;
        }
        if (snap.manifest.files[file] === undefined && /\.log$/.test(file)) {
          // A log: read whole (bounded), hashed for the trailer.
          if (size > MAX_LOG_BYTES) throw new Error(`${name} is too large for a log`);
          const body = await readBody(entry, MAX_LOG_BYTES);
          await snap.addFile(file, body, body.length);
          seen.push({ name, type, size: body.length, sha256: sha256(body) });
          continue;
        }
        await snap.addFile(file, entry as unknown as Readable, size);
        seen.push({ name, type, size });
      }
    } catch (err) {
      if (err instanceof FerryError) throw err;
      if (archiveBytes === 0) throw rejected('ERR_ARCHIVE_TRUNCATED', source, 'it is empty', err);
      throw classifyStreamError(err, source);
    }
    if (!header || !rx) throw rejected('ERR_ARCHIVE_TRUNCATED', source, 'it is empty');
    if (!trailer) throw rejected('ERR_ARCHIVE_TRUNCATED', source, `it ends before ${ARCHIVE_TRAILER} (${seen.length} members read)`);
    checkTrailer(trailer, seen, source);
    stage = 'verifying';
    await rx.verify();
    stage = 'committing';
    const r = await rx.commit();
    rx = undefined;
    return { ...r, archiveBytes, durationMs: Date.now() - started };
  } catch (err) {
    input.unpipe();
    input.destroy();
    decompress.destroy();
    extract.destroy();
    if (!(err instanceof FerryError)) throw new FerryError('ERR_IMPORT', `import from ${source} failed while ${stage}: ${(err as Error).message}`, { cause: err });
    // Every refusal names the archive (a conflict with the store's snapshots says it otherwise not).
    if (!err.message.includes(source)) {
      throw new FerryError(err.code, `archive ${source}: ${err.message}`, { cause: err, ...(err.hint !== undefined ? { hint: err.hint } : {}), ...(err.detail !== undefined ? { detail: err.detail } : {}) });
    }
    throw err;
  } finally {
    if (rx) await rx.abort();
  }
}
