import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, mkdir, readdir, readFile, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { CompressStream, DecompressStream } from 'zstd-napi';
import { FerryError, errnoCode } from '../util/errors.js';
import { verifyChecksums, type FileSums } from './checksums.js';
import type { SnapshotManifest, Tier } from './manifest.js';
import { SNAPSHOT_ID_RE, type Store, type StoredSnapshot } from './store.js';

/**
 * `ferry export` / `ferry import`: one snapshot, with every ancestor it depends on, as one
 * streaming archive — tar (tar-stream) compressed with zstd (zstd-napi, frame checksum on).
 * Nothing is ever held whole in memory: image files stream from disk into the archive and
 * from the archive into the store.
 *
 * Layout, in this order:
 *   ferry-archive.json          what is inside: {format, version, snapshot, chain:[{id, parent, bytes}]}
 *   <id>/                       for each snapshot of the chain, oldest first:
 *   <id>/manifest.json            always its first file (so every later member is checked against it)
 *   <id>/<file>                   CRIU's images (sizes and XXH3 in the manifest) and logs
 *   <id>/parent                   a symlink `../<parentId>`, only when the snapshot has a parent
 *   ferry-trailer.json          every member before it (name, type, size; sha256 of files the
 *                               manifest does not checksum): a cut-off archive lacks it
 *
 * Import unpacks into `<tier>/.tmp-import-*`, checks everything, then renames each snapshot
 * into place (oldest first), so `ls` never shows a partial snapshot or a child without its parent.
 */
export const ARCHIVE_HEADER = 'ferry-archive.json';
export const ARCHIVE_TRAILER = 'ferry-trailer.json';
export const ARCHIVE_FORMAT = 'ferry-archive';
export const ARCHIVE_VERSION = 1;

/** Files of a snapshot the manifest does not checksum (same rule as checksums.ts). */
const UNSUMMED = /^(manifest\.json|[^/]*\.log)$/;
/** Limits on members that are read into memory or not covered by the manifest. */
const MAX_JSON_BYTES = 16 << 20;
const MAX_LOG_BYTES = 1 << 30;
const MAX_NAME_BYTES = 1024;
const MAX_CHAIN = 4096;

export interface ArchiveChainEntry { id: string; parent: string | null; bytes: number }
export interface ArchiveHeader { format: typeof ARCHIVE_FORMAT; version: number; snapshot: string; createdAt: string; chain: ArchiveChainEntry[] }
export interface TrailerMember { name: string; type: 'file' | 'directory' | 'symlink'; size: number; sha256?: string }
export interface ArchiveTrailer { members: TrailerMember[] }

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

/** The snapshot and its ancestors, oldest first; refuses a broken chain. */
export async function resolveChain(store: Store, id: string): Promise<StoredSnapshot[]> {
  const chain: StoredSnapshot[] = [];
  const seen = new Set<string>();
  let cur: string | undefined = id;
  while (cur !== undefined) {
    const wanted: string = cur;
    if (seen.has(wanted) || chain.length >= MAX_CHAIN) {
      throw new FerryError('ERR_SNAPSHOT_CORRUPT', `snapshot ${id} has a parent chain that loops back to ${wanted}`);
    }
    seen.add(wanted);
    const s: StoredSnapshot | undefined = chain.length === 0 ? await store.get(wanted) : await store.find(wanted);
    if (!s) {
      throw new FerryError('ERR_SNAPSHOT_CORRUPT', `snapshot ${chain[0]?.manifest.id ?? id} depends on ${wanted}, which is not in the store`, {
        hint: 'the chain is broken; restore and export another snapshot',
      });
    }
    chain.unshift(s);
    cur = s.manifest.parent ?? undefined;
  }
  return chain;
}

interface PlannedMember { name: string; type: 'file' | 'directory' | 'symlink'; path?: string; size: number; linkname?: string; summed: boolean }

async function planSnapshot(s: StoredSnapshot): Promise<PlannedMember[]> {
  const m = s.manifest;
  const id = m.id;
  const names = (await readdir(s.dir)).sort((a, b) => (a === 'manifest.json' ? -1 : b === 'manifest.json' ? 1 : a.localeCompare(b)));
  const out: PlannedMember[] = [{ name: `${id}/`, type: 'directory', size: 0, summed: false }];
  let hasParentLink = false;
  for (const n of names) {
    const p = join(s.dir, n);
    const st = await lstat(p);
    if (st.isFile()) {
      const summed = !UNSUMMED.test(n);
      if (summed && m.files[n]?.size !== st.size) {
        throw new FerryError('ERR_SNAPSHOT_CORRUPT', `snapshot ${id}: ${n} does not match its manifest`, { hint: 'the snapshot changed after the checkpoint; export another one' });
      }
      out.push({ name: `${id}/${n}`, type: 'file', path: p, size: st.size, summed });
    } else if (st.isSymbolicLink() && n === 'parent') {
      const target = await readlink(p);
      if (!m.parent || target !== `../${m.parent}`) {
        throw new FerryError('ERR_SNAPSHOT_CORRUPT', `snapshot ${id}: its parent link points to '${target}', its manifest names ${m.parent ?? 'no parent'}`);
      }
      hasParentLink = true;
      out.push({ name: `${id}/parent`, type: 'symlink', size: 0, linkname: target, summed: false });
    } else {
      throw new FerryError('ERR_SNAPSHOT_CORRUPT', `snapshot ${id} holds '${n}', which is neither an image file nor its parent link`, { hint: 'remove it from the snapshot directory, then export again' });
    }
  }
  if (m.parent && !hasParentLink) throw new FerryError('ERR_SNAPSHOT_CORRUPT', `snapshot ${id} names parent ${m.parent} but has no parent link`);
  for (const f of Object.keys(m.files)) {
    if (!out.some((o) => o.name === `${id}/${f}`)) throw new FerryError('ERR_SNAPSHOT_CORRUPT', `snapshot ${id}: ${f} is missing`);
  }
  return out;
}

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

/** An archive that must not be imported: unsafe, malformed, truncated or damaged. */
function rejected(code: 'ERR_ARCHIVE_INVALID' | 'ERR_ARCHIVE_TRUNCATED' | 'ERR_ARCHIVE_CORRUPT', source: string, why: string, cause?: unknown): FerryError {
  const hint = code === 'ERR_ARCHIVE_TRUNCATED'
    ? 'the archive was cut off (an interrupted export or copy); export it again; nothing was imported'
    : code === 'ERR_ARCHIVE_CORRUPT'
      ? 'the archive was damaged or altered after `ferry export`; export it again; nothing was imported'
      : 'only archives written by `ferry export` can be imported; nothing was imported';
  return new FerryError(code, `archive ${source} rejected: ${why}`, { hint, ...(cause !== undefined ? { cause } : {}) });
}

/** Checks a member's name and says what it is; throws on anything unsafe. */
export function classifyMemberName(name: string, chainIds: ReadonlySet<string> | undefined):
  { kind: 'header' } | { kind: 'trailer' } | { kind: 'dir'; id: string } | { kind: 'file'; id: string; file: string } {
  const show = JSON.stringify(name.slice(0, 200));
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) throw new Error(`member name of ${Buffer.byteLength(name)} bytes is too long`);
  if (name.includes('\0')) throw new Error(`member ${show} has a NUL byte in its name`);
  if (name.startsWith('/')) throw new Error(`member ${show} has an absolute path`);
  if (name.includes('\\')) throw new Error(`member ${show} has a backslash in its name`);
  const trimmed = name.endsWith('/') ? name.slice(0, -1) : name;
  const parts = trimmed.split('/');
  if (parts.some((p) => p === '..')) throw new Error(`member ${show} has a '..' component (path traversal)`);
  if (parts.some((p) => p === '' || p === '.')) throw new Error(`member ${show} has an empty or '.' component`);
  if (name === ARCHIVE_HEADER) return { kind: 'header' };
  if (name === ARCHIVE_TRAILER) return { kind: 'trailer' };
  const [id, file, ...deeper] = parts;
  if (id === undefined || !chainIds?.has(id)) throw new Error(`member ${show} is outside the snapshots the archive declares`);
  if (deeper.length) throw new Error(`member ${show} is nested below a snapshot's directory`);
  if (file === undefined) return { kind: 'dir', id };
  if (name.endsWith('/')) throw new Error(`member ${show} is a directory inside a snapshot`);
  return { kind: 'file', id, file };
}

function parseHeader(buf: Buffer): ArchiveHeader {
  let h: unknown;
  try { h = JSON.parse(buf.toString('utf8')); } catch { throw new Error(`${ARCHIVE_HEADER} is not JSON`); }
  const o = h as Partial<ArchiveHeader> | null;
  if (!o || o.format !== ARCHIVE_FORMAT) throw new Error(`${ARCHIVE_HEADER} is not a ferry archive header`);
  if (o.version !== ARCHIVE_VERSION) throw new Error(`archive format version ${String(o.version)} is not supported (this ferry reads ${ARCHIVE_VERSION})`);
  if (!Array.isArray(o.chain) || o.chain.length === 0 || o.chain.length > MAX_CHAIN) throw new Error('the archive declares no snapshots');
  const ids = new Set<string>();
  o.chain.forEach((c, i) => {
    if (typeof c?.id !== 'string' || !SNAPSHOT_ID_RE.test(c.id)) throw new Error(`the archive declares an invalid snapshot id ${JSON.stringify(c?.id)}`);
    if (ids.has(c.id)) throw new Error(`the archive declares snapshot ${c.id} twice`);
    ids.add(c.id);
    const prev = o.chain?.[i - 1];
    if (i > 0 && c.parent !== prev?.id) throw new Error(`snapshot ${c.id} does not build on ${prev?.id ?? '?'}`);
    if (c.parent !== null && (typeof c.parent !== 'string' || !SNAPSHOT_ID_RE.test(c.parent))) throw new Error(`snapshot ${c.id} names an invalid parent`);
    if (typeof c.bytes !== 'number' || !(c.bytes >= 0)) throw new Error(`snapshot ${c.id} has no size`);
  });
  if (o.snapshot !== o.chain[o.chain.length - 1]?.id) throw new Error('the archive\'s snapshot is not the last of its chain');
  return o as ArchiveHeader;
}

function parseManifest(buf: Buffer, id: string, parent: string | null): SnapshotManifest {
  let m: SnapshotManifest;
  try { m = JSON.parse(buf.toString('utf8')) as SnapshotManifest; } catch { throw new Error(`${id}/manifest.json is not JSON`); }
  if (!m || typeof m !== 'object' || m.id !== id) throw new Error(`${id}/manifest.json belongs to another snapshot`);
  if ((m.parent ?? null) !== parent) throw new Error(`${id}/manifest.json names parent ${m.parent ?? 'none'}, the archive ${parent ?? 'none'}`);
  if (typeof m.files !== 'object' || m.files === null) throw new Error(`${id}/manifest.json lists no files`);
  for (const [n, f] of Object.entries(m.files as FileSums)) {
    if (n.includes('/') || n === '..' || n === '.' || UNSUMMED.test(n)) throw new Error(`${id}/manifest.json lists an invalid file name ${JSON.stringify(n)}`);
    if (typeof f?.size !== 'number' || typeof f.hash !== 'string') throw new Error(`${id}/manifest.json has an invalid entry for ${n}`);
  }
  return m;
}

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

/** Per-snapshot state while unpacking. */
interface Unpacking {
  id: string;
  parent: string | null;
  /** Where it is unpacked (under the temp dir). */
  dir: string;
  /** Already in the store: its members are read and checked, not written. */
  present: boolean;
  presentFiles?: FileSums;
  manifest?: SnapshotManifest;
  files: Set<string>;
  link: boolean;
}

function sameFiles(a: FileSums, b: FileSums): boolean {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k]?.size === b[k]?.size && a[k]?.hash === b[k]?.hash);
}

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

  let tmp: string | undefined;
  let tier: Tier | undefined;
  let header: ArchiveHeader | undefined;
  let trailer: ArchiveTrailer | undefined;
  const seen: TrailerMember[] = [];
  const names = new Set<string>();
  const snaps = new Map<string, Unpacking>();
  let bytes = 0;
  let stage = 'reading';
  const finalId = (id: string) => (header && id === header.snapshot && opts.as !== undefined ? opts.as : id);

  try {
    try {
      for await (const entry of extract) {
        const h = entry.header;
        const name = h.name;
        if (trailer) throw new Error(`member ${JSON.stringify(name)} follows the trailer`);
        if (names.has(name) || names.has(name.endsWith('/') ? name.slice(0, -1) : `${name}/`)) throw new Error(`member ${JSON.stringify(name)} appears twice`);
        names.add(name);
        if (!header && name !== ARCHIVE_HEADER) throw new Error(`the archive does not start with ${ARCHIVE_HEADER}`);
        const cls = classifyMemberName(name, header ? new Set(header.chain.map((c) => c.id)) : undefined);
        const type = h.type;
        if (type !== 'file' && type !== 'directory' && type !== 'symlink') {
          const what = type === 'link' ? 'a hard link' : type === 'character-device' || type === 'block-device' ? 'a device file' : type === 'fifo' ? 'a fifo' : `of type ${String(type)}`;
          throw new Error(`member ${JSON.stringify(name)} is ${what}; only regular files, directories and a snapshot's parent link are allowed`);
        }
        const size = h.size ?? 0;
        if (!header) {
          if (cls.kind !== 'header' || type !== 'file') throw new Error(`the archive does not start with ${ARCHIVE_HEADER}`);
          if (size > MAX_JSON_BYTES) throw new Error(`${ARCHIVE_HEADER} is too large`);
          const body = await readBody(entry, MAX_JSON_BYTES);
          header = parseHeader(body);
          seen.push({ name, type, size: body.length, sha256: sha256(body) });
          ({ tier, tmp } = await prepareImport(store, header, opts, snaps));
          continue;
        }
        if (cls.kind === 'header') throw new Error(`member ${JSON.stringify(name)} appears twice`);
        if (cls.kind === 'trailer') {
          if (type !== 'file' || size > MAX_JSON_BYTES) throw new Error(`${ARCHIVE_TRAILER} is not a small file`);
          const body = await readBody(entry, MAX_JSON_BYTES);
          try { trailer = JSON.parse(body.toString('utf8')) as ArchiveTrailer; } catch { throw new Error(`${ARCHIVE_TRAILER} is not JSON`); }
          continue;
        }
        const snap = snaps.get(cls.id);
        if (!snap) throw new Error(`member ${JSON.stringify(name)} is outside the snapshots the archive declares`);
        if (cls.kind === 'dir') {
          if (type !== 'directory') throw new Error(`member ${JSON.stringify(name)} must be a directory`);
          seen.push({ name, type, size: 0 });
          entry.resume();
          continue;
        }
        const file = cls.file;
        if (type === 'directory') throw new Error(`member ${JSON.stringify(name)} is a directory inside a snapshot`);
        if (type === 'symlink') {
          const link = h.linkname ?? '';
          const want = snap.parent === null ? undefined : `../${snap.parent}`;
          if (file !== 'parent' || want === undefined || link !== want) {
            throw new Error(`member ${JSON.stringify(name)} is a link to ${JSON.stringify(link)}; the only link allowed is a snapshot's 'parent' -> ../<its parent>`);
          }
          if (!snap.manifest) throw new Error(`member ${JSON.stringify(name)} comes before ${snap.id}/manifest.json`);
          if (!snap.present) await symlink(link, join(snap.dir, 'parent'));
          snap.link = true;
          seen.push({ name, type, size: 0 });
          entry.resume();
          continue;
        }
        // A regular file.
        if (!snap.manifest) {
          if (file !== 'manifest.json') throw new Error(`member ${JSON.stringify(name)} comes before ${snap.id}/manifest.json`);
          if (size > MAX_JSON_BYTES) throw new Error(`${name} is too large`);
          const body = await readBody(entry, MAX_JSON_BYTES);
          snap.manifest = parseManifest(body, snap.id, snap.parent);
          seen.push({ name, type, size: body.length, sha256: sha256(body) });
          if (snap.presentFiles && !sameFiles(snap.presentFiles, snap.manifest.files)) {
            throw new FerryError('ERR_SNAPSHOT_CONFLICT', `the store already has a snapshot '${snap.id}' with other contents than the archive's`, {
              hint: 'remove it from the store (it is an ancestor of the archive\'s snapshot), then import again',
            });
          }
          if (!snap.present) {
            await mkdir(snap.dir, { mode: 0o700 });
            await writeFile(join(snap.dir, 'manifest.json'), body, { flag: 'wx', mode: 0o600 });
            bytes += body.length;
          }
          continue;
        }
        if (file === 'parent') throw new Error(`member ${JSON.stringify(name)} must be a link`);
        const expected = snap.manifest.files[file];
        if (expected) {
          if (size !== expected.size) throw new Error(`${name} has ${size} bytes, its manifest says ${expected.size}`);
          if (snap.present) entry.resume();
          else await pipeline(entry, createWriteStream(join(snap.dir, file), { flags: 'wx', mode: 0o600 }));
          seen.push({ name, type, size });
        } else if (/\.log$/.test(file)) {
          if (size > MAX_LOG_BYTES) throw new Error(`${name} is too large for a log`);
          const body = await readBody(entry, MAX_LOG_BYTES);
          if (!snap.present) await writeFile(join(snap.dir, file), body, { flag: 'wx', mode: 0o600 });
          seen.push({ name, type, size: body.length, sha256: sha256(body) });
        } else {
          throw new Error(`member ${JSON.stringify(name)} is not listed in ${snap.id}/manifest.json`);
        }
        snap.files.add(file);
        if (!snap.present) bytes += size;
      }
    } catch (err) {
      if (err instanceof FerryError) throw err;
      if (archiveBytes === 0) throw rejected('ERR_ARCHIVE_TRUNCATED', source, 'it is empty', err);
      throw classifyStreamError(err, source);
    }
    if (!header || !tmp || !tier) throw rejected('ERR_ARCHIVE_TRUNCATED', source, 'it is empty');
    if (!trailer) throw rejected('ERR_ARCHIVE_TRUNCATED', source, `it ends before ${ARCHIVE_TRAILER} (${seen.length} members read)`);
    checkTrailer(trailer, seen, source);
    stage = 'verifying';
    for (const s of snaps.values()) {
      if (!s.manifest) throw rejected('ERR_ARCHIVE_INVALID', source, `it holds no manifest for ${s.id}`);
      if ((s.parent !== null) !== s.link) throw rejected('ERR_ARCHIVE_INVALID', source, `${s.id} ${s.link ? 'has a parent link but no parent' : 'lacks its parent link'}`);
      if (s.present) continue;
      try {
        await verifyChecksums(s.dir, s.manifest.files, s.id, s.manifest.algorithm);
      } catch (err) {
        if (!(err instanceof FerryError) || err.code !== 'ERR_SNAPSHOT_CORRUPT') throw err;
        throw rejected('ERR_ARCHIVE_CORRUPT', source, err.message, err);
      }
      const fixed: SnapshotManifest = { ...s.manifest, id: finalId(s.id), tier };
      if (fixed.id !== s.manifest.id || fixed.tier !== s.manifest.tier) {
        await writeFile(join(s.dir, 'manifest.json'), JSON.stringify(fixed, null, 2) + '\n', { mode: 0o600 });
      }
    }
    // Commit, oldest first: a snapshot becomes visible only after the one it builds on.
    stage = 'committing';
    const imported: string[] = [];
    const present: string[] = [];
    for (const c of header.chain) {
      const s = snaps.get(c.id);
      if (!s) continue;
      if (s.present) { present.push(s.id); continue; }
      const id = finalId(s.id);
      if (await store.find(id)) throw new FerryError('ERR_SNAPSHOT_EXISTS', `a snapshot named '${id}' appeared in the store during the import`, { hint: 'import again with --as NEWID' });
      await rename(s.dir, join(store.tierDir(tier), id));
      imported.push(id);
    }
    return { snapshot: finalId(header.snapshot), tier, imported, present, bytes, archiveBytes, durationMs: Date.now() - started };
  } catch (err) {
    input.unpipe();
    input.destroy();
    decompress.destroy();
    extract.destroy();
    if (!(err instanceof FerryError)) throw new FerryError('ERR_IMPORT', `import from ${source} failed while ${stage}: ${(err as Error).message}`, { cause: err });
    throw err;
  } finally {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  }
}

/** After the header: decides the tier, refuses an id clash, makes the temp dir. */
async function prepareImport(store: Store, header: ArchiveHeader, opts: ImportOptions, snaps: Map<string, Unpacking>): Promise<{ tier: Tier; tmp: string }> {
  const tipId = opts.as ?? header.snapshot;
  if (header.chain.some((c) => c.id === opts.as && c.id !== header.snapshot)) {
    throw new FerryError('ERR_USAGE', `--as ${opts.as}: the archive already holds an ancestor with that id`, { hint: 'pick another name' });
  }
  const tip = await store.find(tipId);
  if (tip) {
    throw new FerryError('ERR_SNAPSHOT_EXISTS', `the store already has a snapshot '${tipId}'`, {
      hint: opts.as === undefined ? 'import it under another id with `ferry import FILE --as NEWID`, or remove the one in the store' : 'pick another --as name',
    });
  }
  // Ancestors already in the store are kept (when identical) and decide the tier: a chain lives in one tier.
  const existing = new Map<string, StoredSnapshot>();
  for (const c of header.chain.slice(0, -1)) {
    const s = await store.find(c.id);
    if (s) existing.set(c.id, s);
  }
  const first = header.chain[0];
  if (first && first.parent !== null) {
    const p = await store.find(first.parent);
    if (!p) throw rejected('ERR_ARCHIVE_INVALID', opts.source ?? 'stdin', `its oldest snapshot builds on ${first.parent}, which is neither in the archive nor in the store`);
    existing.set(first.parent, p);
  }
  const tiers = new Set([...existing.values()].map((s) => s.manifest.tier));
  if (tiers.size > 1) throw new FerryError('ERR_SNAPSHOT_CONFLICT', 'the ancestors already in the store live in different tiers', { hint: 'remove the copies in the store, then import again' });
  const ancestorTier = [...tiers][0];
  if (opts.tier && ancestorTier && opts.tier !== ancestorTier) {
    throw new FerryError('ERR_USAGE', `ancestors of ${header.snapshot} are already in the ${ancestorTier} tier; a chain lives in one tier`, { hint: `import with --tier ${ancestorTier}` });
  }
  const tier = opts.tier ?? ancestorTier ?? 'disk';
  await store.ensure(tier);
  const tmp = join(store.tierDir(tier), `.tmp-import-${randomBytes(6).toString('hex')}`);
  await mkdir(tmp, { mode: 0o700 });
  for (const c of header.chain) {
    const have = existing.get(c.id);
    snaps.set(c.id, {
      id: c.id, parent: c.parent, dir: join(tmp, c.id), present: have !== undefined,
      ...(have ? { presentFiles: have.manifest.files } : {}), files: new Set(), link: false,
    });
  }
  return { tier, tmp };
}

function checkTrailer(trailer: ArchiveTrailer, seen: TrailerMember[], source: string): void {
  const list = Array.isArray(trailer.members) ? trailer.members : [];
  if (list.length !== seen.length) {
    throw rejected(list.length > seen.length ? 'ERR_ARCHIVE_TRUNCATED' : 'ERR_ARCHIVE_INVALID', source,
      `its trailer lists ${list.length} members, the archive holds ${seen.length}`);
  }
  seen.forEach((s, i) => {
    const t = list[i];
    if (!t || t.name !== s.name || t.type !== s.type || t.size !== s.size) {
      throw rejected('ERR_ARCHIVE_INVALID', source, `member ${i + 1} is ${s.name} (${s.size} bytes), its trailer says ${t?.name ?? '?'} (${t?.size ?? '?'} bytes)`);
    }
    if (s.sha256 !== undefined && t.sha256 !== s.sha256) throw rejected('ERR_ARCHIVE_CORRUPT', source, `${s.name} differs from what was exported (sha256)`);
  });
}

/** Errors from zstd and tar, said as what they mean for the archive. */
function classifyStreamError(err: unknown, source: string): FerryError {
  const msg = err instanceof Error ? err.message : String(err);
  if (/ended in middle of compressed data frame|Unexpected end of data/i.test(msg)) return rejected('ERR_ARCHIVE_TRUNCATED', source, `it is cut off (${msg})`, err);
  if (/checksum|corrupt|Unknown frame descriptor|Data corruption|Invalid tar header/i.test(msg)) return rejected('ERR_ARCHIVE_CORRUPT', source, `it is damaged (${msg})`, err);
  if (/Header exceeds max size/i.test(msg)) return rejected('ERR_ARCHIVE_INVALID', source, 'a tar header is larger than 4 MiB', err);
  if (errnoCode(err) === 'EEXIST') return rejected('ERR_ARCHIVE_INVALID', source, `a member would overwrite another (${msg})`, err);
  if (errnoCode(err) !== undefined) return new FerryError('ERR_IMPORT', `import from ${source} failed: ${msg}`, { cause: err, hint: 'check the store has room and is writable' });
  return rejected('ERR_ARCHIVE_INVALID', source, msg, err);
}
