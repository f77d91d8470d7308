/**
 * The format of ferry's snapshot archives (`ferry export` / `ferry import`): what an archive
 * holds and in what order, and the checks on it that do not depend on a snapshot's contents
 * (member names, the header, the trailer). Reading and writing are archive.ts; the checks of a
 * snapshot's members against its manifest are receive.ts.
 *
 * Layout, in this order (tar compressed with zstd, frame checksum on):
 *   ferry-archive.json          what is inside: {format, version, snapshot, chain:[{id, parent, bytes}]}
 *   <id>/                       for each snapshot of the chain, oldest first:
 *   <id>/manifest.json            always its first file (so every later member is checked against it)
 *   <id>/<file>                   CRIU's images (sizes and XXH3 in the manifest) and logs
 *   <id>/parent                   a symlink `../<parentId>`, only when the snapshot has a parent
 *   ferry-trailer.json          every member before it (name, type, size; sha256 of files the
 *                               manifest does not checksum): a cut-off archive lacks it
 */
import { FerryError, errnoCode } from '../util/errors.js';
import { MAX_CHAIN } from './send.js';
import { SNAPSHOT_ID_RE } from './store.js';

export const ARCHIVE_HEADER = 'ferry-archive.json';
export const ARCHIVE_TRAILER = 'ferry-trailer.json';
export const ARCHIVE_FORMAT = 'ferry-archive';
export const ARCHIVE_VERSION = 1;

/** Limits on members that are read into memory or not covered by the manifest. */
export const MAX_JSON_BYTES = 16 << 20;
const MAX_NAME_BYTES = 1024;

export interface ArchiveChainEntry { id: string; parent: string | null; bytes: number }
export interface ArchiveHeader { format: typeof ARCHIVE_FORMAT; version: number; snapshot: string; createdAt: string; chain: ArchiveChainEntry[] }
export interface TrailerMember { name: string; type: 'file' | 'directory' | 'symlink'; size: number; sha256?: string }
export interface ArchiveTrailer { members: TrailerMember[] }

/** An archive that must not be imported: unsafe, malformed, truncated or damaged. */
export function rejected(code: 'ERR_ARCHIVE_INVALID' | 'ERR_ARCHIVE_TRUNCATED' | 'ERR_ARCHIVE_CORRUPT', source: string, why: string, cause?: unknown): FerryError {
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

export function parseHeader(buf: Buffer): ArchiveHeader {
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

export function checkTrailer(trailer: ArchiveTrailer, seen: TrailerMember[], source: string): void {
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
export function classifyStreamError(err: unknown, source: string): FerryError {
  const msg = err instanceof Error ? err.message : String(err);
  if (/ended in middle of compressed data frame|Unexpected end of data/i.test(msg)) return rejected('ERR_ARCHIVE_TRUNCATED', source, `it is cut off (${msg})`, err);
  // zstd's frame errors (a reserved bit, a dictionary id, an impossible window) mean damage too.
  if (/checksum|corrupt|Unknown frame descriptor|Data corruption|Invalid tar header|Unsupported frame parameter|Dictionary mismatch|Frame requires too much memory/i.test(msg)) return rejected('ERR_ARCHIVE_CORRUPT', source, `it is damaged (${msg})`, err);
  if (/Header exceeds max size/i.test(msg)) return rejected('ERR_ARCHIVE_INVALID', source, 'a tar header is larger than 4 MiB', err);
  if (errnoCode(err) === 'EEXIST') return rejected('ERR_ARCHIVE_INVALID', source, `a member would overwrite another (${msg})`, err);
  if (errnoCode(err) !== undefined) return new FerryError('ERR_IMPORT', `import from ${source} failed: ${msg}`, { cause: err, hint: 'check the store has room and is writable' });
  return rejected('ERR_ARCHIVE_INVALID', source, msg, err);
}
