/**
 * Where everything of a store lives, and the only code that reads or writes its small JSON
 * records (manifest.json, store.json, the memory tier's back-pointer):
 *
 *   <root>/store.json                    the store's identity {format, id, createdAt}, written once
 *   <root>/config.json                   settings (config.ts)
 *   <root>/snapshots/<id>/               disk tier: CRIU's images + manifest.json
 *   <root>/snapshots/.tmp-<id>/          a snapshot being written (renamed to <id> when complete)
 *   <root>/intents/<id>.json             who is writing .tmp-<id> (intents.ts)
 *   <root>/logs/<kind>-<id>/             CRIU logs and work files of one operation (swept by retention)
 *   <root>/workloads/<name>/             `ferry run` bookkeeping
 *   <base>/<store-id>/                   memory tier of this store (base: $FERRY_MEMORY_TIER,
 *                                        config memoryTierBase, or /dev/shm/ferry)
 *   <base>/<store-id>/.ferry-store.json  back-pointer to the store, so orphans can be found
 *
 * Records are written atomically (temp file, fsync, rename): a reader sees the old or the new
 * file, never half of one. Reads are validated: a record that does not validate is "damaged"
 * with a readable reason, never cast.
 */
import { closeSync, constants as fsc, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { lstat, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';
import { FerryError, errnoCode } from '../util/errors.js';
import { firstIssue } from './config.js';
import { ManifestSchema, SNAPSHOT_ID_PATTERN, type SnapshotManifest } from './manifest.js';

export const MANIFEST_FILE = 'manifest.json';
export const STORE_FILE = 'store.json';
export const BACK_POINTER_FILE = '.ferry-store.json';
export const DEFAULT_MEMORY_BASE = '/dev/shm/ferry';
/** A snapshot being written, in its tier's directory. */
export const PENDING_PREFIX = '.tmp-';
/** A snapshot being removed (renamed first, so it is never listed half-removed). */
export const REMOVING_PREFIX = '.rm-';
/**
 * Names interrupted operations may leave in a tier directory: pending snapshots (`.tmp-<id>`,
 * `.tmp-import-*`), removals (`.rm-*`), and dedup's staging (`.fold-*`).
 */
export const LEFTOVER_RE = /^\.(tmp|rm|fold)-/;

export const snapshotsDir = (root: string): string => join(root, 'snapshots');
export const logsDir = (root: string): string => join(root, 'logs');
export const intentsDir = (root: string): string => join(root, 'intents');
export const workloadsDir = (root: string): string => join(root, 'workloads');
export const pendingDir = (tierDir: string, id: string): string => join(tierDir, `${PENDING_PREFIX}${id}`);
export const memoryDirFor = (base: string, storeId: string): string => join(base, storeId);

/** What kinds of operation keep a work/log directory. */
export type OperationKind = 'checkpoint' | 'restore' | 'import' | 'export' | 'migrate' | 'compact';

/**
 * The work/log directory of one operation: `<root>/logs/<kind>-<id>`. CRIU's log and stats are
 * written here (so a failed operation's log survives), and retention sweeps old ones.
 */
export function operationDir(root: string, kind: OperationKind, id: string): string {
  if (!SNAPSHOT_ID_PATTERN.test(id)) throw new FerryError('ERR_USAGE', `invalid operation id '${id}'`, { hint: 'use letters, digits, dot, dash and underscore' });
  return join(logsDir(root), `${kind}-${id}`);
}

// ---------------------------------------------------------------- atomic writes

/** Writes `text` to `path` atomically: a temp file beside it, fsync, rename. */
export async function writeFileAtomic(path: string, text: string, mode = 0o600): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomHex(4)}`);
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

function writeTempSync(path: string, text: string): string {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomHex(4)}`);
  const fd = openSync(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return tmp;
}

// ---------------------------------------------------------------- manifests

export type ManifestRead =
  | { state: 'ok'; manifest: SnapshotManifest }
  | { state: 'damaged'; reason: string }
  | { state: 'absent' };

/**
 * Reads and validates `<dir>/manifest.json`. `absent`: there is no such directory. `damaged`:
 * the directory exists but its manifest is missing, unreadable, not JSON, invalid, or names
 * another snapshot than `expectId`.
 */
export async function readManifest(dir: string, expectId?: string): Promise<ManifestRead> {
  const file = join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT') {
      // No manifest: no snapshot here, or a snapshot directory that lost it.
      const isDir = await stat(dir).then((st) => st.isDirectory(), () => false);
      return isDir ? { state: 'damaged', reason: `${MANIFEST_FILE} is missing` } : { state: 'absent' };
    }
    if (code === 'ENOTDIR') return { state: 'damaged', reason: 'not a directory' };
    return { state: 'damaged', reason: `${MANIFEST_FILE} cannot be read (${code ?? (err as Error).message})` };
  }
  return parseManifestText(text, expectId);
}

/** Validates a manifest's text (the reason names what is wrong). */
export function parseManifestText(text: string, expectId?: string): ManifestRead {
  let raw: unknown;
  try { raw = JSON.parse(text); } catch (err) {
    return { state: 'damaged', reason: `${MANIFEST_FILE} is not JSON (${(err as Error).message})` };
  }
  const r = ManifestSchema.safeParse(raw);
  if (!r.success) return { state: 'damaged', reason: `${MANIFEST_FILE} is invalid: ${firstIssue(r.error)}` };
  if (expectId !== undefined && r.data.id !== expectId) return { state: 'damaged', reason: `${MANIFEST_FILE} belongs to snapshot '${r.data.id}'` };
  // Validated above; the schema is loose (keeps fields added later), so the interface is the view.
  return { state: 'ok', manifest: r.data as unknown as SnapshotManifest };
}

/** Writes `<dir>/manifest.json` atomically, after checking it would read back valid. */
export async function writeManifest(dir: string, manifest: SnapshotManifest): Promise<void> {
  const text = JSON.stringify(manifest, null, 2) + '\n';
  const check = parseManifestText(text);
  if (check.state !== 'ok') {
    throw new FerryError('ERR_INTERNAL', `refusing to write an invalid manifest for ${manifest.id}: ${check.state === 'damaged' ? check.reason : ''}`);
  }
  await writeFileAtomic(join(dir, MANIFEST_FILE), text);
}

// ---------------------------------------------------------------- store identity

const StoreIdentitySchema = z.object({
  format: z.literal(1),
  id: z.string().regex(/^[0-9a-f]{16}$/, 'not a store id'),
  createdAt: z.string(),
});
export type StoreIdentity = z.infer<typeof StoreIdentitySchema>;

function damagedIdentity(path: string, why: string): FerryError {
  return new FerryError('ERR_STORE_CORRUPT', `the store's identity ${path} is damaged: ${why}`, {
    hint: `remove ${path} (the store gets a new identity; snapshots of its memory tier under the old one become orphans that \`ferry snapshots gc\` removes)`,
  });
}

/** Reads `<root>/store.json`; undefined when the store has none yet (or does not exist). */
export function readIdentity(root: string): StoreIdentity | undefined {
  const path = join(root, STORE_FILE);
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw damagedIdentity(path, code ?? (err as Error).message);
  }
  let raw: unknown;
  try { raw = JSON.parse(text); } catch (err) { throw damagedIdentity(path, `not JSON (${(err as Error).message})`); }
  const r = StoreIdentitySchema.safeParse(raw);
  if (!r.success) throw damagedIdentity(path, firstIssue(r.error));
  return r.data;
}

/**
 * The store's identity, created once (a random id) when it has none. Two processes creating it
 * at once agree: the file is published with link(), which fails if the other one won.
 */
export function ensureIdentity(root: string): StoreIdentity {
  const have = readIdentity(root);
  if (have) return have;
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const path = join(root, STORE_FILE);
  const mine: StoreIdentity = { format: 1, id: randomHex(8), createdAt: new Date().toISOString() };
  const tmp = writeTempSync(path, JSON.stringify(mine, null, 2) + '\n');
  try {
    linkSync(tmp, path);
  } catch (err) {
    if (errnoCode(err) !== 'EEXIST') throw err;
  } finally {
    unlinkSync(tmp);
  }
  const now = readIdentity(root);
  if (!now) throw damagedIdentity(path, 'it vanished while being created');
  return now;
}

// ---------------------------------------------------------------- memory tier back-pointer

const BackPointerSchema = z.object({
  format: z.literal(1),
  storeId: z.string(),
  root: z.string(),
  createdAt: z.string(),
});
export type BackPointer = z.infer<typeof BackPointerSchema>;

/** Writes the back-pointer of a store's memory-tier directory (once; it never changes). */
export function writeBackPointer(memoryDir: string, identity: StoreIdentity, root: string): void {
  const path = join(memoryDir, BACK_POINTER_FILE);
  const current = readBackPointer(memoryDir);
  if (current && current.storeId === identity.id && current.root === root) return;
  const bp: BackPointer = { format: 1, storeId: identity.id, root, createdAt: new Date().toISOString() };
  const tmp = writeTempSync(path, JSON.stringify(bp, null, 2) + '\n');
  renameSync(tmp, path);
}

/** The back-pointer of a memory-tier directory; undefined when it has none or it is invalid. */
export function readBackPointer(memoryDir: string): BackPointer | undefined {
  try {
    const r = BackPointerSchema.safeParse(JSON.parse(readFileSync(join(memoryDir, BACK_POINTER_FILE), 'utf8')));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Random bytes as hex, from /dev/urandom: node:crypto costs a CLI command ≈ 7 ms to load, and
 * ids need a few bytes. (Uniqueness is still enforced by mkdir/link of what they name.)
 */
export function randomHex(n: number): string {
  const buf = Buffer.alloc(n);
  const fd = openSync('/dev/urandom', 'r');
  try {
    readSync(fd, buf, 0, n, null);
  } finally {
    closeSync(fd);
  }
  return buf.toString('hex');
}

/** Bytes a directory's own entries occupy (st_blocks × 512, symlinks not followed, recursive). */
export async function storedBytes(dir: string): Promise<number> {
  let total = 0;
  let names: string[];
  try { names = await readdir(dir); } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return 0; // gone, or a file (the back-pointer)
    throw err;
  }
  for (const n of names) {
    const p = join(dir, n);
    const st = await lstat(p).catch(() => undefined);
    if (!st) continue; // removed meanwhile
    total += st.blocks * 512;
    if (st.isDirectory()) total += await storedBytes(p);
  }
  return total;
}
