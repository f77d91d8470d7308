import { hostname } from 'node:os';
import { kill } from 'node:process';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import type { Engine } from '../engine/engine.js';
import { writeFileAtomic } from '../store/layout.js';
import { checkRestorable } from '../targets/compat.js';
import { containerState, readBundleSpec, runRuntime, runtimeRoot } from '../targets/container.js';
import { findOnPath } from '../util/path.js';
import { readWorkload, workloadIsRunning } from '../targets/run.js';
import { processInfo } from '../targets/process.js';
import { errorJson, FerryError } from '../util/errors.js';
import type { Socket } from 'node:net';
import { PostcopyDestination } from './postcopy/destination.js';
import type { PostcopyProgress } from './postcopy/handler.js';
import type { CommitAnswer, IncomingState, IncomingView, PreflightAnswer, PreflightBody, RestoreAnswer, ServiceAddress } from './protocol.js';

/**
 * The destination's side of migrations: each incoming migration is a small state machine,
 *
 *   prepared → receiving → received → restoring → held → committing → committed
 *                                  ↘ (any failure, abort, or silence) → aborted
 *
 * A restored copy is *held* in CRIU's post-restore notification (memory in place and verified,
 * no program code run): `commit` lets it run, `abort` — or ferry's death, which CRIU sees as a
 * failed notification — makes CRIU kill it. A migration that hears nothing for its hold time is
 * aborted here: the source, which never heard "committed", still has its snapshot. Anything
 * received but not committed is removed. A record per migration in `<store>/migrations/` lets
 * a restarted agent remove what an earlier one had received (recoverIncoming).
 */

/** How the destination takes and gives back a service address (net/service-address.ts). */
export interface AddressOps {
  /** Before the restore: add the address with inbound traffic held back. */
  prepare(a: ServiceAddress): Promise<void>;
  /** After the restored copy runs: let traffic in and announce the address. */
  release(a: ServiceAddress): Promise<void>;
  /** On abort: drop the hold and the address. */
  remove(a: ServiceAddress): Promise<void>;
  /** After the commit: the restored workload's record names the address (so stop and ps remove it). */
  attach?(name: string, a: ServiceAddress): Promise<void>;
}

export const NO_ADDRESS_OPS: AddressOps = {
  prepare: () => Promise.reject(new FerryError('ERR_USAGE', 'this agent cannot take service addresses')),
  release: () => Promise.resolve(),
  remove: () => Promise.resolve(),
};

/** Default hold for a restored copy waiting for commit or abort, and idle limit between steps. */
export const DEFAULT_HOLD_MS = 30_000;
export const DEFAULT_IDLE_MS = 120_000;

interface Deferred<T> { promise: Promise<T>; resolve(v: T): void; reject(e: unknown): void }
function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej; });
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

interface Incoming {
  id: string;
  state: IncomingState;
  createdAt: string;
  pre: PreflightBody;
  snapshot?: string;
  pid?: number;
  name?: string;
  error?: IncomingView['error'];
  /** The restore, held at post-restore until `decision` settles. */
  restore?: Promise<{ pid: number; name: string | undefined; ms: number }>;
  decision?: Deferred<void>;
  addressTaken: boolean;
  /** A runc container restored (and running) but not committed: deleted on abort. */
  running?: { runtime: 'runc' | 'crun'; root: string; id: string } | undefined;
  timer?: NodeJS.Timeout;
  /** Serialises steps (a commit racing an abort or the hold timer). */
  step: Promise<unknown>;
}

export interface IncomingOptions {
  engine: Engine;
  criuVersion: () => Promise<string | null>;
  address?: AddressOps;
  /** Keep the received snapshot after a commit (default: removed — the workload runs here). */
  keepSnapshot?: boolean;
  idleMs?: number;
}

interface IncomingRecord { id: string; state: IncomingState; snapshot?: string; address?: ServiceAddress; createdAt: string }

export class IncomingMigrations {
  private readonly all = new Map<string, Incoming>();
  private readonly dir: string;
  private readonly address: AddressOps;
  private readonly endHooks: ((id: string, state: IncomingState) => Promise<void>)[] = [];
  private arrivals: ((id: string) => readonly string[]) | undefined;
  /** Post-copy migrations' page streams and handlers (postcopy/destination.ts). */
  private readonly postcopy = new PostcopyDestination();

  constructor(private readonly o: IncomingOptions) {
    this.dir = join(o.engine.store.root, 'migrations');
    this.address = o.address ?? NO_ADDRESS_OPS;
  }

  view(id: string): IncomingView {
    const m = this.get(id);
    return {
      id: m.id, state: m.state, createdAt: m.createdAt,
      ...(m.snapshot !== undefined ? { snapshot: m.snapshot } : {}),
      ...(m.pid !== undefined ? { pid: m.pid } : {}),
      ...(m.name !== undefined ? { name: m.name } : {}),
      ...(m.error ? { error: m.error } : {}),
      ...(this.postcopy.progress(id) ? { postcopy: this.postcopy.progress(id)! } : {}),
    };
  }

  /** A post-copy migration's page stream, opened by the source before it asks for the restore. */
  acceptPageStream(id: string, socket: Socket): void {
    const m = this.get(id);
    if (m.pre.strategy !== 'postcopy') throw new FerryError('ERR_MIGRATION_STATE', `migration ${id} is not a post-copy migration (${m.pre.strategy})`);
    if (m.state !== 'prepared' && m.state !== 'receiving' && m.state !== 'received') throw this.wrongState(m, 'take a page stream');
    this.postcopy.accept(id, socket);
  }

  /** The post-copy window ended: lost or failed after the commit, the copy here was stopped (the handler killed it). */
  private postcopyEnded(m: Incoming, p: PostcopyProgress): void {
    // (Before the commit the abort path owns the outcome: the copy never ran.)
    if (p.state === 'done' || (m.state !== 'committed' && m.state !== 'committing')) return;
    if (m.pid !== undefined) { try { kill(m.pid, 'SIGKILL'); } catch { /* gone */ } }
    const lost = p.state === 'lost';
    m.error = {
      code: lost ? 'ERR_POSTCOPY_SOURCE_LOST' : 'ERR_POSTCOPY',
      message: lost
        ? `the source was lost during the post-copy window (${p.reason ?? 'no reason'}) with ${p.remainingPages} of ${p.totalPages} pages still there: the copy here was stopped`
        : `the post-copy page handler failed (${p.reason ?? 'no reason'}) with ${p.remainingPages} pages still on the source: the copy here was stopped`,
    };
  }

  /** Before anything is frozen on the source: can this host restore what will come? */
  async preflight(id: string, pre: PreflightBody): Promise<PreflightAnswer> {
    if (this.all.has(id)) throw new FerryError('ERR_MIGRATION_STATE', `migration ${id} is already known here (${this.get(id).state})`, { hint: 'start a new migration (a new id)' });
    const store = this.o.engine.store;
    const criuVersion = await this.o.criuVersion();
    if (criuVersion === null) throw new FerryError('ERR_MIGRATE_REFUSED', 'the destination cannot run CRIU', { hint: 'run `ferry doctor` on the destination host' });
    const refuse = (e: unknown): never => {
      if (e instanceof FerryError) throw new FerryError('ERR_MIGRATE_REFUSED', `the destination refused: ${e.message}`, { cause: e, ...(e.hint ? { hint: e.hint } : {}) });
      throw e;
    };
    await store.ensure(pre.tier);
    await checkRestorable(
      { id: `migration ${id}`, criu: { version: pre.criuVersion }, host: pre.host, target: { kind: pre.target.kind, ownPidNamespace: pre.target.ownPidNamespace }, bytes: pre.bytes },
      criuVersion, { spaceDir: store.tierDir(pre.tier) },
    ).catch(refuse);
    if (pre.target.kind === 'container') await checkContainerDestination(pre);
    if (!pre.target.ownPidNamespace && !pre.replica) {
      for (const pid of pre.target.pids) {
        const live = await processInfo(pid);
        if (live) {
          throw new FerryError('ERR_MIGRATE_REFUSED', `the destination refused: pid ${pid}, which the workload needs, is in use here by ${live.comm}`, {
            hint: 'a process from the host pid namespace keeps its pids: start workloads with `ferry run` (their own pid namespace) to migrate them',
          });
        }
      }
    }
    if (pre.target.workload !== undefined && !pre.replica) {
      const rec = await readWorkload(store.workloadsDir, pre.target.workload);
      if (rec && await workloadIsRunning(rec)) {
        throw new FerryError('ERR_MIGRATE_REFUSED', `the destination refused: a workload named '${pre.target.workload}' already runs here (pid ${rec.pid})`, { hint: `stop it there first (\`ferry stop ${pre.target.workload}\`)` });
      }
    }
    if (pre.address && this.o.address === undefined) {
      throw new FerryError('ERR_MIGRATE_REFUSED', `the destination cannot take the service address ${pre.address.address}`, { hint: 'run the destination\'s agent with service addresses enabled' });
    }
    const m: Incoming = { id, state: 'prepared', createdAt: new Date().toISOString(), pre, addressTaken: false, step: Promise.resolve() };
    this.all.set(id, m);
    await this.persist(m);
    this.idle(m);
    return { migration: id, tier: pre.tier, criuVersion, host: hostname() };
  }

  /**
   * A strategy's own step before the images (an incremental round): `id` must still be prepared
   * and of `strategy`; its idle timer starts again. Answers its preflight.
   */
  keepPrepared(id: string, strategy: string, what: string): PreflightBody {
    const m = this.get(id);
    if (m.state !== 'prepared' || m.pre.strategy !== strategy) throw this.wrongState(m, what);
    this.idle(m);
    return m.pre;
  }

  /** Snapshots a strategy received for migration `id` before its images, checked as they arrived (its restore does not hash them again). */
  receivedBefore(fn: (id: string) => readonly string[]): void {
    this.arrivals = fn;
  }

  /** Called once a migration ended (committed or aborted), after its own clean-up (strategies' leftovers). */
  onEnded(hook: (id: string, state: IncomingState) => Promise<void>): void {
    this.endHooks.push(hook);
  }

  /** The images route: a transfer for `id` starts (it must be prepared) … */
  beginReceive(id: string): { tier: 'memory' | 'disk'; name: string } {
    const m = this.get(id);
    if (m.state !== 'prepared') throw this.wrongState(m, 'receive images');
    m.state = 'receiving';
    clearTimeout(m.timer);
    return { tier: m.pre.tier, name: `${id}` };
  }

  /** … and ended: the sealed snapshot, or the transfer's failure (nothing was stored). */
  async endReceive(id: string, outcome: { snapshot: string } | { error: unknown }): Promise<void> {
    const m = this.get(id);
    if ('snapshot' in outcome) {
      m.snapshot = outcome.snapshot;
      if (m.pre.replica) {
        // A replica ends here: the sealed snapshot is the standby's to keep (no restore, no hold).
        clearTimeout(m.timer);
        m.state = 'committed';
        await this.forget(m);
        return;
      }
      m.state = 'received';
      await this.persist(m);
      this.idle(m);
    } else {
      await this.finishAborted(m, outcome.error);
    }
  }

  /**
   * Restores the received snapshot, held before its code runs; answers once it is held (or
   * throws, having removed everything). The hold lasts until commit, abort or `holdMs`.
   */
  async restore(id: string, snapshot: string): Promise<RestoreAnswer> {
    const m = this.get(id);
    return this.serial(m, async () => {
      if (m.state !== 'received') throw this.wrongState(m, 'restore');
      if (m.snapshot !== snapshot) throw new FerryError('ERR_MIGRATION_STATE', `migration ${id} received snapshot ${m.snapshot ?? '(none)'}, not ${snapshot}`);
      clearTimeout(m.timer);
      m.state = 'restoring';
      await this.persist(m);
      const t0 = Date.now();
      try {
        if (m.pre.address) {
          await this.address.prepare(m.pre.address);
          m.addressTaken = true;
        }
        const c0 = m.pre.target.container;
        if (c0?.runtime === 'runc') return await this.restoreUnheld(m, snapshot, c0, t0);
        const held = deferred<{ pid: number | undefined; verifyMs: number }>();
        const decision = deferred<void>();
        m.decision = decision;
        const c = m.pre.target.container;
        const lazy = m.pre.strategy === 'postcopy';
        const imagesDir = lazy ? (await this.o.engine.store.get(snapshot)).dir : '';
        const restoring = this.o.engine.restore({
          snapshot, imagesJustVerified: true, ancestorsJustVerified: this.arrivals?.(id) ?? [],
          ...(lazy ? { lazyPages: { beforeCriu: (workDir: string) => this.postcopy.beforeRestore(id, workDir, imagesDir, (p) => this.postcopyEnded(m, p)) } } : {}),
          // A container comes back under its id, in this host's runtime state directory.
          ...(c ? { runtimeRoot: runtimeRoot(c.runtime) } : {}),
          beforeResume: async ({ pid }) => {
            held.resolve({ pid, verifyMs: Date.now() - t0 });
            await decision.promise;
          },
        }).then((r) => ({ pid: r.pid, name: r.name, ms: r.timings.totalMs }));
        m.restore = restoring;
        restoring.catch(() => undefined);
        const first = await Promise.race([held.promise.then((h) => ({ held: h })), restoring.then(() => ({ held: undefined }))]);
        if (!first.held) throw new FerryError('ERR_INTERNAL', `the restore of ${snapshot} ran without being held at post-restore`);
        m.state = 'held';
        if (first.held.pid !== undefined) m.pid = first.held.pid;
        await this.persist(m);
        this.abortAfter(m, m.pre.holdMs ?? DEFAULT_HOLD_MS, 'neither commit nor abort came');
        return { migration: id, pid: first.held.pid, verifyMs: first.held.verifyMs, ms: Date.now() - t0 };
      } catch (err) {
        m.decision?.reject(err);
        await m.restore?.catch(() => undefined);
        await this.finishAborted(m, err);
        throw err;
      }
    });
  }

  /**
   * runc runs CRIU itself: nothing can be held in CRIU. The source holds its copy frozen (paused)
   * instead, and the copy here runs once restored — in its own cgroup (FERRY_CGROUP_PARENT: hosts
   * on one kernel must not share the original's, which is frozen and will be deleted).
   */
  private async restoreUnheld(m: Incoming, snapshot: string, c: NonNullable<PreflightBody['target']['container']>, t0: number): Promise<RestoreAnswer> {
    const root = runtimeRoot(c.runtime);
    const bundle = await cgroupBundle(this.o.engine.store.root, m.id, c);
    const r = await this.o.engine.restore({ snapshot, imagesJustVerified: true, runtimeRoot: root, ...(bundle !== undefined ? { bundle } : {}) });
    m.running = { runtime: c.runtime, root, id: c.id };
    m.restore = Promise.resolve({ pid: r.pid, name: r.name, ms: r.timings.totalMs });
    m.pid = r.pid;
    m.state = 'held';
    await this.persist(m);
    this.abortAfter(m, m.pre.holdMs ?? DEFAULT_HOLD_MS, 'neither commit nor abort came');
    return { migration: m.id, pid: r.pid, verifyMs: r.timings.verifyMs, ms: Date.now() - t0 };
  }

  /** The source copy is gone: the held copy runs, takes the address; the migration is done. */
  async commit(id: string): Promise<CommitAnswer> {
    const m = this.get(id);
    return this.serial(m, async () => {
      if (m.state === 'committed') return this.committedAnswer(m, 0, 0);
      if (m.state !== 'held' || !m.restore) throw this.wrongState(m, 'commit');
      clearTimeout(m.timer);
      m.state = 'committing';
      const t0 = Date.now();
      // Post-copy: pages start flowing as the copy starts running.
      this.postcopy.go(m.id, m.pid);
      m.decision?.resolve();
      let r: { pid: number; name: string | undefined; ms: number };
      try {
        r = await m.restore;
      } catch (err) {
        await this.finishAborted(m, err);
        throw err;
      }
      m.pid = r.pid;
      if (r.name !== undefined) m.name = r.name;
      try { kill(r.pid, 0); } catch {
        const e = new FerryError('ERR_TARGET_DIED', `the restored copy (pid ${r.pid}) died right after it resumed`, { hint: `see the restore log on the destination (${m.snapshot ?? ''})` });
        await this.finishAborted(m, e);
        throw e;
      }
      // From here the workload runs here: what is left cannot undo that.
      m.running = undefined;
      m.state = 'committed';
      await this.persist(m);
      if (m.pre.address) {
        await this.address.release(m.pre.address).catch(() => undefined);
        if (m.name !== undefined) await this.address.attach?.(m.name, m.pre.address).catch(() => undefined);
      }
      let kept = true;
      if (!this.o.keepSnapshot && m.snapshot !== undefined) {
        const [out] = await this.o.engine.remove([m.snapshot]);
        kept = !out?.ok;
      }
      await this.forget(m);
      return this.committedAnswer(m, r.ms, Date.now() - t0, kept);
    });
  }

  /** Kills a held copy, removes what was received. Idempotent; refused once committed. */
  async abort(id: string, reason: string, code: 'ERR_MIGRATE_PEER' | 'ERR_MIGRATE_TIMEOUT' = 'ERR_MIGRATE_PEER'): Promise<IncomingView> {
    const m = this.get(id);
    const why = new FerryError(code, `migration ${id} aborted: ${reason}`);
    // An abort must not wait behind a restore that is about to be held: it is answered at the hold.
    m.decision?.reject(why);
    return this.serial(m, async () => {
      if (m.state === 'committed' || m.state === 'committing') throw this.wrongState(m, 'abort');
      if (m.state !== 'aborted') {
        m.decision?.reject(why);
        await m.restore?.catch(() => undefined);
        await this.finishAborted(m, why);
      }
      return this.view(id);
    });
  }

  /** Aborts every migration that is not committed (agent shutdown). */
  async close(): Promise<void> {
    await Promise.all([...this.all.values()].filter((m) => m.state !== 'committed' && m.state !== 'aborted')
      .map((m) => this.abort(m.id, 'the destination agent is stopping').catch(() => undefined)));
    for (const m of this.all.values()) clearTimeout(m.timer);
    await this.postcopy.close().catch(() => undefined);
  }

  private committedAnswer(m: Incoming, restoreMs: number, ms: number, kept = false): CommitAnswer {
    return { migration: m.id, pid: m.pid ?? 0, name: m.name, snapshot: m.snapshot ?? '', restoreMs, ms, snapshotKept: kept };
  }

  private async finishAborted(m: Incoming, err: unknown): Promise<void> {
    clearTimeout(m.timer);
    await this.postcopy.stop(m.id).catch(() => undefined);
    const e = errorJson(err) as { code: string; message: string; hint?: string };
    m.error = { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) };
    if (m.running) {
      // A runc copy runs once restored (runc holds nothing): delete it, and its bundle copy.
      await runRuntime(m.running.runtime, m.running.root, ['delete', '--force', m.running.id]).catch(() => undefined);
      m.running = undefined;
    }
    await rm(join(this.o.engine.store.root, 'bundles', m.id), { recursive: true, force: true }).catch(() => undefined);
    if (m.addressTaken && m.pre.address) {
      await this.address.remove(m.pre.address).catch(() => undefined);
      m.addressTaken = false;
    }
    if (m.snapshot !== undefined) await this.o.engine.remove([m.snapshot]).catch(() => undefined);
    m.state = 'aborted';
    await this.forget(m);
  }

  private idle(m: Incoming): void {
    this.abortAfter(m, this.o.idleMs ?? DEFAULT_IDLE_MS, 'no next step came');
  }

  /** The migration's one timer: it aborts (ERR_MIGRATE_TIMEOUT) when `ms` pass without a next step. */
  private abortAfter(m: Incoming, ms: number, what: string): void {
    clearTimeout(m.timer);
    m.timer = setTimeout(() => { void this.abort(m.id, `${what} within ${ms} ms`, 'ERR_MIGRATE_TIMEOUT').catch(() => undefined); }, ms);
    m.timer.unref();
  }

  private serial<T>(m: Incoming, fn: () => Promise<T>): Promise<T> {
    const p = m.step.then(fn, fn);
    m.step = p.catch(() => undefined);
    return p;
  }

  private get(id: string): Incoming {
    const m = this.all.get(id);
    if (!m) throw new FerryError('ERR_NO_MIGRATION', `no migration ${id} on this host`, { hint: 'a migration starts with its preflight (POST /v1/migrations/:id)' });
    return m;
  }

  private wrongState(m: Incoming, what: string): FerryError {
    return new FerryError('ERR_MIGRATION_STATE', `migration ${m.id} cannot ${what} now: it is ${m.state}${m.error ? ` (${m.error.message})` : ''}`);
  }

  private async persist(m: Incoming): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const rec: IncomingRecord = { id: m.id, state: m.state, createdAt: m.createdAt, ...(m.snapshot !== undefined ? { snapshot: m.snapshot } : {}), ...(m.pre.address ? { address: m.pre.address } : {}) };
    await writeFileAtomic(join(this.dir, `${m.id}.json`), JSON.stringify(rec));
  }

  /** Ended migrations are kept in memory (for GET) but leave no record behind. */
  private async forget(m: Incoming): Promise<void> {
    await rm(join(this.dir, `${m.id}.json`), { force: true });
    for (const hook of this.endHooks) await hook(m.id, m.state).catch(() => undefined);
  }
}

/**
 * The bundle a runc container is restored from here: on hosts sharing a kernel
 * (FERRY_CGROUP_PARENT set), a copy of its config whose cgroup is this host's; else the bundle.
 */
async function cgroupBundle(storeRoot: string, migration: string, c: NonNullable<PreflightBody['target']['container']>): Promise<string | undefined> {
  const parent = (process.env['FERRY_CGROUP_PARENT'] ?? '').replace(/\/+$/, '');
  if (!parent) return undefined;
  const spec = JSON.parse(await readFile(join(c.bundle, 'config.json'), 'utf8')) as { root?: { path?: string }; linux?: { cgroupsPath?: string } };
  if (spec.root?.path !== undefined && !isAbsolute(spec.root.path)) spec.root.path = resolve(c.bundle, spec.root.path);
  spec.linux = { ...(spec.linux ?? {}), cgroupsPath: `${parent}/${c.id}` };
  const dir = join(storeRoot, 'bundles', migration);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(join(dir, 'config.json'), JSON.stringify(spec, null, 2), 0o644);
  return dir;
}

/** Can this host run the container: its runtime, its bundle at the same path, its id free here? */
async function checkContainerDestination(pre: PreflightBody): Promise<void> {
  const c = pre.target.container;
  if (!c) throw new FerryError('ERR_USAGE', 'a container migration must name its container (target.container)');
  if (!findOnPath(c.runtime)) throw new FerryError('ERR_MIGRATE_REFUSED', `the destination refused: ${c.runtime} is not installed here`, { hint: `apt-get install ${c.runtime} on the destination` });
  try {
    await readBundleSpec(c.bundle);
  } catch (e) {
    throw new FerryError('ERR_MIGRATE_REFUSED', `the destination refused: container ${c.id}'s bundle ${c.bundle} is not here (${e instanceof Error ? e.message : String(e)})`, {
      hint: 'ferry carries the container\'s memory, not its root file system: put the bundle (config.json and rootfs) at the same path on the destination (a shared or synchronised file system), then migrate',
    });
  }
  const root = runtimeRoot(c.runtime);
  if (await containerState(c.runtime, root, c.id)) {
    throw new FerryError('ERR_MIGRATE_REFUSED', `the destination refused: a container '${c.id}' already exists in ${c.runtime} (${root}) there`, { hint: `remove it there first (\`${c.runtime} --root ${root} delete --force ${c.id}\`)` });
  }
}

/**
 * What an agent killed in the middle of incoming migrations left: their received snapshots
 * (never committed: the source kept its copy) and service addresses are removed. A migration
 * recorded as committed only lost its record's removal.
 */
export async function recoverIncoming(engine: Engine, address: AddressOps = NO_ADDRESS_OPS): Promise<{ id: string; removed: string[] }[]> {
  const dir = join(engine.store.root, 'migrations');
  const names = await readdir(dir).catch(() => [] as string[]);
  const out: { id: string; removed: string[] }[] = [];
  for (const n of names) {
    // A record's write cut short by the kill (writeFileAtomic's temporary file).
    if (/^\.m-[0-9a-f]{16}\.json\.tmp-/.test(n)) await rm(join(dir, n), { force: true });
    if (!/^m-[0-9a-f]{16}\.json$/.test(n)) continue;
    let rec: IncomingRecord | undefined;
    try { rec = JSON.parse(await readFile(join(dir, n), 'utf8')) as IncomingRecord; } catch { rec = undefined; }
    const removed: string[] = [];
    if (rec && rec.state !== 'committed') {
      if (rec.address) await address.remove(rec.address).catch(() => undefined);
      if (rec.snapshot) {
        const [r] = await engine.remove([rec.snapshot]);
        if (r?.ok) removed.push(rec.snapshot);
      }
    }
    await rm(join(dir, n), { force: true });
    out.push({ id: n.slice(0, -5), removed });
  }
  return out;
}
