import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LimitAdmission } from '../engine/admission.js';
import { Jobs } from '../engine/jobs.js';
import { jobRunner } from '../scenarios/job-runner.js';
import type { HostOperationView } from '../scenarios/host-operations.js';
import { listReplicas } from '../scenarios/replicas.js';
import { Schedules, type ScheduleView } from '../scenarios/schedules.js';
import { FakeEngine } from '../testing/fake-engine.js';
import type { RestoreRequest, RestoreResult } from '../engine/engine.js';
import { createAgentApp } from './app.js';

/** A restore whose copy is never alive (a pid beyond pid_max's default): what a failover must catch. */
class DeadRestoreEngine extends FakeEngine {
  override async restore(req: RestoreRequest): Promise<RestoreResult> {
    return { ...await super.restore(req), pid: 2 ** 22 - 1 };
  }
}

/** The scenario routes (host, schedules, replicas, failover) in-process, on a fake engine. */
describe('agent scenario routes (in-process, fake engine)', () => {
  let dir = '';
  let engine: FakeEngine;
  let jobs: Jobs;
  let schedules: Schedules;
  let agent: ReturnType<typeof createAgentApp>;
  const call = async <T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const r = await agent.app.request(path, { method, ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}) });
    return { status: r.status, body: await r.json() as T };
  };
  type Err = { error: { code: string; message: string } };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-agent-scen-'));
    engine = new DeadRestoreEngine(dir);
    jobs = new Jobs({ engine, admission: new LimitAdmission(2) });
    schedules = new Schedules({ engine, run: jobRunner(jobs), minEveryMs: 50 });
    agent = createAgentApp({ engine, jobs, schedules });
  });
  after(async () => {
    await schedules.close();
    await jobs.close();
    agent.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it('host evacuate: exactly one of toDisk and to; an operation is polled to its end; unknown ids are 404', async () => {
    for (const body of [{}, { toDisk: true, to: { url: 'http://10.0.0.2:7387' } }, { toDisk: false }, { toDisk: true, extra: 1 }]) {
      const r = await call<Err>('POST', '/v1/host/evacuate', body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body.error.code, 'ERR_USAGE');
    }
    const started = await call<{ operation: HostOperationView }>('POST', '/v1/host/evacuate', { toDisk: true });
    assert.equal(started.status, 202);
    let op = started.body.operation;
    for (let i = 0; op.state === 'running' && i < 100; i++) {
      await new Promise((r) => setTimeout(r, 20));
      op = (await call<{ operation: HostOperationView }>('GET', `/v1/host/operations/${op.id}`)).body.operation;
    }
    assert.equal(op.state, 'succeeded');
    assert.deepEqual([op.result?.['ok'], op.result?.['workloads']], [true, []]);
    assert.equal((await call<Err>('GET', '/v1/host/operations/h-0000000000000000')).body.error.code, 'ERR_NO_EVACUATION');
    assert.equal((await call<Err>('GET', '/v1/host/operations/nope')).status, 400);
  });

  it('schedules: add, list (no token shown), remove; bad bodies refused', async () => {
    assert.equal((await call<Err>('POST', '/v1/schedules', { target: '../x', everyMs: 1000 })).status, 400);
    assert.equal((await call<Err>('POST', '/v1/schedules', { target: 'web' })).status, 400);
    const added = await call<{ schedule: ScheduleView }>('POST', '/v1/schedules', { target: 'web', everyMs: 5000, keep: 2, replicateTo: { url: 'http://127.0.0.1:9', token: 'the-standby-token' } });
    assert.equal(added.status, 201, JSON.stringify(added.body));
    const ls = await agent.app.request('/v1/schedules');
    const text = await ls.text();
    assert.doesNotMatch(text, /the-standby-token/);
    assert.equal((JSON.parse(text) as { schedules: ScheduleView[] }).schedules[0]?.id, added.body.schedule.id);
    const metrics = await (await agent.app.request('/metrics')).text();
    assert.match(metrics, new RegExp(`ferry_schedule_interval_seconds\\{schedule="${added.body.schedule.id}",target="web"\\} 5`));
    assert.equal((await call<{ schedule: ScheduleView }>('DELETE', `/v1/schedules/${added.body.schedule.id}`)).status, 200);
    assert.equal((await call<Err>('DELETE', `/v1/schedules/${added.body.schedule.id}`)).body.error.code, 'ERR_NO_SCHEDULE');
    const refused = await call<Err>('POST', '/v1/schedules', { target: 'fail', everyMs: 1000 });
    assert.equal(refused.body.error.code, 'ERR_NO_WORKLOAD');
  });

  it('replicas: a record needs its snapshot sealed here; failover restores the newest, or says there is none', async () => {
    const none = await call<Err>('POST', '/v1/failover', { name: 'web' });
    assert.equal(none.status, 404);
    assert.equal(none.body.error.code, 'ERR_NO_REPLICA');
    const missing = await call<Err>('POST', '/v1/replicas', { snapshot: 'm-0000000000000001', workload: 'web', takenAt: new Date().toISOString(), from: { host: 'h1' } });
    assert.equal(missing.body.error.code, 'ERR_NO_SNAPSHOT');
    const older = await engine.checkpoint({ target: 'web', name: 'm-00000000000000aa' });
    const newer = await engine.checkpoint({ target: 'web', name: 'm-00000000000000bb' });
    for (const [s, t] of [[older.snapshot, '2026-01-01T00:00:00.000Z'], [newer.snapshot, '2026-01-01T00:00:02.000Z']] as const) {
      assert.equal((await call('POST', '/v1/replicas', { snapshot: s, workload: 'web', takenAt: t, from: { host: 'h1', url: 'http://10.0.0.1:7387' } })).status, 201);
    }
    assert.deepEqual((await listReplicas(dir)).map((r) => r.snapshot), [newer.snapshot, older.snapshot]);
    assert.equal((await call<Err>('POST', '/v1/failover', { name: 'web', from: { url: 'http://10.0.0.9:7387' } })).body.error.code, 'ERR_NO_REPLICA');
    // (The restored copy is not alive: the failover says so, naming the newest replica it restored.)
    const fo = await call<Err>('POST', '/v1/failover', { name: 'web', from: { url: 'http://10.0.0.1:7387' } });
    assert.equal(fo.body.error.code, 'ERR_TARGET_DIED');
    assert.match(fo.body.error.message, new RegExp(newer.snapshot));
    assert.equal((await call('DELETE', `/v1/replicas/${older.snapshot}`)).status, 200);
    assert.equal(engine.snapshots.has(older.snapshot), false);
    assert.equal((await call<Err>('DELETE', `/v1/replicas/${older.snapshot}`)).body.error.code, 'ERR_NO_REPLICA');
  });
});
