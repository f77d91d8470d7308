import { constants as fsc } from 'node:fs';
import { access, chmod, lstat, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError, errnoCode } from '../util/errors.js';
import { readStoreConfigSync } from './config.js';
import { newIntent, ownerAlive, patchIntent, readIntents, removeIntent, writeIntent, type Intent, type IntentPatch } from './intents.js';
import {
  DEFAULT_MEMORY_BASE, intentsDir, LEFTOVER_RE, MANIFEST_FILE, PENDING_PREFIX, REMOVING_PREFIX, ensureIdentity, memoryDirFor, operationDir, parseManifestText,
  pendingDir, randomHex, readIdentity, readManifest, snapshotsDir, storedBytes, workloadsDir, writeBackPointer, writeFileAtomic, type OperationKind, type StoreIdentity,
} from './layout.js';
import { SNAPSHOT_ID_PATTERN, type SnapshotManifest, type Tier } from './manifest.js';

export const DEFAULT_STORE = '/var/lib/ferry';
/** Base of the memory tier: each store gets `<base>/<store-id>/` (see layout.ts). */
export const DEFAULT_MEMORY_TIER = DEFAULT_MEMORY_BASE;

export interface StoreOptions {
  root: string;
  /** This store's memory-tier directory, exactly (tests and benches); default `<memoryBase>/<store-id>`. */
  memoryDir?: string;
  /** Base of memory tiers (default: $FERRY_MEMORY_TIER, else config.json's memoryTierBase, else /dev/shm/ferry). */
  memoryBase?: string;
}

/** A snapshot being written: CRIU dumps into `dir`; `commit` makes it appear, atomically. */
export interface PendingSnapshot {
  id: string;
  tier: Tier;
  dir: string;
  /** The intent record as last written. */
  readonly intent: Intent;
  /** Records progress (phase) and what the engine needs to finish or undo it (payload); atomic. */
  updateIntent(patch: IntentPatch): Promise<void>;
  /** Writes the manifest, renames the directory into place, removes the intent record. */
  commit(manifest: SnapshotManifest): Promise<string>;
  /** Removes the pending directory and the intent record. */
  abandon(): Promise<void>;
}

export interface StoredSnapshot {
  manifest: SnapshotManifest;
  dir: string;
}

/** A snapshot directory whose manifest cannot be used. */
export interface DamagedSnapshot {
  id: string;
  tier: Tier;
  dir: string;
  reason: string;
  bytes: number;
}

/** Something an interrupted (or still running) operation left behind. */
export interface Leftover {
  /** The snapshot id for pending snapshots with an intent record, else the entry's name. */
  id: string;
  /** pending: a snapshot being written; removing: `.rm-*`; staging: `.fold-*` and other temp dirs; intent: a record without its directory. */
  kind: 'pending' | 'removing' | 'staging' | 'intent';
  tier: Tier | undefined;
  /** The directory on disk (undefined when only the intent record is left). */
  dir: string | undefined;
  /** The intent record's file, when there is one. */
  intentPath: string | undefined;
  op: string | undefined;
  phase: string | undefined;
  bytes: number;
  /** Since the record was written, or since the directory last changed. */
  ageMs: number;
  /** true: its operation still runs; false: its owner is gone; undefined: no record names an owner. */
  ownerAlive: boolean | undefined;
  /** Why an intent record could not be read, when it could not. */
  damaged?: string;
}

export interface StoreScan {
  /** Complete, valid snapshots, oldest first. */
  snapshots: StoredSnapshot[];
  damaged: DamagedSnapshot[];
  leftovers: Leftover[];
}

/** An operation whose owner is gone: its record and what its directory holds. */
export interface InterruptedOperation {
  intent: Intent;
  /** The pending directory exists (false: only the record is left). */
  dirExists: boolean;
  bytes: number;
}

const ID_RE = SNAPSHOT_ID_PATTERN;
/** What a snapshot id may look like (also a safe single path component). */
export const SNAPSHOT_ID_RE = ID_RE;
const TIERS = ['memory', 'disk'] as const;

function unwritable(d: string, err: unknown): FerryError {
  return new FerryError('ERR_STORE_UNWRITABLE', `the snapshot store is not writable: ${d} (${errnoCode(err) ?? (err as Error).message})`, {
    cause: err,
    hint: 'pass --store DIR (or set FERRY_STORE) to a directory ferry can create and write, as root',
  });
}

/**
 * The snapshot store (layout in layout.ts): a disk tier under the root, a memory tier of its own
 * on tmpfs. A snapshot is written under a `.tmp-` name, with an intent record naming its owner,
 * and renamed into place only when complete. Everything is mode 0700. One damaged snapshot
 * never hides or blocks the others.
 */
export class Store {
  readonly root: string;
  private readonly explicitMemoryDir: string | undefined;
  private readonly explicitBase: string | undefined;
  private identity: StoreIdentity | undefined;

  constructor(options: StoreOptions) {
    this.root = options.root;
    this.explicitMemoryDir = options.memoryDir;
    this.explicitBase = options.memoryBase;
  }

  /** Where memory tiers live: each store's is `<memoryBase>/<store-id>`. */
  get memoryBase(): string {
    return this.explicitBase ?? (process.env['FERRY_MEMORY_TIER'] || readStoreConfigSync(this.root).memoryTierBase || DEFAULT_MEMORY_BASE);
  }

  /** The store's identity (store.json), created when it has none. */
  ensureIdentity(): StoreIdentity {
    try {
      this.identity ??= ensureIdentity(this.root);
    } catch (err) {
      if (err instanceof FerryError) throw err;
      throw unwritable(this.root, err);
    }
    return this.identity;
  }

  /** This store's memory-tier directory (creates the store's identity when it has none). */
  get memoryDir(): string {
    return this.explicitMemoryDir ?? memoryDirFor(this.memoryBase, this.ensureIdentity().id);
  }

  /** The memory-tier directory if the store has one yet; reads never create an identity. */
  existingMemoryDir(): string | undefined {
    if (this.explicitMemoryDir !== undefined) return this.explicitMemoryDir;
    this.identity ??= readIdentity(this.root);
    return this.identity ? memoryDirFor(this.memoryBase, this.identity.id) : undefined;
  }

  tierDir(tier: Tier): string {
    return tier === 'memory' ? this.memoryDir : snapshotsDir(this.root);
  }

  /** Workload bookkeeping of `ferry run` (name → pid, logs). */
  get workloadsDir(): string {
    return workloadsDir(this.root);
  }

  /** The work/log directory of an operation (`<root>/logs/<kind>-<id>`); see makeOperationDir. */
  operationDir(kind: OperationKind, id: string): string {
    return operationDir(this.root, kind, id);
  }

  /**
   * Creates an operation's work/log directory (engine/paths.ts then sweeps logs past the
   * retention settings: retention.ts sweepLogs).
   */
  async makeOperationDir(kind: OperationKind, id: string): Promise<string> {
    const dir = this.operationDir(kind, id);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  /** Throws a clear error when the store's path exists but is not a directory. */
  async checkRoot(): Promise<void> {
    const st = await stat(this.root).catch((err: unknown) => {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw unwritable(this.root, err);
    });
    if (st && !st.isDirectory()) {
      throw new FerryError('ERR_STORE_UNWRITABLE', `the snapshot store ${this.root} is not a directory`, {
        hint: 'pass --store DIR (or set FERRY_STORE) to a directory (or to a path ferry may create), not to a file',
      });
    }
  }

  /** Creates the store's directories (0700) and checks they are writable. */
  async ensure(tier?: Tier): Promise<void> {
    await this.checkRoot();
    const dirs = [this.root, snapshotsDir(this.root), this.workloadsDir];
    for (const d of dirs) await this.makeDir(d);
    const identity = this.ensureIdentity();
    if (tier === 'memory') {
      const mem = this.memoryDir;
      await this.makeDir(mem);
      // The back-pointer lets gc find memory tiers of deleted stores under the base; a memory
      // directory given explicitly (tests, benches) is not under it and its owner removes it.
      if (this.explicitMemoryDir === undefined) {
        try { writeBackPointer(mem, identity, this.root); } catch (err) { throw unwritable(mem, err); }
      }
    }
  }

  private async makeDir(d: string): Promise<void> {
    try {
      await mkdir(d, { recursive: true, mode: 0o700 });
      await chmod(d, 0o700);
      await access(d, fsc.W_OK);
    } catch (err) {
      throw unwritable(d, err);
    }
  }

  newId(): string {
    const t = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').toLowerCase();
    return `${t}-${randomHex(3)}`;
  }

  /**
   * Starts a snapshot: writes its intent record (owner = this process), then creates its
   * pending directory. Call it before CRIU starts.
   */
  async begin(tier: Tier, id = this.newId(), what: { op?: string; payload?: Record<string, unknown> } = {}): Promise<PendingSnapshot> {
    if (!ID_RE.test(id)) throw new FerryError('ERR_USAGE', `invalid snapshot name '${id}'`, { hint: 'use letters, digits, dot, dash and underscore' });
    await this.ensure(tier);
    if (await this.exists(id)) throw new FerryError('ERR_SNAPSHOT_EXISTS', `a snapshot named '${id}' already exists`, { hint: 'pick another --name, or remove it with `ferry snapshots rm`' });
    const base = this.tierDir(tier);
    const dir = pendingDir(base, id);
    const intent = newIntent(id, tier, dir, what.op ?? 'checkpoint', what.payload ?? {});
    await this.makeDir(intentsDir(this.root));
    await writeIntent(this.root, intent);
    try {
      await mkdir(dir, { mode: 0o700 });
    } catch (err) {
      await removeIntent(this.root, id);
      if (errnoCode(err) === 'EEXIST') {
        throw new FerryError('ERR_SNAPSHOT_EXISTS', `a snapshot named '${id}' is being written (or was interrupted): ${dir} exists`, {
          hint: 'pick another --name; `ferry snapshots ls` shows interrupted operations and `ferry snapshots gc` removes them',
        });
      }
      throw unwritable(dir, err);
    }
    return this.pendingHandle(intent, base);
  }

  /**
   * Takes over the pending snapshot of an interrupted operation (its owner is gone), to commit
   * or abandon it: the intent record passes to this process.
   */
  async adopt(found: Intent): Promise<PendingSnapshot> {
    const base = found.tier === 'memory' ? this.memoryDir : snapshotsDir(this.root);
    const mine = { ...newIntent(found.id, found.tier, found.dir, found.op, found.payload), phase: found.phase, createdAt: found.createdAt };
    await writeIntent(this.root, mine);
    return this.pendingHandle(mine, base);
  }

  private pendingHandle(first: Intent, base: string): PendingSnapshot {
    let intent = first;
    const { id, tier, dir } = intent;
    let writes: Promise<void> = Promise.resolve();
    const root = this.root;
    return {
      id, tier, dir,
      get intent() { return intent; },
      updateIntent(patch) {
        // Serialised, so the last patch given is the last one written.
        writes = writes.catch(() => undefined).then(async () => {
          intent = patchIntent(intent, patch);
          await writeIntent(root, intent);
        });
        return writes;
      },
      commit: async (manifest) => {
        const text = JSON.stringify(manifest, null, 2) + '\n';
        const check = parseManifestText(text, id);
        // An invalid manifest is a bug; the images are still committed (visible as damaged, kept),
        // never thrown away with the pending directory.
        await writeFileAtomic(join(dir, MANIFEST_FILE), text);
        const final = join(base, id);
        await rename(dir, final);
        await writes.catch(() => undefined);
        await removeIntent(root, id);
        if (check.state === 'damaged') {
          throw new FerryError('ERR_INTERNAL', `snapshot ${id} was committed with an invalid manifest: ${check.reason}`, {
            hint: `it is kept at ${final} and listed as damaged by \`ferry snapshots ls\`; please report this`,
          });
        }
        return final;
      },
      abandon: async () => {
        await rm(dir, { recursive: true, force: true });
        await writes.catch(() => undefined);
        await removeIntent(root, id);
      },
    };
  }

  /** True when a snapshot directory (valid or damaged) named `id` exists in either tier. */
  private async exists(id: string): Promise<boolean> {
    for (const tier of TIERS) {
      const base = tier === 'memory' ? this.existingMemoryDir() : snapshotsDir(this.root);
      if (base && await lstat(join(base, id)).then(() => true, () => false)) return true;
    }
    return false;
  }

  /**
   * Finds a snapshot by id (either tier); undefined when there is none. A damaged one throws
   * ERR_SNAPSHOT_CORRUPT naming the file and what is wrong with it.
   */
  async find(id: string): Promise<StoredSnapshot | undefined> {
    if (!ID_RE.test(id)) return undefined;
    for (const tier of TIERS) {
      const base = tier === 'memory' ? this.existingMemoryDir() : snapshotsDir(this.root);
      if (!base) continue;
      const dir = join(base, id);
      const r = await readManifest(dir, id);
      if (r.state === 'ok') return { manifest: r.manifest, dir };
      if (r.state === 'damaged') {
        throw new FerryError('ERR_SNAPSHOT_CORRUPT', `snapshot ${id} is damaged: ${describeDamage(dir, r.reason)}`, {
          hint: `it cannot be restored or exported; remove it with \`ferry snapshots rm ${id}\``,
        });
      }
    }
    return undefined;
  }

  async get(id: string): Promise<StoredSnapshot> {
    const s = await this.find(id);
    if (!s) throw new FerryError('ERR_NO_SNAPSHOT', `no snapshot '${id}' in the store ${this.root}`, { hint: 'list them with `ferry snapshots ls`' });
    return s;
  }

  /** Every complete, valid snapshot, oldest first. A damaged one is left out, never thrown. */
  async list(): Promise<StoredSnapshot[]> {
    return (await this.walk(false)).snapshots;
  }

  /** Snapshots, damaged snapshots (with reasons and sizes) and leftovers of operations. */
  async scan(): Promise<StoreScan> {
    await this.checkRoot();
    const { snapshots, damaged } = await this.walk(true);
    return { snapshots, damaged, leftovers: await this.leftovers() };
  }

  private async walk(sizes: boolean): Promise<{ snapshots: StoredSnapshot[]; damaged: DamagedSnapshot[] }> {
    const snapshots: StoredSnapshot[] = [];
    const damaged: DamagedSnapshot[] = [];
    for (const tier of TIERS) {
      const base = tier === 'memory' ? this.existingMemoryDir() : snapshotsDir(this.root);
      if (!base) continue;
      let names: string[];
      try { names = await readdir(base); } catch { continue; }
      for (const n of names) {
        if (n.startsWith('.')) continue;
        const dir = join(base, n);
        const r = await readManifest(dir, n);
        if (r.state === 'ok') snapshots.push({ manifest: r.manifest, dir });
        else if (r.state === 'damaged') damaged.push({ id: n, tier, dir, reason: describeDamage(dir, r.reason), bytes: sizes ? await storedBytes(dir).catch(() => 0) : 0 });
      }
    }
    snapshots.sort((a, b) => a.manifest.createdAt.localeCompare(b.manifest.createdAt));
    return { snapshots, damaged };
  }

  /** What interrupted or running operations left: pending dirs (with their intents), removals, staging. */
  async leftovers(): Promise<Leftover[]> {
    const now = Date.now();
    const out: Leftover[] = [];
    const claimed = new Set<string>();
    for (const f of await readIntents(this.root)) {
      const st = await lstat(f.path).catch(() => undefined);
      if (f.damaged !== undefined) {
        out.push({ id: f.path.replace(/^.*\//, '').replace(/\.json$/, ''), kind: 'intent', tier: undefined, dir: undefined, intentPath: f.path, op: undefined, phase: undefined,
          bytes: st?.blocks ? st.blocks * 512 : 0, ageMs: st ? now - st.mtimeMs : 0, ownerAlive: undefined, damaged: f.damaged });
        continue;
      }
      const i = f.intent;
      const dirSt = await lstat(i.dir).catch(() => undefined);
      if (dirSt) claimed.add(i.dir);
      out.push({
        id: i.id, kind: dirSt ? 'pending' : 'intent', tier: i.tier, dir: dirSt ? i.dir : undefined, intentPath: f.path, op: i.op, phase: i.phase,
        bytes: dirSt ? await storedBytes(i.dir).catch(() => 0) : 0, ageMs: now - Date.parse(i.createdAt), ownerAlive: ownerAlive(i),
      });
    }
    const places: [string | undefined, Tier | undefined][] = [[this.existingMemoryDir(), 'memory'], [snapshotsDir(this.root), 'disk'], [this.root, undefined]];
    for (const [base, tier] of places) {
      if (!base) continue;
      let names: string[];
      try { names = await readdir(base); } catch { continue; }
      for (const n of names) {
        if (!LEFTOVER_RE.test(n)) continue;
        const dir = join(base, n);
        if (claimed.has(dir)) continue;
        const st = await lstat(dir).catch(() => undefined);
        if (!st?.isDirectory()) continue;
        out.push({
          id: n, kind: n.startsWith(REMOVING_PREFIX) ? 'removing' : n.startsWith(PENDING_PREFIX) && tier !== undefined && ID_RE.test(n.slice(PENDING_PREFIX.length)) && !n.startsWith('.tmp-import-') ? 'pending' : 'staging',
          tier, dir, intentPath: undefined, op: undefined, phase: undefined,
          bytes: await storedBytes(dir).catch(() => 0), ageMs: now - await lastChange(dir, st.mtimeMs), ownerAlive: undefined,
        });
      }
    }
    return out;
  }

  /** Operations whose owner process is gone (dead, or its pid reused), with what they left. */
  async interrupted(): Promise<InterruptedOperation[]> {
    const out: InterruptedOperation[] = [];
    for (const f of await readIntents(this.root)) {
      if (!f.intent || ownerAlive(f.intent)) continue;
      const dirExists = await lstat(f.intent.dir).then(() => true, () => false);
      out.push({ intent: f.intent, dirExists, bytes: dirExists ? await storedBytes(f.intent.dir).catch(() => 0) : 0 });
    }
    return out;
  }

  /**
   * Removes a snapshot's directory, valid or damaged (chains are retention.ts's concern: use
   * removeSnapshot there). Renamed first, so a half-removed snapshot is never listed.
   */
  async remove(id: string): Promise<void> {
    if (ID_RE.test(id)) {
      for (const tier of TIERS) {
        const base = tier === 'memory' ? this.existingMemoryDir() : snapshotsDir(this.root);
        if (!base) continue;
        const dir = join(base, id);
        if (!await lstat(dir).then(() => true, () => false)) continue;
        const doomed = join(base, `${REMOVING_PREFIX}${id}-${Date.now()}`);
        await rename(dir, doomed);
        await rm(doomed, { recursive: true, force: true });
        return;
      }
    }
    throw new FerryError('ERR_NO_SNAPSHOT', `no snapshot '${id}' in the store ${this.root}`, { hint: 'list them with `ferry snapshots ls`' });
  }

  /** Removes what an operation left (only when its owner is gone; see retention.ts sweepLeftovers). */
  async removeLeftover(l: Leftover): Promise<void> {
    if (l.ownerAlive === true) throw new FerryError('ERR_INTERNAL', `refusing to remove ${l.dir ?? l.id}: its operation is still running`);
    if (l.dir) await rm(l.dir, { recursive: true, force: true });
    if (l.intentPath) await rm(l.intentPath, { force: true });
  }
}

/** "…/<id>/manifest.json is invalid: …" (the file named in full), or the reason as it is. */
function describeDamage(dir: string, reason: string): string {
  return reason.startsWith(MANIFEST_FILE) ? `${join(dir, reason.split(' ')[0]!)} ${reason.slice(reason.indexOf(' ') + 1)}` : `${dir}: ${reason}`;
}

/** The newest mtime of a directory and its direct entries (a file being written keeps it fresh). */
async function lastChange(dir: string, dirMtime: number): Promise<number> {
  let newest = dirMtime;
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const n of names.slice(0, 1000)) {
    const st = await lstat(join(dir, n)).catch(() => undefined);
    if (st && st.mtimeMs > newest) newest = st.mtimeMs;
  }
  return newest;
}
