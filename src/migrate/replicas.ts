/**
 * The destination's side of incremental transfers: replicas and pre-copy rounds.
 *
 * A **replica** is a snapshot of a workload running elsewhere, kept here under a key naming the
 * workload (`w.<name>`, `c.<container id>`, `p.<pid>`): `ferry replicate` sends one, and later
 * ones send only the pages whose content this host lacks — each arrives as a CRIU-native child of
 * the previous replica (PE_PARENT pages, a `parent` link), and the previous one is then removed,
 * which folds its pages into the new one (retention.ts): one whole replica per key. A record per
 * key in `<store>/incremental-replicas/<key>.json` names its snapshot.
 *
 * A **round** is a snapshot of an incremental migration taken while the workload still ran,
 * sent as a child of the replica or of the round before; the migration's final images are a
 * child of its last round, restored by CRIU through the chain (no assembly here). Rounds are
 * named `<migration id>.r<n>`: when the migration ends they are removed (newest first, so nothing
 * folds), and so are any an earlier agent left behind. After a commit the replica the migration
 * started from is removed too (the workload runs here now); after an abort it is kept.
 *
 * Every snapshot is asked for its page list (pages-have.ts) before it is built on.
 */
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Engine } from '../engine/engine.js';
import { writeFileAtomic } from '../store/layout.js';
import type { Tier } from '../store/manifest.js';
import { FerryError } from '../util/errors.js';
import type { IncomingMigrations } from './incoming.js';
import { encodeHave, haveOfSnapshot } from './pages-have.js';
import { receiveImages, type ReceiveImagesResult } from './receive-images.js';

/** Replica keys: the kind of target, a dot, its name, container id or pid. */
export const REPLICA_KEY_RE = /^[wcp]\.[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** Round snapshots of a migration. */
export const ROUND_RE = /^(m-[0-9a-f]{16})\.r(\d{1,3})$/;
/** The most rounds a migration may send (a chain CRIU reads through at restore). */
export const MAX_ROUNDS = 16;
export const INCREMENTAL = 'incremental';

export interface ReplicaView { key: string; snapshot: string; tier: Tier; createdAt: string; bytes: number }

interface ReplicaRecord { key: string; snapshot: string; createdAt: string }
interface Rounds { base: string | undefined; replicaKey: string | undefined; snapshots: string[] }

type Stream = AsyncIterable<Uint8Array>;
interface StreamOptions { transfer: string; signal: AbortSignal; idleMs?: number }

export class IncomingReplicas {
  private readonly dir: string;
  /** Per key: the step in progress (one replica write at a time). */
  private readonly busy = new Map<string, Promise<unknown>>();
  private readonly rounds = new Map<string, Rounds>();
  /** Replica snapshots migrations build on: not removed while they do. */
  private readonly pinned = new Map<string, number>();
  private readonly doomed = new Set<string>();

  constructor(private readonly engine: Engine, private readonly migrations: IncomingMigrations | undefined) {
    this.dir = join(engine.store.root, 'incremental-replicas');
    migrations?.onEnded((id, state) => this.ended(id, state === 'committed'));
    // The rounds were checked chunk by chunk and file by file as they arrived, during this migration.
    migrations?.receivedBefore((id) => this.rounds.get(id)?.snapshots ?? []);
  }

  /** The replica kept under `key`, if any (a record whose snapshot is gone is dropped). */
  async get(key: string): Promise<ReplicaView | undefined> {
    checkKey(key);
    const rec = await this.read(key);
    if (!rec) return undefined;
    const s = await this.engine.store.find(rec.snapshot);
    if (!s) { await rm(this.recordPath(key), { force: true }); return undefined; }
    return { key, snapshot: rec.snapshot, tier: s.manifest.tier, createdAt: rec.createdAt, bytes: s.manifest.bytes };
  }

  /** What snapshot `id` holds (its page list), to be built on. */
  async have(id: string): Promise<Buffer> {
    const s = await this.engine.store.find(id);
    if (!s) throw new FerryError('ERR_NO_SNAPSHOT', `no snapshot ${id} here to build on`, { hint: 'it was removed; send a whole snapshot (no parent)' });
    const have = await haveOfSnapshot(s.dir);
    if (!have) throw new FerryError('ERR_NO_SNAPSHOT', `snapshot ${id} has no page index: nothing can build on it`, { hint: 'send a whole snapshot (no parent)' });
    return encodeHave(have);
  }

  /**
   * A new replica for `key`: a child of its current replica (`parent`, which must be it) or whole.
   * The previous replica is then removed (its pages fold into the new one).
   */
  async receiveReplica(key: string, stream: Stream, o: StreamOptions & { parent: string | undefined; tier: Tier }): Promise<ReceiveImagesResult & { replaced: string | undefined }> {
    checkKey(key);
    return this.serial(key, async () => {
      const current = await this.get(key);
      if (o.parent !== undefined && current?.snapshot !== o.parent) {
        throw new FerryError('ERR_MIGRATION_STATE', `the replica of ${key} here is ${current?.snapshot ?? 'none'}, not ${o.parent}`, { hint: 'ask for the replica again (GET /v1/incremental/replicas/KEY) and build on it' });
      }
      const tier = current && o.parent !== undefined ? current.tier : o.tier;
      const r = await receiveImages(this.engine.store, stream, {
        migrationId: o.transfer, tier, signal: o.signal, ...(o.parent !== undefined ? { parent: o.parent } : {}), ...(o.idleMs !== undefined ? { idleMs: o.idleMs } : {}),
      });
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      await writeFileAtomic(this.recordPath(key), JSON.stringify({ key, snapshot: r.snapshot, createdAt: new Date().toISOString() } satisfies ReplicaRecord));
      if (current) await this.drop(current.snapshot);
      return { ...r, replaced: current?.snapshot };
    });
  }

  /** Removes the replica of `key` (and its record). */
  async remove(key: string): Promise<ReplicaView | undefined> {
    checkKey(key);
    return this.serial(key, async () => {
      const current = await this.get(key);
      await rm(this.recordPath(key), { force: true });
      if (current) await this.drop(current.snapshot);
      return current;
    });
  }

  /**
   * A pre-copy round of incremental migration `id` (prepared, not yet receiving its images):
   * whole, or a child of the migration's last round or of the replica `replicaKey` names.
   */
  async receiveRound(id: string, stream: Stream, o: StreamOptions & { parent: string | undefined; replicaKey: string | undefined }): Promise<ReceiveImagesResult & { round: number }> {
    const migrations = this.needMigrations();
    const pre = migrations.keepPrepared(id, INCREMENTAL, 'receive a pre-copy round');
    const r = this.rounds.get(id) ?? { base: undefined, replicaKey: undefined, snapshots: [] };
    if (r.snapshots.length >= MAX_ROUNDS) throw new FerryError('ERR_MIGRATION_STATE', `migration ${id} sent ${MAX_ROUNDS} rounds already`, { hint: 'send the final images' });
    let tier = pre.tier;
    if (o.parent !== undefined) {
      const last = r.snapshots.at(-1);
      if (last !== undefined && o.parent !== last) throw new FerryError('ERR_MIGRATION_STATE', `migration ${id}'s last round is ${last}, not ${o.parent}`);
      if (last === undefined) {
        // The first round builds on a replica: it must be the one kept for that key.
        const replica = o.replicaKey !== undefined ? await this.get(o.replicaKey) : undefined;
        if (!replica || replica.snapshot !== o.parent) throw new FerryError('ERR_MIGRATION_STATE', `${o.parent} is not the replica of ${o.replicaKey ?? '(no key)'} here`, { hint: 'ask for the replica again' });
        r.base = replica.snapshot;
        r.replicaKey = replica.key;
        this.pin(replica.snapshot);
      }
      tier = (await this.engine.store.get(o.parent)).manifest.tier;
    }
    this.rounds.set(id, r);
    const name = `${id}.r${r.snapshots.length + 1}`;
    const got = await receiveImages(this.engine.store, stream, {
      migrationId: id, tier, name, signal: o.signal, ...(o.parent !== undefined ? { parent: o.parent } : {}), ...(o.idleMs !== undefined ? { idleMs: o.idleMs } : {}),
    });
    r.snapshots.push(got.snapshot);
    // The migration may have ended while the round arrived: then the round goes too.
    if (this.rounds.get(id) !== r) await this.removeRounds(r);
    migrations.keepPrepared(id, INCREMENTAL, 'receive a pre-copy round');
    return { ...got, round: r.snapshots.length };
  }

  /** The final images of incremental migration `id`: a child of its last round (or whole). */
  async receiveFinal(id: string, stream: Stream, o: StreamOptions & { parent: string | undefined }): Promise<ReceiveImagesResult> {
    const migrations = this.needMigrations();
    const pre = migrations.keepPrepared(id, INCREMENTAL, 'receive its final images');
    const r = this.rounds.get(id);
    const last = r?.snapshots.at(-1);
    if (o.parent !== undefined && o.parent !== last) throw new FerryError('ERR_MIGRATION_STATE', `migration ${id}'s last round is ${last ?? 'none'}, not ${o.parent}`);
    const tier = o.parent !== undefined ? (await this.engine.store.get(o.parent)).manifest.tier : pre.tier;
    const plan = migrations.beginReceive(id);
    try {
      const got = await receiveImages(this.engine.store, stream, {
        migrationId: id, tier, name: plan.name, signal: o.signal, ...(o.parent !== undefined ? { parent: o.parent } : {}), ...(o.idleMs !== undefined ? { idleMs: o.idleMs } : {}),
      });
      await migrations.endReceive(id, { snapshot: got.snapshot });
      return got;
    } catch (err) {
      await migrations.endReceive(id, { error: err }).catch(() => undefined);
      throw err;
    }
  }

  /** A migration ended: its rounds go; after a commit, the replica it started from too. */
  private async ended(id: string, committed: boolean): Promise<void> {
    const r = this.rounds.get(id);
    if (!r) return;
    this.rounds.delete(id);
    const work = async () => {
      await this.removeRounds(r);
      if (r.base !== undefined) {
        this.unpin(r.base);
        if (committed && r.replicaKey !== undefined && (await this.read(r.replicaKey))?.snapshot === r.base) await this.remove(r.replicaKey);
      }
    };
    // A commit's answer does not wait for the clean-up (it is the workload's downtime).
    if (committed) void work().catch(() => undefined);
    else await work();
  }

  private async removeRounds(r: Rounds): Promise<void> {
    for (const s of [...r.snapshots].reverse()) await this.engine.remove([s]).catch(() => undefined);
  }

  /** Removes a replica snapshot now, or once no migration builds on it. */
  private async drop(snapshot: string): Promise<void> {
    if (this.pinned.has(snapshot)) { this.doomed.add(snapshot); return; }
    await this.engine.remove([snapshot]);
  }

  private pin(s: string): void { this.pinned.set(s, (this.pinned.get(s) ?? 0) + 1); }

  private unpin(s: string): void {
    const n = (this.pinned.get(s) ?? 1) - 1;
    if (n > 0) { this.pinned.set(s, n); return; }
    this.pinned.delete(s);
    if (this.doomed.delete(s)) void this.engine.remove([s]).catch(() => undefined);
  }

  private needMigrations(): IncomingMigrations {
    if (!this.migrations) throw new FerryError('ERR_MIGRATE_REFUSED', 'this agent does not take migrations');
    return this.migrations;
  }

  private serial<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const p = (this.busy.get(key) ?? Promise.resolve()).then(fn, fn);
    const tail = p.catch(() => undefined);
    this.busy.set(key, tail);
    void tail.then(() => { if (this.busy.get(key) === tail) this.busy.delete(key); });
    return p;
  }

  private recordPath(key: string): string { return join(this.dir, `${key}.json`); }

  private async read(key: string): Promise<ReplicaRecord | undefined> {
    try {
      const rec = JSON.parse(await readFile(this.recordPath(key), 'utf8')) as ReplicaRecord;
      return typeof rec.snapshot === 'string' ? rec : undefined;
    } catch {
      return undefined;
    }
  }
}

function checkKey(key: string): void {
  if (!REPLICA_KEY_RE.test(key)) {
    throw new FerryError('ERR_USAGE', `invalid replica key '${key.slice(0, 80)}'`, { hint: 'a replica key is w.NAME, c.CONTAINER_ID or p.PID' });
  }
}

/**
 * Rounds an earlier agent left (its migrations ended with it: the source kept its workload).
 * Run after recoverIncoming (which removes their final images first, so nothing folds).
 */
export async function recoverRounds(engine: Engine): Promise<string[]> {
  const removed: string[] = [];
  const rounds = (await engine.store.list()).map((s) => s.manifest.id).filter((id) => ROUND_RE.test(id));
  // Newest round first: none then has a child left to fold into.
  rounds.sort((a, b) => Number(ROUND_RE.exec(b)![2]) - Number(ROUND_RE.exec(a)![2]));
  for (const id of rounds) {
    const [r] = await engine.remove([id]);
    if (r?.ok) removed.push(id);
  }
  return removed;
}

/** The replica key of a target: `w.<workload>`, `c.<container id>` or `p.<pid>`. */
export function replicaKey(t: { kind: 'process'; workload?: string | undefined; pid: number } | { kind: 'container'; id: string }): string {
  return t.kind === 'container' ? `c.${t.id}` : t.workload !== undefined ? `w.${t.workload}` : `p.${t.pid}`;
}
