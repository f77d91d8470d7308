import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FerryError } from '../util/errors.js';
import { Admission, DEFAULT_POLICY, hostBudgets, policyBudgets, PRIOR_MS_PER_BYTE, type AdmissionRequest, type Release } from './admission.js';

const MiB = 2 ** 20;

/** Lets pending promise callbacks run. */
const settle = () => new Promise<void>((r) => setImmediate(r));

/** Starts acquire() and records when (and whether) it was admitted. */
function track(a: Admission, req: AdmissionRequest) {
  const t = { admitted: false, error: undefined as unknown, release: undefined as Release | undefined };
  const p = a.acquire(req).then((rel) => { t.admitted = true; t.release = rel; }, (err: unknown) => { t.error = err; });
  return Object.assign(t, { p });
}

describe('Admission', () => {
  it('admits no more CRIU dumps at once than the dumps budget', async () => {
    const a = new Admission({ dumps: 2, memoryBytes: 1e12 });
    const js = ['a', 'b', 'c', 'd'].map((id) => track(a, { id, bytes: MiB, tier: 'memory' }));
    await settle();
    assert.deepEqual(js.map((j) => j.admitted), [true, true, false, false]);
    assert.equal(a.snapshot().inUse.dumps, 2);
    js[1]!.release!();
    await settle();
    assert.deepEqual(js.map((j) => j.admitted), [true, true, true, false]);
    js[0]!.release!();
    js[0]!.release!(); // twice frees once
    await settle();
    assert.deepEqual(js.map((j) => j.admitted), [true, true, true, true]);
    assert.equal(a.snapshot().inUse.dumps, 2);
  });

  it('admits by the bytes in flight into the memory tier, and lets disk requests through beside them', async () => {
    const a = new Admission({ dumps: 8, memoryBytes: 300 * MiB });
    const m1 = track(a, { id: 'm1', bytes: 200 * MiB, tier: 'memory' });
    const m2 = track(a, { id: 'm2', bytes: 200 * MiB, tier: 'memory' });
    await settle();
    assert.equal(m1.admitted, true);
    assert.equal(m2.admitted, false, '400 MiB in flight would pass the 300 MiB budget');
    assert.equal(a.queuePosition('m2'), 1);
    m1.release!();
    await settle();
    assert.equal(m2.admitted, true);
    const d = track(a, { id: 'd', bytes: 10_000 * MiB, tier: 'disk' });
    await settle();
    assert.equal(d.admitted, true, 'no disk budget: the memory budget does not hold disk requests');
    assert.deepEqual(a.snapshot().inUse, { dumps: 2, memoryBytes: 200 * MiB, diskBytes: 10_000 * MiB });
  });

  it('admits by the bytes in flight into the disk tier when that budget is set', async () => {
    const a = new Admission({ dumps: 8, memoryBytes: 0, diskBytes: 100 * MiB });
    const d1 = track(a, { id: 'd1', bytes: 60 * MiB, tier: 'disk' });
    const d2 = track(a, { id: 'd2', bytes: 60 * MiB, tier: 'disk' });
    await settle();
    assert.deepEqual([d1.admitted, d2.admitted], [true, false]);
    d1.release!();
    await settle();
    assert.equal(d2.admitted, true);
  });

  it('paces admissions into a tier by its bandwidth, and not when nothing runs', async () => {
    // 8 MiB at 256 MiB/s: the next request into the memory tier waits ≈ 31 ms after one is admitted.
    const a = new Admission({ dumps: 4, memoryBytes: 1e12, memoryBandwidth: 256 * MiB });
    const t0 = performance.now();
    const first = track(a, { id: 'p1', bytes: 8 * MiB, tier: 'memory' });
    const second = track(a, { id: 'p2', bytes: 8 * MiB, tier: 'memory' });
    const disk = track(a, { id: 'd', bytes: 8 * MiB, tier: 'disk' });
    await settle();
    assert.deepEqual([first.admitted, second.admitted], [true, false], 'the second waits for the pace');
    assert.equal(disk.admitted, false, 'FIFO: the disk request behind it waits too');
    await second.p;
    const waited = performance.now() - t0;
    assert.ok(waited >= 29 && waited < 1000, `admitted after ${waited.toFixed(1)} ms, expected ≈ 31`);
    await settle();
    assert.equal(disk.admitted, true, 'no disk pace');
    for (const j of [first, second, disk]) j.release!();
    // Nothing runs: the pace does not hold a request back.
    const alone = track(a, { id: 'p3', bytes: 8 * MiB, tier: 'memory' });
    await settle();
    assert.equal(alone.admitted, true);
    alone.release!();
    assert.throws(() => new Admission({ dumps: 1, memoryBytes: 1, memoryBandwidth: 0 }), { code: 'ERR_BAD_OPTION' });
  });

  it('runs a request larger than a whole budget alone rather than never', async () => {
    const a = new Admission({ dumps: 4, memoryBytes: 100 * MiB });
    const small = track(a, { id: 's', bytes: 10 * MiB, tier: 'memory' });
    const big = track(a, { id: 'b', bytes: 500 * MiB, tier: 'memory' });
    await settle();
    assert.deepEqual([small.admitted, big.admitted], [true, false]);
    small.release!();
    await settle();
    assert.equal(big.admitted, true);
  });

  it('admits higher priorities first, FIFO within a priority, and never lets a small request overtake the head', async () => {
    const a = new Admission({ dumps: 1, memoryBytes: 1e12 });
    const first = track(a, { id: 'first', bytes: 1, tier: 'memory' });
    const order: string[] = [];
    const queued = [
      { id: 'low', priority: -1 }, { id: 'n1', priority: 0 }, { id: 'hi1', priority: 5 }, { id: 'n2' }, { id: 'hi2', priority: 5 },
    ].map((r) => a.acquire({ ...r, bytes: 1, tier: 'memory' }).then((rel) => { order.push(r.id); rel(); }));
    await settle();
    assert.equal(first.admitted, true);
    assert.deepEqual(order, [], 'one dump at once: the others wait');
    assert.deepEqual(a.snapshot().queued.map((q) => q.id), ['hi1', 'hi2', 'n1', 'n2', 'low']);
    first.release!();
    await Promise.all(queued);
    assert.deepEqual(order, ['hi1', 'hi2', 'n1', 'n2', 'low']);

    // No backfilling: a small request behind a big waiting head waits too.
    const b = new Admission({ dumps: 4, memoryBytes: 100 * MiB });
    const r1 = track(b, { id: 'r1', bytes: 60 * MiB, tier: 'memory' });
    const head = track(b, { id: 'head', bytes: 60 * MiB, tier: 'memory' });
    const tiny = track(b, { id: 'tiny', bytes: 1 * MiB, tier: 'memory' });
    await settle();
    assert.deepEqual([r1.admitted, head.admitted, tiny.admitted], [true, false, false]);
    r1.release!();
    await settle();
    assert.deepEqual([head.admitted, tiny.admitted], [true, true]);
  });

  it('cancelling a queued request removes it (ERR_CANCELLED), the queue moves up, and a signal name gives ERR_INTERRUPTED', async () => {
    const a = new Admission({ dumps: 1, memoryBytes: 1e12 });
    const running = track(a, { id: 'run', bytes: 1, tier: 'memory' });
    const ac = new AbortController();
    const cancelled = track(a, { id: 'x', bytes: 1, tier: 'memory', signal: ac.signal });
    const after = track(a, { id: 'y', bytes: 1, tier: 'memory' });
    await settle();
    assert.equal(a.queuePosition('x'), 1);
    assert.equal(a.queuePosition('y'), 2);
    ac.abort();
    await settle();
    assert.ok(cancelled.error instanceof FerryError);
    assert.equal(cancelled.error.code, 'ERR_CANCELLED');
    assert.match(cancelled.error.message, /nothing was checkpointed/);
    assert.equal(a.queuePosition('x'), undefined);
    assert.equal(a.queuePosition('y'), 1);
    running.release!();
    await settle();
    assert.equal(after.admitted, true);
    assert.equal(cancelled.admitted, false);

    const sig = new AbortController();
    sig.abort('SIGTERM');
    await assert.rejects(a.acquire({ bytes: 1, tier: 'memory', signal: sig.signal }), { code: 'ERR_INTERRUPTED' });
    assert.equal(a.snapshot().queued.length, 0, 'an already aborted request never queues');
  });

  it('cancelling the head that held others back admits them', async () => {
    const a = new Admission({ dumps: 4, memoryBytes: 100 * MiB });
    const r = track(a, { id: 'r', bytes: 50 * MiB, tier: 'memory' });
    const ac = new AbortController();
    const big = track(a, { id: 'big', bytes: 90 * MiB, tier: 'memory', signal: ac.signal });
    const small = track(a, { id: 'small', bytes: 40 * MiB, tier: 'memory' });
    await settle();
    assert.deepEqual([r.admitted, big.admitted, small.admitted], [true, false, false]);
    ac.abort();
    await settle();
    assert.equal(small.admitted, true);
    assert.equal((big.error as FerryError).code, 'ERR_CANCELLED');
  });

  it('a job that fails releases its budget and the waiting ones proceed', async () => {
    const a = new Admission({ dumps: 1, memoryBytes: 1e12 });
    const job = async (id: string, fail: boolean): Promise<string> => {
      const release = await a.acquire({ id, bytes: MiB, tier: 'memory' });
      try {
        await settle();
        if (fail) throw new FerryError('ERR_CRIU_OPERATION', `job ${id} failed`);
        return id;
      } finally { release(); }
    };
    const results = await Promise.allSettled([job('a', false), job('b', true), job('c', false), job('d', true), job('e', false)]);
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled']);
    assert.deepEqual(a.snapshot().inUse, { dumps: 0, memoryBytes: 0, diskBytes: 0 });
  });

  it('shows queue positions and a snapshot for display', async () => {
    let now = 1000;
    const a = new Admission({ dumps: 1, memoryBytes: 1e12 }, { now: () => now });
    const jobs = ['j1', 'j2', 'j3'].map((id) => track(a, { id, bytes: 7, tier: 'memory' }));
    await settle();
    now = 1250;
    assert.deepEqual(['j1', 'j2', 'j3', 'nope'].map((id) => a.queuePosition(id)), [0, 1, 2, undefined]);
    const s = a.snapshot();
    assert.deepEqual(s.running, [{ id: 'j1', bytes: 7, tier: 'memory', priority: 0, runningMs: 250 }]);
    assert.deepEqual(s.queued.map((q) => [q.id, q.position, q.waitingMs]), [['j2', 1, 250], ['j3', 2, 250]]);
    jobs[0]!.release!();
    await settle();
    assert.deepEqual(['j1', 'j2', 'j3'].map((id) => a.queuePosition(id)), [undefined, 0, 1]);
  });

  it('refuses bad budgets, bad bytes and a duplicate id with clear errors', async () => {
    assert.throws(() => new Admission({ dumps: 0, memoryBytes: 1 }), { code: 'ERR_BAD_OPTION' });
    assert.throws(() => new Admission({ dumps: 1, memoryBytes: -1 }), { code: 'ERR_BAD_OPTION' });
    const a = new Admission({ dumps: 1, memoryBytes: 1 });
    await assert.rejects(a.acquire({ bytes: NaN, tier: 'memory' }), { code: 'ERR_BAD_OPTION' });
    const held = await a.acquire({ id: 'same', bytes: 0, tier: 'memory' });
    await assert.rejects(a.acquire({ id: 'same', bytes: 0, tier: 'memory' }), { code: 'ERR_ALREADY_RUNNING' });
    held();
  });

  it('takes its default budgets from the host', () => {
    const b = hostBudgets();
    assert.deepEqual({ dumps: b.dumps, stagger: b.stagger }, policyBudgets(DEFAULT_POLICY), 'the default policy (measured: README)');
    assert.ok(b.memoryBytes > 0, 'MemAvailable less the reserve');
    assert.equal(hostBudgets({ dumps: 3 }).dumps, 3);
  });
});

describe('Admission, staggered', () => {
  /** A fake clock: `tick(ms)` moves it and lets the controller's timers (real ones, of at most that long) fire. */
  function clock() {
    let t = 0;
    return {
      now: () => t,
      async tick(ms: number) {
        t += ms;
        await new Promise((r) => setTimeout(r, ms + 2));
        await settle();
      },
    };
  }
  const req = (id: string, extra: Partial<AdmissionRequest> = {}): AdmissionRequest => ({ id, bytes: 100 * MiB, tier: 'memory', ...extra });
  const budgets = { memoryBytes: 1e12, ...policyBudgets('staggered', 0.5) };

  it('admits the next freeze only once the running one is half-way through its expected hold, at most two at once, in order', async () => {
    const c = clock();
    // 0.2 ms per MiB: a 100 MiB hold is expected to take 20 ms; the stagger point is at 10 ms.
    const a = new Admission(budgets, { now: c.now, msPerByte: 0.2 / MiB });
    const js = ['a', 'b', 'c', 'd'].map((id) => track(a, req(id)));
    await settle();
    assert.deepEqual(js.map((j) => j.admitted), [true, false, false, false], 'the first runs at once');
    await c.tick(6);
    assert.deepEqual(js.map((j) => j.admitted), [true, false, false, false], '6 of 20 ms: not yet');
    await c.tick(6);
    assert.deepEqual(js.map((j) => j.admitted), [true, true, false, false], '12 of 20 ms: the second joins');
    await c.tick(15);
    assert.deepEqual(js.map((j) => j.admitted), [true, true, false, false], 'two at once at most, however far they are');
    js[0]!.release!();
    await settle();
    assert.deepEqual(js.map((j) => j.admitted), [true, true, true, false], 'b is past its half: c joins as a leaves');
    js[1]!.release!();
    await settle();
    assert.deepEqual(js.map((j) => j.admitted), [true, true, true, false], 'c just started: d waits for its half');
    assert.equal(a.queuePosition('d'), 1);
    await c.tick(12);
    assert.equal(js[3]!.admitted, true);
  });

  it('learns the hold time per byte from the releases, starting from the prior', async () => {
    const c = clock();
    const a = new Admission(budgets, { now: c.now });
    assert.equal(a.learnedMsPerByte, PRIOR_MS_PER_BYTE);
    const first = track(a, req('a'));
    await settle();
    // 100 MiB held 40 ms: 0.4 ms/MiB seen, the estimate moves half-way there from 0.6.
    await c.tick(40);
    first.release!();
    assert.ok(Math.abs(a.learnedMsPerByte - 0.5 / MiB) < 1e-12, `learned ${a.learnedMsPerByte * MiB} ms/MiB`);
    // A tiny hold (fixed costs only) teaches nothing.
    const tiny = track(a, req('tiny', { bytes: 1000 }));
    await settle();
    await c.tick(30);
    tiny.release!();
    assert.ok(Math.abs(a.learnedMsPerByte - 0.5 / MiB) < 1e-12);
    // The learned rate sets the next stagger point: 100 MiB × 0.5 ms/MiB × 0.5 = 25 ms.
    const x = track(a, req('x'));
    const y = track(a, req('y'));
    await settle();
    await c.tick(20);
    assert.equal(y.admitted, false, '20 of 50 ms');
    await c.tick(8);
    assert.equal(y.admitted, true, '28 of 50 ms');
    x.release!();
    y.release!();
  });

  it('staggers by the running request\'s own progress when it reports one', async () => {
    const c = clock();
    let pages = 0;
    const a = new Admission(budgets, { now: c.now, msPerByte: 1e-12 });
    const first = track(a, req('a', { progress: () => pages }));
    const second = track(a, req('b'));
    await settle();
    await c.tick(20);
    assert.equal(second.admitted, false, 'by time it would have joined long ago; by its pages it is at 0 %');
    pages = 0.4;
    await c.tick(10);
    assert.equal(second.admitted, false, '40 %');
    pages = 0.55;
    await c.tick(10);
    assert.equal(second.admitted, true, '55 %: past the stagger point');
    first.release!();
    second.release!();
    // A progress() that throws falls back to the time estimate.
    const b = new Admission(budgets, { now: c.now, msPerByte: 0.2 / MiB });
    const broken = track(b, req('p', { progress: () => { throw new Error('unreadable'); } }));
    const next = track(b, req('q'));
    await settle();
    await c.tick(12);
    assert.equal(next.admitted, true);
    broken.release!();
    next.release!();
  });

  it('cancelling the waiting one while staggered removes it; the one behind it takes its place at the stagger point', async () => {
    const c = clock();
    const a = new Admission(budgets, { now: c.now, msPerByte: 0.2 / MiB });
    const run = track(a, req('run'));
    const ac = new AbortController();
    const cancelled = track(a, req('x', { signal: ac.signal }));
    const after = track(a, req('y'));
    await settle();
    ac.abort();
    await settle();
    assert.equal((cancelled.error as FerryError).code, 'ERR_CANCELLED');
    assert.equal(after.admitted, false, 'still before the stagger point');
    assert.equal(a.queuePosition('y'), 1);
    await c.tick(12);
    assert.equal(after.admitted, true);
    run.release!();
    after.release!();
  });

  it('a running freeze that fails before the stagger point lets the next one in at once', async () => {
    const c = clock();
    const a = new Admission(budgets, { now: c.now, msPerByte: 10 / MiB });
    const failing = track(a, req('f'));
    const next = track(a, req('n'));
    await settle();
    await c.tick(5);
    assert.equal(next.admitted, false, '5 of 1000 ms');
    failing.release!(); // its checkpoint failed: the job's finally releases
    await settle();
    assert.equal(next.admitted, true, 'alone now: nothing to stagger against');
    next.release!();
    assert.deepEqual(a.snapshot().inUse, { dumps: 0, memoryBytes: 0, diskBytes: 0 });
  });

  it('refuses a stagger outside (0, 1]', () => {
    for (const stagger of [0, -0.5, 1.5, NaN]) {
      assert.throws(() => new Admission({ dumps: 2, memoryBytes: 1, stagger }), { code: 'ERR_BAD_OPTION' });
    }
    assert.deepEqual(policyBudgets('one'), { dumps: 1, stagger: undefined });
    assert.deepEqual(policyBudgets('two'), { dumps: 2, stagger: undefined });
    assert.deepEqual(policyBudgets('staggered', 0.7), { dumps: 2, stagger: 0.7 });
  });
});
