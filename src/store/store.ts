import { closeSync, constants as fsc, openSync, readSync } from 'node:fs';
import { access, chmod, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError, errnoCode } from '../util/errors.js';
import type { SnapshotManifest, Tier } from './manifest.js';

export const DEFAULT_STORE = '/var/lib/ferry';
/** The memory tier lives on tmpfs; by default under /dev/shm, one directory per store. */
export const DEFAULT_MEMORY_TIER = '/dev/shm/ferry';

export interface StoreOptions {
  root: string;
  /** Directory on tmpfs for the memory tier (default: $FERRY_MEMORY_TIER or /dev/shm/ferry). */
  memoryDir?: string;
}

/** A snapshot being written: CRIU dumps into `dir`; `commit` makes it appear, atomically. */
export interface PendingSnapshot {
  id: string;
  tier: Tier;
  dir: string;
  commit(manifest: SnapshotManifest): Promise<string>;
  abandon(): Promise<void>;
}

export interface StoredSnapshot {
  manifest: SnapshotManifest;
  dir: string;
}

const ID_RE = /^[0-9a-z][0-9a-z._-]{0,127}$/;
/** What a snapshot id may look like (also a safe single path component). */
export const SNAPSHOT_ID_RE = ID_RE;

/**
 * The snapshot store: `<root>/snapshots/<id>/` (disk tier) and `<memoryDir>/<id>/` (memory
 * tier), each a CRIU image directory plus manifest.json. A snapshot is written under a
 * `.tmp-` name and renamed into place only when complete. Everything is mode 0700.
 */
export class Store {
  readonly root: string;
  readonly memoryDir: string;

  constructor(options: StoreOptions) {
    this.root = options.root;
    this.memoryDir = options.memoryDir ?? (process.env['FERRY_MEMORY_TIER'] || DEFAULT_MEMORY_TIER);
  }

  tierDir(tier: Tier): string {
    return tier === 'memory' ? this.memoryDir : join(this.root, 'snapshots');
  }

  /** Workload bookkeeping of `ferry run` (name → pid, logs). */
  get workloadsDir(): string {
    return join(this.root, 'workloads');
  }

  /** Creates the store's directories (0700) and checks they are writable. */
  async ensure(tier?: Tier): Promise<void> {
    const dirs = [this.root, this.tierDir('disk'), this.workloadsDir, ...(tier === 'memory' ? [this.memoryDir] : [])];
    for (const d of dirs) {
      try {
        await mkdir(d, { recursive: true, mode: 0o700 });
        await chmod(d, 0o700);
        await access(d, fsc.W_OK);
      } catch (err) {
        throw new FerryError('ERR_STORE_UNWRITABLE', `the snapshot store is not writable: ${d} (${errnoCode(err) ?? (err as Error).message})`, {
          cause: err,
          hint: 'pass --store DIR (or set FERRY_STORE) to a directory ferry can create and write, as root',
        });
      }
    }
  }

  newId(): string {
    const t = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').toLowerCase();
    return `${t}-${randomHex(3)}`;
  }

  async begin(tier: Tier, id = this.newId()): Promise<PendingSnapshot> {
    if (!ID_RE.test(id)) throw new FerryError('ERR_USAGE', `invalid snapshot name '${id}'`, { hint: 'use letters, digits, dot, dash and underscore' });
    await this.ensure(tier);
    if (await this.find(id)) throw new FerryError('ERR_SNAPSHOT_EXISTS', `a snapshot named '${id}' already exists`, { hint: 'pick another --name, or remove it with `ferry snapshots rm`' });
    const base = this.tierDir(tier);
    const dir = join(base, `.tmp-${id}`);
    await mkdir(dir, { mode: 0o700 });
    return {
      id, tier, dir,
      commit: async (manifest) => {
        await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n', { mode: 0o600 });
        const final = join(base, id);
        await rename(dir, final);
        return final;
      },
      abandon: () => rm(dir, { recursive: true, force: true }),
    };
  }

  /** Finds a snapshot by id (either tier); undefined when there is none. */
  async find(id: string): Promise<StoredSnapshot | undefined> {
    if (!ID_RE.test(id)) return undefined;
    for (const tier of ['memory', 'disk'] as const) {
      const dir = join(this.tierDir(tier), id);
      try {
        const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as SnapshotManifest;
        return { manifest, dir };
      } catch (err) {
        if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') continue;
        throw new FerryError('ERR_SNAPSHOT_CORRUPT', `snapshot ${id} has an unreadable manifest: ${(err as Error).message}`, { cause: err });
      }
    }
    return undefined;
  }

  async get(id: string): Promise<StoredSnapshot> {
    const s = await this.find(id);
    if (!s) throw new FerryError('ERR_NO_SNAPSHOT', `no snapshot '${id}' in the store ${this.root}`, { hint: 'list them with `ferry snapshots ls`' });
    return s;
  }

  /** Every complete snapshot, oldest first. */
  async list(): Promise<StoredSnapshot[]> {
    const out: StoredSnapshot[] = [];
    for (const tier of ['memory', 'disk'] as const) {
      let names: string[] = [];
      try { names = await readdir(this.tierDir(tier)); } catch { continue; }
      for (const n of names) {
        if (n.startsWith('.')) continue;
        const s = await this.find(n);
        if (s) out.push(s);
      }
    }
    return out.sort((a, b) => a.manifest.createdAt.localeCompare(b.manifest.createdAt));
  }

  async remove(id: string): Promise<void> {
    const s = await this.get(id);
    // Rename first so a half-removed snapshot is never listed.
    const doomed = join(s.dir, '..', `.rm-${id}-${Date.now()}`);
    await rename(s.dir, doomed);
    await rm(doomed, { recursive: true, force: true });
  }
}

/**
 * Random bytes as hex, from /dev/urandom: node:crypto costs a CLI command ≈ 7 ms to load, and an
 * id suffix needs three bytes. (Uniqueness is still enforced by mkdir of the snapshot's directory.)
 */
function randomHex(n: number): string {
  const buf = Buffer.alloc(n);
  const fd = openSync('/dev/urandom', 'r');
  try {
    readSync(fd, buf, 0, n, null);
  } finally {
    closeSync(fd);
  }
  return buf.toString('hex');
}
