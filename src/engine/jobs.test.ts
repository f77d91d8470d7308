import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FakeEngine } from '../testing/fake-engine.js';
import { LimitAdmission } from './admission.js';
import { isJobId, Jobs, type Job, type JobEvent } from './jobs.js';
import { JobJournal } from './job-journal.js';
import { Admission as SchedulerAdmission } from '../scheduler/admission.js';

/** Lets pending promise callbacks and timers of 0 ms run. */
const tick = () => new Promise((r) => setTimeout(r, 10));

describe('Jobs', () => {
  let dir = '';
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'ferry-jobs-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  it('runs a checkpoint: queued → running → succeeded, with its phases and the CLI-shaped result', async () => {
    const jobs = new Jobs({ engine: new FakeEngine(dir) });
    const job = jobs.submit('checkpoint', { target: 'w1', leaveRunning: true });
    assert.ok(isJobId(job.id));
    const done = await jobs.settled(job.id);
    assert.equal(done?.state, 'succeeded');
    assert.deepEqual(done?.phases.map((p) => [p.name, p.state]), [['criu', 'done'], ['commit', 'done']]);
    assert.equal(done?.result?.['snapshot'], 'fake-1');
    assert.equal(done?.result?.['bytesWritten'], 40960);
    assert.ok(done?.startedAt && done.endedAt);
    await jobs.close();
  });

  it('with the freeze scheduler, a second checkpoint waits for its turn before its freeze, and goes once the first is dumped', async () => {
    const engine = new FakeEngine(dir);
    let open = (): void => undefined;
    engine.gate = new Promise<void>((r) => { open = r; });
    const scheduler = new SchedulerAdmission({ dumps: 1, memoryBytes: 1 << 30 });
    const jobs = new Jobs({ engine, admission: new LimitAdmission(4), scheduler });
    const a = jobs.submit('checkpoint', { target: 'w1' });
    const b = jobs.submit('checkpoint', { target: 'w2' });
    await new Promise((r) => setTimeout(r, 50));
    // Both CRIUs started, but only one holds the freeze; the other waits unfrozen, reported as queued.
    assert.equal(jobs.get(a.id)?.state, 'running');
    assert.equal(jobs.get(b.id)?.state, 'queued');
    assert.equal(jobs.get(b.id)?.queuePosition, 1);
    const snap = scheduler.snapshot();
    assert.deepEqual([snap.running.map((r) => r.id), snap.queued.map((q) => q.id)], [[a.id], [b.id]]);
    open();
    assert.equal((await jobs.settled(a.id))?.state, 'succeeded');
    assert.equal((await jobs.settled(b.id))?.state, 'succeeded');
    assert.deepEqual([scheduler.snapshot().running, scheduler.snapshot().queued], [[], []], 'every slot is given back');
    await jobs.close();
  });

  it('a checkpoint waiting for a freeze slot is queued with its place (1 = next); places advance; its stream says queued, then running', async () => {
    const engine = new FakeEngine(dir);
    const opens = ['q1', 'q2', 'q3'].map((t) => engine.hold(t));
    const jobs = new Jobs({ engine, admission: new LimitAdmission(8), scheduler: new SchedulerAdmission({ dumps: 1, memoryBytes: 1 << 30 }) });
    const [a, b, c] = ['q1', 'q2', 'q3'].map((target) => jobs.submit('checkpoint', { target }));
    await tick();
    const place = (id: string) => { const j = jobs.get(id); return [j?.state, j?.queuePosition, j?.queueLength]; };
    assert.deepEqual([place(a!.id), place(b!.id), place(c!.id)], [['running', undefined, undefined], ['queued', 1, 2], ['queued', 2, 2]]);
    assert.deepEqual(jobs.queue(), [b!.id, c!.id]);
    const seen: JobEvent[] = [];
    jobs.subscribe(c!.id, (e) => seen.push(e));
    opens[0]!();
    await jobs.settled(a!.id);
    await tick();
    assert.deepEqual([place(b!.id), place(c!.id)], [['running', undefined, undefined], ['queued', 1, 1]], 'c moved up');
    opens[1]!();
    opens[2]!();
    assert.equal((await jobs.settled(c!.id))?.state, 'succeeded');
    const story = seen.map((e) => e.type === 'state' ? `${e.state}${e.job.queuePosition !== undefined ? `@${e.job.queuePosition}/${e.job.queueLength}` : ''}`
      : e.type === 'progress' ? `place ${e.queuePosition}/${e.queueLength}` : e.type === 'transfer' ? `transfer ${e.bytes}` : `${e.phase}:${e.state}`);
    // Submitted (it started at once: 8 may run), its CRIU started, queued at its freeze gate, moved up, admitted.
    assert.deepEqual(story, ['queued', 'running', 'criu:start', 'queued@2/2', 'place 1/1', 'running', 'criu:end', 'commit:start', 'commit:end', 'succeeded']);
    await jobs.close();
  });

  it('a checkpoint that fails while it waits for its freeze gives its place up; the others proceed', async () => {
    const engine = new FakeEngine(dir);
    const open = engine.hold('f1');
    const scheduler = new SchedulerAdmission({ dumps: 1, memoryBytes: 1 << 30 });
    const jobs = new Jobs({ engine, admission: new LimitAdmission(8), scheduler });
    const [a, b, c] = ['f1', 'f2', 'f3'].map((target) => jobs.submit('checkpoint', { target }));
    await tick();
    assert.deepEqual(jobs.queue(), [b!.id, c!.id]);
    engine.kill('f2');
    const bDone = await jobs.settled(b!.id);
    assert.equal(bDone?.state, 'failed');
    assert.equal(bDone?.error?.code, 'ERR_TARGET_DIED');
    await tick();
    assert.deepEqual(jobs.queue(), [c!.id], 'its request left the scheduler');
    assert.equal(jobs.get(c!.id)?.queuePosition, 1);
    open();
    assert.deepEqual([(await jobs.settled(a!.id))?.state, (await jobs.settled(c!.id))?.state], ['succeeded', 'succeeded']);
    assert.deepEqual([scheduler.snapshot().running, scheduler.snapshot().queued], [[], []], 'no slot leaked');
    await jobs.close();
  });

  it('priorities order both lines: the job admission and the freeze scheduler', async () => {
    const engine = new FakeEngine(dir);
    const open = engine.hold('p0');
    const jobs = new Jobs({ engine, admission: new LimitAdmission(8), scheduler: new SchedulerAdmission({ dumps: 1, memoryBytes: 1 << 30 }) });
    const first = jobs.submit('checkpoint', { target: 'p0' });
    const low = jobs.submit('checkpoint', { target: 'low' }, { priority: -1 });
    const normal = jobs.submit('checkpoint', { target: 'normal' });
    const high = jobs.submit('checkpoint', { target: 'high' }, { priority: 10 });
    await tick();
    assert.deepEqual(jobs.queue(), [high.id, normal.id, low.id]);
    assert.equal(jobs.get(high.id)?.priority, 10);
    assert.deepEqual([high, normal, low].map((j) => jobs.get(j.id)?.queuePosition), [1, 2, 3]);
    const order: string[] = [];
    for (const j of [low, normal, high]) void jobs.settled(j.id).then((d) => order.push(String(d?.result?.['target'] && (d.result['target'] as { workload?: string }).workload)));
    open();
    await Promise.all([first, low, normal, high].map((j) => jobs.settled(j.id)));
    await tick();
    assert.deepEqual(order, ['high', 'normal', 'low']);
    await jobs.close();

    // The job admission (before CRIU starts) orders by priority too.
    const engine2 = new FakeEngine(dir);
    const open2 = engine2.hold('x');
    const one = new Jobs({ engine: engine2, admission: new LimitAdmission(1) });
    one.submit('checkpoint', { target: 'x' });
    const l = one.submit('checkpoint', { target: 'l' });
    const h = one.submit('checkpoint', { target: 'h' }, { priority: 1 });
    await tick();
    assert.deepEqual(one.queue(), [h.id, l.id]);
    open2();
    await one.close();
  });

  it('job records outlive the process: finished jobs come back as they were; unfinished ones read as interrupted', async () => {
    const journal = new JobJournal<Job>(join(dir, 'jobs'));
    const first = new Jobs({ engine: new FakeEngine(dir), journal });
    const done = await first.settled(first.submit('checkpoint', { target: 'w1' }).id);
    await first.close();
    // A job a killed agent left running: its record says so.
    const orphan = { id: 'j-00000000000000aa', kind: 'checkpoint' as const, state: 'running' as const, phases: [], createdAt: new Date().toISOString() };
    journal.save(orphan);
    const again = new Jobs({ engine: new FakeEngine(dir), journal });
    assert.deepEqual(again.get(done!.id)?.result, JSON.parse(JSON.stringify(done?.result)) as unknown, 'as JSON keeps it');
    assert.equal(again.get(done!.id)?.state, 'succeeded');
    const o = again.get(orphan.id);
    assert.equal(o?.state, 'failed');
    assert.equal(o?.error?.code, 'ERR_INTERRUPTED');
    assert.match(o?.error?.hint ?? '', /crash recovery/);
    // ... and that verdict is itself recorded.
    assert.equal(new JobJournal(join(dir, 'jobs')).load().find((j) => j.id === orphan.id)?.state, 'failed');
    await again.close();
  });

  it('replays events to a late subscriber, then stops after the final state', async () => {
    const jobs = new Jobs({ engine: new FakeEngine(dir) });
    const job = jobs.submit('checkpoint', { target: 'w1' });
    await jobs.settled(job.id);
    const seen: JobEvent[] = [];
    jobs.subscribe(job.id, (e) => seen.push(e));
    assert.deepEqual(seen.map((e) => (e.type === 'state' ? e.state : e.type === 'phase' ? `${e.phase}:${e.state}` : 'progress')),
      ['queued', 'running', 'criu:start', 'criu:end', 'commit:start', 'commit:end', 'succeeded']);
    await jobs.close();
  });

  it('a failing operation fails the job with its code, message, hint and phase', async () => {
    const jobs = new Jobs({ engine: new FakeEngine(dir) });
    const done = await jobs.settled(jobs.submit('checkpoint', { target: 'fail' }).id);
    assert.equal(done?.state, 'failed');
    assert.equal(done?.error?.code, 'ERR_NO_WORKLOAD');
    assert.equal(done?.error?.hint, 'see `ferry ps`');
    const r = await jobs.settled(jobs.submit('restore', { snapshot: 'nope' }).id);
    assert.equal(r?.error?.code, 'ERR_NO_SNAPSHOT');
    await jobs.close();
  });

  it('admits one at a time: the second waits queued (with its position) and is cancelled at once; the running one stops at its safe point', async () => {
    const engine = new FakeEngine(dir);
    let open = () => {};
    engine.gate = new Promise((r) => { open = r; });
    const jobs = new Jobs({ engine, admission: new LimitAdmission(1) });
    const a = jobs.submit('checkpoint', { target: 'w1' });
    const b = jobs.submit('checkpoint', { target: 'w2' });
    await new Promise((r) => setImmediate(r));
    assert.equal(jobs.get(a.id)?.state, 'running');
    assert.equal(jobs.get(b.id)?.state, 'queued');
    assert.equal(jobs.get(b.id)?.queuePosition, 1, '1 = next');
    assert.equal(jobs.get(b.id)?.queueLength, 1);
    assert.equal(jobs.cancel(b.id), true);
    const bDone = await jobs.settled(b.id);
    assert.equal(bDone?.state, 'cancelled');
    assert.equal(bDone?.error?.code, 'ERR_CANCELLED');
    assert.equal(engine.checkpoints.length, 1, 'the cancelled job never reached the engine');
    assert.equal(jobs.cancel(a.id), true);
    open();
    const aDone = await jobs.settled(a.id);
    assert.equal(aDone?.state, 'cancelled');
    assert.equal(aDone?.error?.code, 'ERR_INTERRUPTED');
    assert.equal(aDone?.error?.phase, 'criu');
    assert.equal(engine.checkpoints[0]?.interrupt?.aborted, true);
    assert.equal(engine.snapshots.size, 0);
    assert.equal(jobs.cancel(a.id), false, 'a finished job cannot be cancelled');
    assert.equal(jobs.cancel('j-0000000000000000'), undefined);
    await jobs.close();
  });

  it('two jobs in parallel get their own phases', async () => {
    const jobs = new Jobs({ engine: new FakeEngine(dir), admission: new LimitAdmission(2) });
    const [a, b] = [jobs.submit('checkpoint', { target: 'w1' }), jobs.submit('checkpoint', { target: 'w2' })];
    const [x, y] = await Promise.all([jobs.settled(a.id), jobs.settled(b.id)]);
    assert.equal(x?.phases.length, 2);
    assert.equal(y?.phases.length, 2);
    await jobs.close();
  });
});
