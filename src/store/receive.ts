/**
 * Receiving snapshots into the store from outside (an archive being imported, later a
 * migration peer): receive → check → commit, whatever carries the bytes.
 *
 * The sender declares the chain first (each snapshot builds on the one before; the oldest on
 * nothing or on a snapshot already in the store). Each snapshot's manifest.json comes before its
 * files and is validated; every file must be listed in it with that exact size (or be a CRIU
 * log), its `parent` link must be the one its manifest names, and nothing may come twice. Files
 * are written into a `.tmp-import-*` directory of the target tier, never over anything. commit()
 * then checks that each snapshot is complete and that every image file passes its checksum, and
 * only then renames the snapshots into place, oldest first (a snapshot never becomes visible
 * before the one it builds on). On any failure — a refused member, a failed check, an error of
 * the carrier — abort() leaves nothing of it in the store.
 *
 * Ancestors already in the store are not written again: their manifest must list the same
 * files (else ERR_SNAPSHOT_CONFLICT), their members are still checked, then dropped.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import { FerryError } from '../util/errors.js';
import { verifyChecksums, type FileSums } from './checksums.js';
import type { SnapshotManifest, Tier } from './manifest.js';
import { PARENT_LINK, parentLinkTarget } from './parent-link.js';
import { SNAPSHOT_ID_RE, type Store, type StoredSnapshot } from './store.js';

/** Files of a snapshot its manifest does not checksum (same rule as checksums.ts). */
export const UNSUMMED = /^(manifest\.json|[^/]*\.log)$/;
/** A CRIU log may be this large at most. */
export const MAX_LOG_BYTES = 1 << 30;
const MAX_FILE_NAME_BYTES = 255;

/** What was wrong with what was received: malformed or unsafe, or damaged. (A cut-off transfer is the carrier's to say.) */
export type RejectKind = 'invalid' | 'corrupt';

export interface ReceivePlan {
  /** The snapshots to receive, oldest first; each builds on the one before it. */
  chain: readonly { id: string; parent: string | null }[];
  /** Receive the last snapshot under this id instead (its ancestors keep theirs). */
  as?: string;
  /** Tier to receive into (default: the tier of an ancestor already in the store, else disk). */
  tier?: Tier;
  /** Makes the error for refused input (default: ERR_RECEIVE_INVALID / ERR_RECEIVE_CORRUPT). */
  reject?: (kind: RejectKind, why: string, cause?: unknown) => FerryError;
}

export interface ReceiveResult {
  /** The id of the last snapshot of the chain, as committed. */
  snapshot: string;
  tier: Tier;
  /** Snapshots created, oldest first. */
  imported: string[];
  /** Ancestors that were already in the store (identical), not written again. */
  present: string[];
  /** Bytes written into the store. */
  bytes: number;
}

/** One declared snapshot being received. */
export interface SnapshotReceiver {
  readonly id: string;
  readonly parent: string | null;
  /** Already in the store: its members are checked, not written. */
  readonly present: boolean;
  readonly manifest: SnapshotManifest | undefined;
  /** Its manifest.json, as sent; must come before any other member. */
  setManifest: (bytes: Buffer) => Promise<void>;
  /** One file of the snapshot (`name`: a plain file name), `size` bytes. */
  addFile: (name: string, data: Readable | Buffer, size: number) => Promise<void>;
  /** A symlink in the snapshot: only `parent` -> ../<its parent> is allowed. */
  addLink: (name: string, target: string) => Promise<void>;
}

export interface Reception {
  readonly tier: Tier;
  /** The declared snapshot `id`; refused when it is not declared. */
  snapshot: (id: string) => SnapshotReceiver;
  /** Checks every snapshot (complete, parent link, image checksums); idempotent. */
  verify: () => Promise<void>;
  /** verify(), then makes the snapshots visible, oldest first. Removes the temp dir either way. */
  commit: () => Promise<ReceiveResult>;
  /** Drops everything received; nothing of it remains in the store. */
  abort: () => Promise<void>;
}

function defaultReject(kind: RejectKind, why: string, cause?: unknown): FerryError {
  const code = kind === 'corrupt' ? 'ERR_RECEIVE_CORRUPT' : 'ERR_RECEIVE_INVALID';
  return new FerryError(code, `received snapshot rejected: ${why}`, {
    hint: 'nothing was stored; send the snapshot again', ...(cause !== undefined ? { cause } : {}),
  });
}

const ManifestShape = z.looseObject({
  id: z.string(),
  parent: z.string().optional(),
  algorithm: z.string().optional(),
  files: z.record(z.string(), z.looseObject({ size: z.number().int().nonnegative(), hash: z.string() })),
});

/**
 * Parses and checks a received manifest.json: JSON, the fields the store relies on, its id and
 * parent as declared, file names that are plain names of image files. Throws a plain Error
 * saying what is wrong.
 */
export function parseReceivedManifest(buf: Buffer, id: string, parent: string | null): SnapshotManifest {
  let raw: unknown;
  try { raw = JSON.parse(buf.toString('utf8')); } catch { throw new Error(`${id}/manifest.json is not JSON`); }
  if (raw === null || typeof raw !== 'object' || (raw as { id?: unknown }).id !== id) throw new Error(`${id}/manifest.json belongs to another snapshot`);
  const m = raw as { parent?: unknown; files?: unknown };
  if ((m.parent ?? null) !== parent) throw new Error(`${id}/manifest.json names parent ${typeof m.parent === 'string' ? m.parent : 'none'}, the sender ${parent ?? 'none'}`);
  if (typeof m.files !== 'object' || m.files === null) throw new Error(`${id}/manifest.json lists no files`);
  for (const n of Object.keys(m.files)) {
    if (!isPlainName(n) || UNSUMMED.test(n) || n === PARENT_LINK) throw new Error(`${id}/manifest.json lists an invalid file name ${JSON.stringify(n)}`);
  }
  const checked = ManifestShape.safeParse(raw);
  if (!checked.success) {
    const issue = checked.error.issues[0];
    const where = issue?.path.map(String).join('.') ?? '?';
    throw new Error(`${id}/manifest.json has an invalid ${where} (${issue?.message ?? 'invalid'})`);
  }
  return raw as SnapshotManifest;
}

/** A single path component that names a file in a snapshot directory. */
function isPlainName(n: string): boolean {
  return n !== '' && n !== '.' && n !== '..' && !n.includes('/') && !n.includes('\0') && Buffer.byteLength(n) <= MAX_FILE_NAME_BYTES;
}

function sameFiles(a: FileSums, b: FileSums): boolean {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k]?.size === b[k]?.size && a[k]?.hash === b[k]?.hash);
}

async function readAll(data: Readable | Buffer, limit: number): Promise<Buffer> {
  if (Buffer.isBuffer(data)) return data;
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of data) {
    n += (c as Buffer).length;
    if (n > limit) throw new Error('member larger than allowed');
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

async function drain(data: Readable | Buffer): Promise<void> {
  if (!Buffer.isBuffer(data)) for await (const _ of data) { /* read and dropped */ }
}

/**
 * Starts receiving `plan.chain` into the store: decides the tier, refuses an id clash, finds the
 * ancestors already there, makes the temp dir. The caller feeds each snapshot's members, then
 * commit()s, or abort()s on any failure of its own.
 */
export async function beginReceive(store: Store, plan: ReceivePlan): Promise<Reception> {
  const reject = plan.reject ?? defaultReject;
  const chain = plan.chain;
  const last = chain[chain.length - 1];
  if (!last) throw reject('invalid', 'it declares no snapshots');
  if (plan.as !== undefined && !SNAPSHOT_ID_RE.test(plan.as)) {
    throw new FerryError('ERR_USAGE', `invalid snapshot name '${plan.as}'`, { hint: 'use letters, digits, dot, dash and underscore' });
  }
  const ids = new Set<string>();
  chain.forEach((c, i) => {
    if (!SNAPSHOT_ID_RE.test(c.id)) throw reject('invalid', `it declares an invalid snapshot id ${JSON.stringify(c.id)}`);
    if (ids.has(c.id)) throw reject('invalid', `it declares snapshot ${c.id} twice`);
    ids.add(c.id);
    if (i > 0 && c.parent !== chain[i - 1]?.id) throw reject('invalid', `snapshot ${c.id} does not build on ${chain[i - 1]?.id ?? '?'}`);
    if (c.parent !== null && !SNAPSHOT_ID_RE.test(c.parent)) throw reject('invalid', `snapshot ${c.id} names an invalid parent`);
  });
  const tipId = plan.as ?? last.id;
  if (chain.some((c) => c.id === plan.as && c.id !== last.id)) {
    throw new FerryError('ERR_USAGE', `--as ${plan.as}: the archive already holds an ancestor with that id`, { hint: 'pick another name' });
  }
  if (await store.find(tipId)) {
    throw new FerryError('ERR_SNAPSHOT_EXISTS', `the store already has a snapshot '${tipId}'`, {
      hint: plan.as === undefined ? 'import it under another id with `ferry import FILE --as NEWID`, or remove the one in the store' : 'pick another --as name',
    });
  }
  // Ancestors already in the store are kept (when identical) and decide the tier: a chain lives in one tier.
  const existing = new Map<string, StoredSnapshot>();
  for (const c of chain.slice(0, -1)) {
    const s = await store.find(c.id);
    if (s) existing.set(c.id, s);
  }
  const first = chain[0]!;
  if (first.parent !== null) {
    const p = await store.find(first.parent);
    if (!p) throw reject('invalid', `its oldest snapshot builds on ${first.parent}, which is neither in the archive nor in the store`);
    existing.set(first.parent, p);
  }
  const tiers = new Set([...existing.values()].map((s) => s.manifest.tier));
  if (tiers.size > 1) throw new FerryError('ERR_SNAPSHOT_CONFLICT', 'the ancestors already in the store live in different tiers', { hint: 'remove the copies in the store, then import again' });
  const ancestorTier = [...tiers][0];
  if (plan.tier && ancestorTier && plan.tier !== ancestorTier) {
    throw new FerryError('ERR_USAGE', `ancestors of ${last.id} are already in the ${ancestorTier} tier; a chain lives in one tier`, { hint: `import with --tier ${ancestorTier}` });
  }
  const tier = plan.tier ?? ancestorTier ?? 'disk';
  await store.ensure(tier);
  const tmp = join(store.tierDir(tier), `.tmp-import-${randomBytes(6).toString('hex')}`);
  await mkdir(tmp, { mode: 0o700 });
  const finalId = (id: string) => (id === last.id ? tipId : id);
  let bytes = 0;
  let verified = false;

  const receivers = new Map<string, SnapshotReceiver & { files: Set<string>; link: boolean; dir: string }>();
  for (const c of chain) {
    const have = existing.get(c.id);
    const dir = join(tmp, c.id);
    let manifest: SnapshotManifest | undefined;
    const files = new Set<string>();
    const member = (name: string) => JSON.stringify(`${c.id}/${name}`);
    const r = {
      id: c.id, parent: c.parent, present: have !== undefined, dir, files, link: false,
      get manifest() { return manifest; },
      setManifest: async (body: Buffer) => {
        if (manifest) throw reject('invalid', `member ${member('manifest.json')} appears twice`);
        try {
          manifest = parseReceivedManifest(body, c.id, c.parent);
        } catch (err) {
          throw reject('invalid', (err as Error).message, err);
        }
        if (have && !sameFiles(have.manifest.files, manifest.files)) {
          throw new FerryError('ERR_SNAPSHOT_CONFLICT', `the store already has a snapshot '${c.id}' with other contents than the archive's`, {
            hint: 'remove it from the store (it is an ancestor of the archive\'s snapshot), then import again',
          });
        }
        if (!have) {
          await mkdir(dir, { mode: 0o700 });
          await writeFile(join(dir, 'manifest.json'), body, { flag: 'wx', mode: 0o600 });
          bytes += body.length;
        }
      },
      addLink: async (name: string, target: string) => {
        const want = c.parent === null ? undefined : parentLinkTarget(c.parent);
        if (name !== PARENT_LINK || want === undefined || target !== want) {
          throw reject('invalid', `member ${member(name)} is a link to ${JSON.stringify(target)}; the only link allowed is a snapshot's 'parent' -> ../<its parent>`);
        }
        if (!manifest) throw reject('invalid', `member ${member(name)} comes before ${c.id}/manifest.json`);
        if (r.link) throw reject('invalid', `member ${member(name)} appears twice`);
        if (!have) await symlink(target, join(dir, PARENT_LINK));
        r.link = true;
      },
      addFile: async (name: string, data: Readable | Buffer, size: number) => {
        if (!isPlainName(name)) throw reject('invalid', `member ${member(name)} is not a plain file name`);
        if (!manifest) {
          if (name === 'manifest.json') throw reject('invalid', 'a manifest must be set with setManifest');
          throw reject('invalid', `member ${member(name)} comes before ${c.id}/manifest.json`);
        }
        if (name === 'manifest.json' || files.has(name)) throw reject('invalid', `member ${member(name)} appears twice`);
        if (name === PARENT_LINK) throw reject('invalid', `member ${member(name)} must be a link`);
        const expected = manifest.files[name];
        if (expected) {
          if (size !== expected.size) throw reject('invalid', `${c.id}/${name} has ${size} bytes, its manifest says ${expected.size}`);
          files.add(name);
          if (have) await drain(data);
          else if (Buffer.isBuffer(data)) await writeFile(join(dir, name), data, { flag: 'wx', mode: 0o600 });
          else await pipeline(data, createWriteStream(join(dir, name), { flags: 'wx', mode: 0o600 }));
        } else if (/\.log$/.test(name)) {
          if (size > MAX_LOG_BYTES) throw reject('invalid', `${c.id}/${name} is too large for a log`);
          files.add(name);
          const body = await readAll(data, MAX_LOG_BYTES);
          if (!have) await writeFile(join(dir, name), body, { flag: 'wx', mode: 0o600 });
        } else {
          throw reject('invalid', `member ${member(name)} is not listed in ${c.id}/manifest.json`);
        }
        if (!have) bytes += size;
      },
    };
    receivers.set(c.id, r);
  }

  const reception: Reception = {
    tier,
    snapshot: (id) => {
      const r = receivers.get(id);
      if (!r) throw reject('invalid', `snapshot ${JSON.stringify(id)} is not one it declared`);
      return r;
    },
    verify: async () => {
      if (verified) return;
      for (const s of receivers.values()) {
        if (!s.manifest) throw reject('invalid', `it holds no manifest for ${s.id}`);
        if ((s.parent !== null) !== s.link) throw reject('invalid', `${s.id} ${s.link ? 'has a parent link but no parent' : 'lacks its parent link'}`);
        if (s.present) continue;
        try {
          await verifyChecksums(s.dir, s.manifest.files, s.id, s.manifest.algorithm);
        } catch (err) {
          if (!(err instanceof FerryError) || err.code !== 'ERR_SNAPSHOT_CORRUPT') throw err;
          throw reject('corrupt', err.message, err);
        }
        const fixed: SnapshotManifest = { ...s.manifest, id: finalId(s.id), tier };
        if (fixed.id !== s.manifest.id || fixed.tier !== s.manifest.tier) {
          await writeFile(join(s.dir, 'manifest.json'), JSON.stringify(fixed, null, 2) + '\n', { mode: 0o600 });
        }
      }
      verified = true;
    },
    commit: async () => {
      const imported: string[] = [];
      const present: string[] = [];
      const moved: { from: string; to: string }[] = [];
      try {
        await reception.verify();
        // Oldest first: a snapshot becomes visible only after the one it builds on.
        for (const c of chain) {
          const s = receivers.get(c.id)!;
          if (s.present) { present.push(s.id); continue; }
          const id = finalId(s.id);
          if (await store.find(id)) throw new FerryError('ERR_SNAPSHOT_EXISTS', `a snapshot named '${id}' appeared in the store during the import`, { hint: 'import again with --as NEWID' });
          const to = join(store.tierDir(tier), id);
          await rename(s.dir, to);
          moved.push({ from: s.dir, to });
          imported.push(id);
        }
      } catch (err) {
        // Take back what this commit made visible, newest first: all or nothing.
        for (const m of moved.reverse()) await rename(m.to, m.from).catch(() => rm(m.to, { recursive: true, force: true }));
        throw err;
      } finally {
        await rm(tmp, { recursive: true, force: true });
      }
      return { snapshot: tipId, tier, imported, present, bytes };
    },
    abort: () => rm(tmp, { recursive: true, force: true }),
  };
  return reception;
}

/**
 * Receiving one snapshot (the migration case): its manifest first, which declares its id and
 * parent (already in the store). Then addFile/addLink for its members, then commit or abort.
 */
export async function beginSnapshotReceive(store: Store, manifestBytes: Buffer, opts: Omit<ReceivePlan, 'chain'> = {}): Promise<SnapshotReceiver & Pick<Reception, 'commit' | 'abort'>> {
  const reject = opts.reject ?? defaultReject;
  let head: { id?: unknown; parent?: unknown } | null;
  try { head = JSON.parse(manifestBytes.toString('utf8')) as typeof head; } catch (err) { throw reject('invalid', 'its manifest.json is not JSON', err); }
  const id = head?.id, parent = head?.parent ?? null;
  if (typeof id !== 'string' || (parent !== null && typeof parent !== 'string')) throw reject('invalid', 'its manifest.json names no snapshot id or an invalid parent');
  const rx = await beginReceive(store, { ...opts, chain: [{ id, parent }] });
  const s = rx.snapshot(id);
  try {
    await s.setManifest(manifestBytes);
  } catch (err) {
    await rx.abort();
    throw err;
  }
  return {
    id: s.id, parent: s.parent, present: s.present,
    get manifest() { return s.manifest; },
    setManifest: s.setManifest, addFile: s.addFile, addLink: s.addLink,
    commit: rx.commit, abort: rx.abort,
  };
}
