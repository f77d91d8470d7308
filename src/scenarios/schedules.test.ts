import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Jobs } from '../engine/jobs.js';
import { FakeEngine } from '../testing/fake-engine.js';
import { FerryError, isFerryError } from '../util/errors.js';
import { jobRunner } from './job-runner.js';
import type { ReplicateArgs, ReplicaTransport } from './replicate-snapshot.js';
import { Schedules } from './schedules.js';

const dirs: string[] = [];
after(async () => { for (const d of dirs) await rm(d, { recursive: true, force: true }); });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function setup(replicas?: ReplicaTransport) {
  const root = await mkdtemp(join(tmpdir(), 'ferry-sched-unit-'));
  dirs.push(root);
  const engine = new FakeEngine(root);
  const jobs = new Jobs({ engine });
  const make = () => new Schedules({ engine, run: jobRunner(jobs), minEveryMs: 50, selfUrl: 'http://10.0.0.1:7387', ...(replicas ? { replicas } : {}) });
  return { root, engine, jobs, make };
}

describe('schedules (no root: a fake engine, the real jobs registry)', () => {
  it('snapshots at its interval with leave-running and newest-flat dedup, keeping its newest N', async () => {
    const { engine, jobs, make } = await setup();
    const s = make();
    const v = await s.add({ target: 'web', everyMs: 60, keep: 2 });
    assert.equal(v.runs, 1);
    assert.ok(v.lastSnapshot);
    await sleep(330);
    await s.close();
    const [view] = s.list();
    assert.ok(view!.runs >= 4, `${view!.runs} runs`);
    assert.equal(view!.failures, 0);
    assert.equal(view!.snapshots.length, 2);
    assert.deepEqual([...engine.snapshots.keys()].sort(), view!.snapshots.map((x) => x.id).sort(), 'older ones of its own were removed');
    for (const c of engine.checkpoints) {
      assert.equal(c.leaveRunning, true);
      assert.equal(c.dedup, 'newest-flat');
      assert.equal(c.tier, 'disk');
    }
    await jobs.close();
  });

  it('never removes snapshots it did not take', async () => {
    const { engine, jobs, make } = await setup();
    await engine.checkpoint({ target: 'web', name: 'users-own' });
    const s = make();
    await s.add({ target: 'web', everyMs: 50, keep: 1 });
    await sleep(200);
    await s.close();
    assert.ok(engine.snapshots.has('users-own'));
    assert.equal(engine.snapshots.size, 2);
    await jobs.close();
  });

  it('refuses a target that cannot be checkpointed, too short an interval, a second schedule of one target', async () => {
    const { root, jobs, make } = await setup();
    const s = make();
    await assert.rejects(s.add({ target: 'fail', everyMs: 100 }), (e) => isFerryError(e, 'ERR_NO_WORKLOAD') && /cannot schedule fail/.test(e.message));
    await assert.rejects(s.add({ target: 'web', everyMs: 10 }), (e) => isFerryError(e, 'ERR_BAD_OPTION'));
    await s.add({ target: 'web', everyMs: 1000 });
    await assert.rejects(s.add({ target: 'web', everyMs: 1000 }), (e) => isFerryError(e, 'ERR_ALREADY_RUNNING'));
    await assert.rejects(s.remove('s-000000000000'), (e) => isFerryError(e, 'ERR_NO_SCHEDULE'));
    // (records only: a record being rewritten has its temporary file beside it for a moment)
    assert.equal((await readdir(join(root, 'schedules'))).filter((f) => f.endsWith('.json')).length, 1, 'a refused schedule leaves no record');
    await s.close();
    await jobs.close();
  });

  it('replicates each new snapshot, keeps N replicas on the standby, counts a failed replication and goes on', async () => {
    const sent: ReplicateArgs[] = [];
    let failNext = false;
    const standby = new Set<string>();
    const transport: ReplicaTransport = {
      send: (a) => {
        sent.push(a);
        if (failNext) { failNext = false; return Promise.reject(new FerryError('ERR_AGENT_UNREACHABLE', 'standby down')); }
        standby.add(`r-${a.snapshot}`);
        return Promise.resolve({ replica: `r-${a.snapshot}`, bytes: 1, wireBytes: 1, ms: 1 });
      },
      drop: (_to, replica) => { standby.delete(replica); return Promise.resolve(); },
    };
    const { jobs, make } = await setup(transport);
    const s = make();
    const v = await s.add({ target: 'web', everyMs: 80, keep: 2, replicateTo: { url: 'http://10.0.0.2:7387', token: 'secret-token-xyz', name: 'h2' } });
    assert.deepEqual(v.replicateTo, { url: 'http://10.0.0.2:7387', name: 'h2' }, 'the view never shows the token');
    await sleep(120);
    failNext = true;
    await sleep(300);
    await s.close();
    const [view] = s.list();
    assert.equal(view!.replicationFailures, 1);
    assert.equal(view!.lastReplicationError, undefined, 'a later success clears the error');
    assert.equal(view!.replicas.length, 2);
    assert.deepEqual([...standby].sort(), view!.replicas.map((r) => r.replica).sort(), 'the standby keeps the newest 2');
    assert.ok(view!.replicationLagSeconds !== null && view!.replicationLagSeconds < 1);
    assert.deepEqual(sent[0]!.from, { host: sent[0]!.from.host, url: 'http://10.0.0.1:7387', schedule: view!.id });
    assert.equal(sent[0]!.to.token, 'secret-token-xyz');
    await jobs.close();
  });

  it('persists: a new Schedules on the same store resumes it with its snapshots; an unreadable record is reported and left', async () => {
    const { root, engine, jobs, make } = await setup();
    const a = make();
    const v = await a.add({ target: 'web', everyMs: 60, keep: 2 });
    await sleep(150);
    await a.close();
    const rec = JSON.parse(await readFile(join(root, 'schedules', `${v.id}.json`), 'utf8')) as { runs: number };
    await writeFile(join(root, 'schedules', 's-ffffffffffff.json'), '{not json');
    const b = make();
    const loaded = await b.load();
    assert.deepEqual(loaded.loaded, [v.id], JSON.stringify(loaded.unreadable));
    assert.equal(loaded.unreadable.length, 1);
    await sleep(200);
    await b.close();
    const [view] = b.list();
    assert.ok(view!.runs > rec.runs, 'it ran on');
    assert.equal(view!.snapshots.length, 2);
    assert.equal(engine.snapshots.size, 2, 'retention went on over the snapshots of the earlier instance');
    const c = make();
    await c.load();
    await c.remove(v.id);
    assert.deepEqual((await readdir(join(root, 'schedules'))).filter((n) => n.startsWith('s-') && n !== 's-ffffffffffff.json'), []);
    await c.close();
    await jobs.close();
  });
});
