import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { RestoreRequest, RestoreResult } from '../engine/engine.js';
import { hostFacts } from '../targets/host.js';
import { FakeEngine } from '../testing/fake-engine.js';
import { FerryError, isFerryError } from '../util/errors.js';
import { IncomingMigrations, recoverIncoming, type AddressOps } from './incoming.js';
import type { PreflightBody, ServiceAddress } from './protocol.js';

/** A fake engine whose restore is held at "post-restore" like the real one, and can fail there. */
class HoldingEngine extends FakeEngine {
  resumed = 0;
  killed = 0;
  override async restore(req: RestoreRequest): Promise<RestoreResult> {
    if (!this.snapshots.has(req.snapshot)) throw new FerryError('ERR_NO_SNAPSHOT', `no snapshot '${req.snapshot}'`);
    try {
      await req.beforeResume?.({ pid: process.pid });
    } catch (e) {
      this.killed++;
      throw e;
    }
    this.resumed++;
    // The "restored" process: this test's own pid (alive), as a real restore gives a live pid.
    return { pid: process.pid, snapshot: req.snapshot, kind: 'process', name: 'web', stats: undefined, timings: { totalMs: 5, verifyMs: 1, criuMs: 4 }, logPath: '/dev/null', telemetry: {} as never };
  }
}

const dirs: string[] = [];
after(async () => { for (const d of dirs) await rm(d, { recursive: true, force: true }); });

async function setup(o: { idleMs?: number; address?: AddressOps } = {}) {
  const root = await mkdtemp(join(tmpdir(), 'ferry-incoming-'));
  dirs.push(root);
  const engine = new HoldingEngine(root);
  const inc = new IncomingMigrations({ engine, criuVersion: () => Promise.resolve('4.2.1'), ...o });
  return { engine, inc, root };
}

async function pre(extra: Partial<PreflightBody> = {}): Promise<PreflightBody> {
  return {
    strategy: 'cold', criuVersion: '4.2.1', host: await hostFacts(),
    target: { kind: 'process', ownPidNamespace: true, pids: [], workload: 'web' }, bytes: 1024, tier: 'disk', ...extra,
  };
}

/** Pretends the images route received a snapshot for the migration. */
async function receive(engine: HoldingEngine, inc: IncomingMigrations, id: string): Promise<string> {
  inc.beginReceive(id);
  const cp = await engine.checkpoint({ target: 'web', name: `recv-${id}` });
  await inc.endReceive(id, { snapshot: cp.snapshot });
  return cp.snapshot;
}

describe('incoming migrations (destination state machine)', () => {
  it('prepare → receive → restore (held) → commit: the copy runs, the snapshot is removed, no record is left', async () => {
    const { engine, inc, root } = await setup();
    const id = 'm-0000000000000001';
    await inc.preflight(id, await pre());
    const snap = await receive(engine, inc, id);
    const held = await inc.restore(id, snap);
    assert.equal(held.pid, process.pid);
    assert.equal(inc.view(id).state, 'held');
    assert.equal(engine.resumed, 0, 'nothing runs before the commit');
    const c = await inc.commit(id);
    assert.equal(c.pid, process.pid);
    assert.equal(engine.resumed, 1);
    assert.equal(inc.view(id).state, 'committed');
    assert.equal(engine.snapshots.has(snap), false);
    assert.deepEqual(await readdir(join(root, 'migrations')), []);
    // A second commit (a retry after a lost answer) says the same, does nothing again.
    assert.equal((await inc.commit(id)).pid, process.pid);
    await assert.rejects(inc.abort(id, 'too late'), (e) => isFerryError(e, 'ERR_MIGRATION_STATE'));
  });

  it('abort of a held copy: CRIU is told to kill it, everything received is removed', async () => {
    const { engine, inc } = await setup();
    const id = 'm-0000000000000002';
    await inc.preflight(id, await pre());
    const snap = await receive(engine, inc, id);
    await inc.restore(id, snap);
    const v = await inc.abort(id, 'the source failed');
    assert.equal(v.state, 'aborted');
    assert.equal(engine.killed, 1);
    assert.equal(engine.resumed, 0);
    assert.equal(engine.snapshots.has(snap), false);
    await assert.rejects(inc.commit(id), (e) => isFerryError(e, 'ERR_MIGRATION_STATE'));
  });

  it('a held copy that hears nothing within its hold is killed and removed (ERR_MIGRATE_TIMEOUT)', async () => {
    const { engine, inc } = await setup();
    const id = 'm-0000000000000003';
    await inc.preflight(id, await pre({ holdMs: 1000 }));
    const snap = await receive(engine, inc, id);
    await inc.restore(id, snap);
    await new Promise((r) => setTimeout(r, 1300));
    const v = inc.view(id);
    assert.equal(v.state, 'aborted');
    assert.equal(v.error?.code, 'ERR_MIGRATE_TIMEOUT');
    assert.equal(engine.killed, 1);
    assert.equal(engine.snapshots.has(snap), false);
  });

  it('a migration that never gets its next step is dropped after the idle limit', async () => {
    const { engine, inc } = await setup({ idleMs: 200 });
    const id = 'm-0000000000000004';
    await inc.preflight(id, await pre());
    const snap = await receive(engine, inc, id);
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(inc.view(id).state, 'aborted');
    assert.equal(engine.snapshots.has(snap), false);
  });

  it('refuses steps out of order, unknown ids, a second preflight, and incompatible sources', async () => {
    const { engine, inc } = await setup();
    const id = 'm-0000000000000005';
    await assert.rejects(inc.commit(id), (e) => isFerryError(e, 'ERR_NO_MIGRATION'));
    await inc.preflight(id, await pre());
    await assert.rejects(inc.preflight(id, await pre()), (e) => isFerryError(e, 'ERR_MIGRATION_STATE'));
    await assert.rejects(inc.restore(id, 'nothing'), (e) => isFerryError(e, 'ERR_MIGRATION_STATE'));
    await assert.rejects(inc.commit(id), (e) => isFerryError(e, 'ERR_MIGRATION_STATE'));
    await assert.rejects(inc.preflight('m-0000000000000006', await pre({ criuVersion: '3.17.1' })), (e) => isFerryError(e, 'ERR_MIGRATE_REFUSED') && /CRIU 3\.17\.1/.test(e.message));
    await assert.rejects(inc.preflight('m-0000000000000007', await pre({ target: { kind: 'process', ownPidNamespace: false, pids: [process.pid] } })), (e) => isFerryError(e, 'ERR_MIGRATE_REFUSED') && /pid/.test(e.message));
    await assert.rejects(inc.preflight('m-0000000000000008', await pre({ bytes: 2 ** 49 })), (e) => isFerryError(e, 'ERR_MIGRATE_REFUSED'));
    await assert.rejects(inc.preflight('m-0000000000000009', await pre({ address: { address: '10.250.0.9', prefix: 24 } })), (e) => isFerryError(e, 'ERR_MIGRATE_REFUSED') && /address/.test(e.message));
    void engine;
  });

  it('takes a service address held before the restore, releases it at commit, removes it on abort', async () => {
    const calls: string[] = [];
    const ops: AddressOps = {
      prepare: (a: ServiceAddress) => { calls.push(`prepare ${a.address}`); return Promise.resolve(); },
      release: (a: ServiceAddress) => { calls.push(`release ${a.address}`); return Promise.resolve(); },
      remove: (a: ServiceAddress) => { calls.push(`remove ${a.address}`); return Promise.resolve(); },
    };
    const { engine, inc } = await setup({ address: ops });
    const address = { address: '10.250.0.9', prefix: 24 };
    await inc.preflight('m-000000000000000a', await pre({ address }));
    await inc.restore('m-000000000000000a', await receive(engine, inc, 'm-000000000000000a'));
    assert.deepEqual(calls, ['prepare 10.250.0.9']);
    await inc.commit('m-000000000000000a');
    assert.deepEqual(calls, ['prepare 10.250.0.9', 'release 10.250.0.9']);
    calls.length = 0;
    await inc.preflight('m-000000000000000b', await pre({ address }));
    await inc.restore('m-000000000000000b', await receive(engine, inc, 'm-000000000000000b'));
    await inc.abort('m-000000000000000b', 'x');
    assert.deepEqual(calls, ['prepare 10.250.0.9', 'remove 10.250.0.9']);
  });

  it('an agent restarted after dying mid-migration removes what it had received', async () => {
    const { engine, inc } = await setup();
    const id = 'm-000000000000000c';
    await inc.preflight(id, await pre());
    const snap = await receive(engine, inc, id);
    // (the agent "dies" here: a new one finds the record)
    const out = await recoverIncoming(engine);
    assert.deepEqual(out, [{ id, removed: [snap] }]);
    assert.equal(engine.snapshots.has(snap), false);
    assert.deepEqual(await recoverIncoming(engine), []);
  });
  it('a replica is sealed and kept: no restore, no hold, no record; the idle timer does not remove it', async () => {
    const { engine, inc, root } = await setup({ idleMs: 200 });
    const id = 'm-0000000000000009';
    await inc.preflight(id, await pre({ replica: true }));
    const snap = await receive(engine, inc, id);
    assert.equal(inc.view(id).state, 'committed');
    assert.deepEqual(await readdir(join(root, 'migrations')), []);
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(engine.snapshots.has(snap), true, 'the replica stays after the idle time');
    assert.equal(engine.resumed + engine.killed, 0, 'nothing was restored');
    await assert.rejects(inc.restore(id, snap), (e) => isFerryError(e, 'ERR_MIGRATION_STATE'));
    assert.deepEqual(await recoverIncoming(engine), [], 'a restarted agent finds nothing to undo');
  });
});
