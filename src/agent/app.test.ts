import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LimitAdmission } from '../engine/admission.js';
import { inspectReport, type InspectReport } from '../engine/inspect-report.js';
import { Jobs, type Job } from '../engine/jobs.js';
import { PE_PRESENT } from '../criu/images/pagemap.js';
import { PID, writeDump } from '../testing/synthetic-dump.js';
import { Store } from '../store/store.js';
import { FakeEngine } from '../testing/fake-engine.js';
import { createAgentApp } from './app.js';

const TOKEN = 's3cret-token';

describe('agent routes (in-process, fake engine)', () => {
  let dir = '';
  let engine: FakeEngine;
  let jobs: Jobs;
  let agent: ReturnType<typeof createAgentApp>;
  const req = (path: string, init: RequestInit & { auth?: string | null } = {}) => {
    const headers = new Headers(init.headers);
    if (init.auth !== null) headers.set('authorization', `Bearer ${init.auth ?? TOKEN}`);
    return agent.app.request(path, { ...init, headers });
  };
  const post = (path: string, body: unknown) => req(path, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-agent-'));
    engine = new FakeEngine(dir);
    jobs = new Jobs({ engine, admission: new LimitAdmission(1) });
    agent = createAgentApp({ engine, jobs, token: TOKEN, bodyLimit: 4096, version: '9.9.9', criuVersion: () => Promise.resolve('4.2') });
  });
  after(async () => {
    await jobs.close();
    agent.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it('GET /v1/health', async () => {
    const r = await req('/v1/health');
    assert.equal(r.status, 200);
    const b = await r.json() as { ok: boolean; version: string; criu: { version: string } };
    assert.deepEqual([b.ok, b.version, b.criu.version], [true, '9.9.9', '4.2']);
  });

  it('auth: no token and a wrong token get 401 with a code; the right one 200', async () => {
    for (const auth of [null, 'wrong', `${TOKEN}x`, '']) {
      const r = await req('/v1/health', { auth });
      assert.equal(r.status, 401, String(auth));
      assert.equal((await r.json() as { error: { code: string } }).error.code, 'ERR_UNAUTHORIZED');
    }
    const r = await req('/v1/jobs', { headers: { authorization: `Basic ${TOKEN}` }, auth: null });
    assert.equal(r.status, 401);
    assert.equal((await req('/v1/jobs')).status, 200);
  });

  it('POST /v1/checkpoints → 202 {job}; the job runs, GET /v1/jobs/:id has the CLI-shaped result; SSE replays and ends', async () => {
    const r = await post('/v1/checkpoints', { target: 'w1', leaveRunning: true, tier: 'memory', memoryBudget: 1 << 30, dedup: false });
    assert.equal(r.status, 202);
    const { job } = await r.json() as { job: Job };
    assert.equal(job.kind, 'checkpoint');
    assert.equal(job.state, 'queued');
    await jobs.settled(job.id);
    const got = await (await req(`/v1/jobs/${job.id}`)).json() as { job: Job };
    assert.equal(got.job.state, 'succeeded');
    assert.equal(got.job.result?.['snapshot'], 'fake-1');
    const sent = engine.checkpoints.at(-1);
    assert.equal(sent?.leaveRunning, true);
    assert.equal(sent?.tier, 'memory');
    assert.equal(sent?.dedup, false);
    assert.deepEqual(sent?.memoryBudget, { memoryBudgetBytes: 1 << 30 });
    const ev = await req(`/v1/jobs/${job.id}/events`);
    assert.equal(ev.status, 200);
    assert.match(ev.headers.get('content-type') ?? '', /text\/event-stream/);
    const text = await ev.text();
    const events = [...text.matchAll(/^event: (\w+)\ndata: (.*)$/gm)].map((m) => `${m[1]}:${(JSON.parse(m[2] ?? '{}') as { state: string; phase?: string }).phase ?? ''}:${(JSON.parse(m[2] ?? '{}') as { state: string }).state}`);
    assert.deepEqual(events, ['state::queued', 'state::running', 'phase:criu:start', 'phase:criu:end', 'phase:commit:start', 'phase:commit:end', 'state::succeeded']);
    const list = await (await req('/v1/jobs')).json() as { jobs: Job[] };
    assert.ok(list.jobs.some((j) => j.id === job.id));
  });

  it('SSE follows a running job live until its final state', async () => {
    let open = () => {};
    engine.gate = new Promise((r) => { open = r; });
    const { job } = await (await post('/v1/checkpoints', { target: 'w2' })).json() as { job: Job };
    const ev = await req(`/v1/jobs/${job.id}/events`);
    setTimeout(open, 50);
    const text = await ev.text();
    assert.match(text, /event: state\ndata: \{"state":"succeeded"/);
    engine.gate = Promise.resolve();
  });

  it('DELETE /v1/jobs/:id cancels a running checkpoint at its safe point', async () => {
    let open = () => {};
    engine.gate = new Promise((r) => { open = r; });
    const { job } = await (await post('/v1/checkpoints', { target: 'w3' })).json() as { job: Job };
    await new Promise((r) => setImmediate(r));
    const d = await req(`/v1/jobs/${job.id}`, { method: 'DELETE' });
    assert.equal(d.status, 202);
    open();
    engine.gate = Promise.resolve();
    const done = await jobs.settled(job.id);
    assert.equal(done?.state, 'cancelled');
    assert.equal(done?.error?.code, 'ERR_INTERRUPTED');
    const again = await req(`/v1/jobs/${job.id}`, { method: 'DELETE' });
    assert.equal(again.status, 200);
    assert.equal((await again.json() as { cancelled: boolean }).cancelled, false);
    assert.equal((await req('/v1/jobs/j-0000000000000000', { method: 'DELETE' })).status, 404);
  });

  it('POST /v1/restores → 202; a failing job reports the error', async () => {
    const ok = await (await post('/v1/restores', { snapshot: 'fake-1', as: 'copy' })).json() as { job: Job };
    assert.equal((await jobs.settled(ok.job.id))?.result?.['pid'], 4242);
    const bad = await (await post('/v1/restores', { snapshot: 'missing' })).json() as { job: Job };
    const done = await jobs.settled(bad.job.id);
    assert.equal(done?.state, 'failed');
    assert.equal(done?.error?.code, 'ERR_NO_SNAPSHOT');
  });

  it('snapshots: list, inspect, remove; 404 with a code for a missing one', async () => {
    const list = await (await req('/v1/snapshots')).json() as { snapshots: { id: string }[] };
    assert.ok(list.snapshots.some((s) => s.id === 'fake-1'));
    const one = await (await req('/v1/snapshots/fake-1')).json() as { snapshot: { id: string; bytes: number } };
    assert.equal(one.snapshot.bytes, 40960);
    assert.equal((await req('/v1/snapshots/fake-1', { method: 'DELETE' })).status, 200);
    const gone = await req('/v1/snapshots/fake-1');
    assert.equal(gone.status, 404);
    assert.equal((await gone.json() as { error: { code: string } }).error.code, 'ERR_NO_SNAPSHOT');
  });

  it('GET /v1/snapshots/:id/inspect: the report of `ferry snapshots inspect --json` (images decoded; environment names only unless env=full)', async () => {
    const { job } = await (await post('/v1/checkpoints', { target: 'w1', name: 'synth' })).json() as { job: Job };
    assert.equal((await jobs.settled(job.id))?.state, 'succeeded');
    const images = join(dir, 'synth-images');
    await mkdir(images);
    await writeDump(images, PE_PRESENT);
    engine.snapshots.get('synth')!.dir = images;
    const r = await req('/v1/snapshots/synth/inspect');
    assert.equal(r.status, 200);
    const report = await r.json() as InspectReport;
    assert.deepEqual(report, JSON.parse(JSON.stringify(await inspectReport(await engine.inspect('synth'), false))) as unknown);
    assert.equal(report.manifest.id, 'synth');
    assert.ok(!('files' in report.manifest));
    assert.equal(report.images.processes[0]?.pid, PID);
    assert.match(report.environmentValues, /^hidden/);
    assert.equal((await (await req('/v1/snapshots/synth/inspect?env=full')).json() as InspectReport).environmentValues, 'shown');
    const bad = await req('/v1/snapshots/synth/inspect?env=all');
    assert.equal(bad.status, 400);
    assert.equal((await req('/v1/snapshots/missing/inspect')).status, 404);
    assert.equal((await req('/v1/snapshots/a..b/inspect')).status, 400);
    assert.equal((await req('/v1/snapshots/synth', { method: 'DELETE' })).status, 200);
  });

  it('GET /v1/store: the listing of `ferry snapshots ls --json` (the store on disk: empty here)', async () => {
    const l = await (await req('/v1/store')).json() as Record<string, unknown>;
    assert.deepEqual(Object.keys(l).sort(), ['damaged', 'leftovers', 'memoryTier', 'snapshots', 'totalBytes', 'totalLogicalBytes', 'totalStoredBytes']);
    assert.deepEqual(l['snapshots'], []);
  });

  it('GET /v1/workloads (an empty store)', async () => {
    assert.deepEqual(await (await req('/v1/workloads')).json(), { workloads: [], workloadsDir: join(dir, 'workloads') });
  });

  it('ids with .. or / are refused with 400', async () => {
    // (A bare '..' or '%2e%2e' segment is resolved by URL parsing before routing: /v1/snapshots/.. is /v1/, a 404.)
    assert.equal((await req('/v1/snapshots/%2e%2e')).status, 404);
    for (const path of ['/v1/snapshots/..%2Fetc', '/v1/snapshots/a%2Fb', '/v1/snapshots/a..b', '/v1/snapshots/..a', '/v1/jobs/..%2F..%2Fx', '/v1/jobs/j-..%2Fx/events']) {
      for (const method of ['GET', 'DELETE']) {
        if (path.endsWith('/events') && method === 'DELETE') continue;
        const r = await req(path, { method });
        assert.equal(r.status, 400, `${method} ${path}`);
        assert.equal((await r.json() as { error: { code: string } }).error.code, 'ERR_USAGE');
      }
    }
    const r = await post('/v1/restores', { snapshot: '../../etc' });
    assert.equal(r.status, 400);
  });

  it('a body over the limit gets 413; malformed bodies 400 with a code; unknown routes 404 JSON', async () => {
    const big = await post('/v1/checkpoints', { target: 'w1', external: ['x'.repeat(5000)] });
    assert.equal(big.status, 413);
    assert.equal((await big.json() as { error: { code: string } }).error.code, 'ERR_BODY_TOO_LARGE');
    for (const body of ['{', 'null', '[]', '{"target":1.5}', '{"target":"w","bogus":1}', '{"target":"w","tier":"tape"}']) {
      const r = await req('/v1/checkpoints', { method: 'POST', body, headers: { 'content-type': 'application/json' } });
      assert.equal(r.status, 400, body);
      assert.equal((await r.json() as { error: { code: string } }).error.code, 'ERR_USAGE');
    }
    const nf = await req('/v1/nope');
    assert.equal(nf.status, 404);
    assert.equal((await nf.json() as { error: { code: string } }).error.code, 'ERR_NO_ROUTE');
  });

  it('GET /metrics is Prometheus text and counts the jobs', async () => {
    const r = await req('/metrics');
    assert.equal(r.status, 200);
    const text = await r.text();
    assert.match(text, /^ferry_jobs_total\{kind="checkpoint",outcome="succeeded"\} [1-9]/m);
    assert.match(text, /^ferry_jobs_total\{kind="restore",outcome="failed"\} 1$/m);
    assert.match(text, /^ferry_checkpoint_bytes_written_total [1-9]/m);
    assert.match(text, /^ferry_phase_duration_seconds_count\{kind="checkpoint",phase="criu"\} [1-9]/m);
    assert.match(text, /^ferry_jobs_queued 0$/m);
    assert.match(text, /^process_cpu_user_seconds_total /m);
  });

  it('GET /v1/openapi.json is derived from the request schemas', async () => {
    const doc = await (await req('/v1/openapi.json')).json() as { openapi: string; paths: Record<string, unknown>; components: { schemas: { CheckpointBody: { properties: Record<string, unknown>; additionalProperties: boolean } } } };
    assert.equal(doc.openapi, '3.1.0');
    assert.ok(doc.paths['/v1/jobs/{id}/events']);
    assert.ok('leaveRunning' in doc.components.schemas.CheckpointBody.properties);
    assert.equal(doc.components.schemas.CheckpointBody.additionalProperties, false);
  });

  it('the routes wrote nothing but the store\'s own layout (the fake engine keeps snapshots in memory)', async () => {
    const store = new Store({ root: dir });
    assert.deepEqual(await store.list(), []);
    assert.ok((await readdir(dir)).every((e) => !e.startsWith('fake-') && e !== 'synth'));
  });
});
