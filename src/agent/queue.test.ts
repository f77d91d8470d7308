// The agent's queue, in-process (fake engine, the real jobs registry and freeze scheduler): the
// place of each waiting checkpoint in GET /v1/jobs/:id and in its event stream, priorities from
// the request, and admission by the bytes a dump will write into the memory tier.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LimitAdmission } from '../engine/admission.js';
import { Jobs, type Job } from '../engine/jobs.js';
import { Admission } from '../scheduler/admission.js';
import { FakeEngine } from '../testing/fake-engine.js';
import { createAgentApp } from './app.js';

const MiB = 2 ** 20;
const tick = () => new Promise((r) => setTimeout(r, 10));

/** An in-process agent whose checkpoints go through a freeze scheduler with these budgets. */
function agentWith(dir: string, budgets: ConstructorParameters<typeof Admission>[0]) {
  const engine = new FakeEngine(dir);
  const scheduler = new Admission(budgets);
  const jobs = new Jobs({ engine, admission: new LimitAdmission(16), scheduler });
  const agent = createAgentApp({ engine, jobs });
  const post = async (body: object) => ((await (await agent.app.request('/v1/checkpoints', { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } })).json()) as { job: Job }).job;
  const get = async (id: string) => ((await (await agent.app.request(`/v1/jobs/${id}`)).json()) as { job: Job }).job;
  const place = async (id: string) => { const j = await get(id); return `${j.state}${j.queuePosition !== undefined ? ` ${j.queuePosition}/${j.queueLength}` : ''}`; };
  return { engine, scheduler, jobs, agent, post, get, place, async close() { await jobs.close(); agent.dispose(); } };
}

/** The job's event stream as lines: `state:queued 2/3`, `progress 1/2`, `phase:criu:start`. */
async function stream(a: ReturnType<typeof agentWith>, id: string): Promise<string[]> {
  const text = await (await a.agent.app.request(`/v1/jobs/${id}/events`)).text();
  return [...text.matchAll(/^event: (\w+)\ndata: (.*)$/gm)].map((m) => {
    const d = JSON.parse(m[2] ?? '{}') as { state?: string; phase?: string; queuePosition?: number; queueLength?: number; job?: Job };
    if (m[1] === 'state') return `state:${d.state}${d.job?.queuePosition !== undefined ? ` ${d.job.queuePosition}/${d.job.queueLength}` : ''}`;
    if (m[1] === 'progress') return `progress ${d.queuePosition}/${d.queueLength}`;
    return `phase:${d.phase}:${d.state}`;
  });
}

describe('agent queue (in-process)', () => {
  let dir = '';
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'ferry-agent-queue-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  it('one freeze at a time, three checkpoints: the waiting ones are queued at places 1 and 2, then advance; their streams say so', async () => {
    const a = agentWith(dir, { dumps: 1, memoryBytes: 1 << 30 });
    const opens = ['a', 'b', 'c'].map((t) => a.engine.hold(t));
    const [ja, jb, jc] = [await a.post({ target: 'a' }), await a.post({ target: 'b' }), await a.post({ target: 'c' })];
    await tick();
    assert.deepEqual([await a.place(ja.id), await a.place(jb.id), await a.place(jc.id)], ['running', 'queued 1/2', 'queued 2/2']);
    opens[0]!();
    await a.jobs.settled(ja.id);
    await tick();
    assert.deepEqual([await a.place(jb.id), await a.place(jc.id)], ['running', 'queued 1/1']);
    opens[1]!();
    await a.jobs.settled(jb.id);
    await tick();
    assert.equal(await a.place(jc.id), 'running');
    opens[2]!();
    assert.equal((await a.jobs.settled(jc.id))?.state, 'succeeded');
    // The streams (replayed from the start) show when each became queued, moved, and ran.
    // (b queued first, alone in the line; c's arrival made it 1 of 2.)
    assert.deepEqual(await stream(a, jb.id), ['state:queued', 'state:running', 'phase:criu:start', 'state:queued 1/1', 'progress 1/2', 'state:running', 'phase:criu:end', 'phase:commit:start', 'phase:commit:end', 'state:succeeded']);
    assert.deepEqual(await stream(a, jc.id), ['state:queued', 'state:running', 'phase:criu:start', 'state:queued 2/2', 'progress 1/1', 'state:running', 'phase:criu:end', 'phase:commit:start', 'phase:commit:end', 'state:succeeded']);
    const metrics = await (await a.agent.app.request('/metrics')).text();
    assert.match(metrics, /^ferry_job_queue_wait_seconds_count\{kind="checkpoint"\} [1-9]/m);
    await a.close();
  });

  it('`priority` in the request orders the queue', async () => {
    const a = agentWith(dir, { dumps: 1, memoryBytes: 1 << 30 });
    const open = a.engine.hold('first');
    await a.post({ target: 'first' });
    const low = await a.post({ target: 'low', priority: -5 });
    const mid = await a.post({ target: 'mid' });
    const high = await a.post({ target: 'high', priority: 5 });
    await tick();
    assert.deepEqual([await a.place(high.id), await a.place(mid.id), await a.place(low.id)], ['queued 1/3', 'queued 2/3', 'queued 3/3']);
    assert.equal((await a.get(high.id)).priority, 5);
    const bad = await a.agent.app.request('/v1/checkpoints', { method: 'POST', body: '{"target":"x","priority":1.5}', headers: { 'content-type': 'application/json' } });
    assert.equal(bad.status, 400);
    open();
    await a.close();
  });

  it('admits by the bytes in flight into the memory tier: two 200 MiB dumps do not fit 300 MiB (the second waits though two dumps may run); a disk dump passes', async () => {
    const a = agentWith(dir, { dumps: 2, memoryBytes: 300 * MiB });
    for (const t of ['m1', 'm2', 'd1']) a.engine.rss.set(t, 200 * MiB);
    const open1 = a.engine.hold('m1');
    const openD = a.engine.hold('d1');
    const m1 = await a.post({ target: 'm1', tier: 'memory' });
    const m2 = await a.post({ target: 'm2', tier: 'memory' });
    await tick();
    assert.deepEqual([await a.place(m1.id), await a.place(m2.id)], ['running', 'queued 1/1']);
    assert.deepEqual(a.scheduler.snapshot().inUse, { dumps: 1, memoryBytes: 200 * MiB, diskBytes: 0 });
    const d1 = await a.post({ target: 'd1', tier: 'disk' });
    await tick();
    // No backfilling: the disk dump waits behind the memory one at the head (so a big one cannot starve).
    assert.equal(await a.place(d1.id), 'queued 2/2');
    open1();
    assert.equal((await a.jobs.settled(m2.id))?.state, 'succeeded', 'admitted once m1 was dumped');
    await tick();
    assert.equal(await a.place(d1.id), 'running');
    openD();
    await a.jobs.settled(d1.id);
    // Larger than the whole budget: admitted alone rather than never.
    a.engine.rss.set('huge', 900 * MiB);
    assert.equal((await a.jobs.settled((await a.post({ target: 'huge', tier: 'memory' })).id))?.state, 'succeeded');
    await a.close();
  });

  it('admits by the dumps budget: with two, a third checkpoint waits', async () => {
    const a = agentWith(dir, { dumps: 2, memoryBytes: 1 << 30 });
    const opens = ['x1', 'x2'].map((t) => a.engine.hold(t));
    const js = [await a.post({ target: 'x1' }), await a.post({ target: 'x2' }), await a.post({ target: 'x3' })];
    await tick();
    assert.deepEqual(await Promise.all(js.map((j) => a.place(j.id))), ['running', 'running', 'queued 1/1']);
    opens[1]!();
    assert.equal((await a.jobs.settled(js[2]!.id))?.state, 'succeeded');
    opens[0]!();
    await a.close();
  });
});
