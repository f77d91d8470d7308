// The scheduler's gate on real CRIU: a checkpoint whose CRIU waits at its pre-dump notification
// for an admission slot keeps its workload running (not frozen) while it waits, and CRIU's frozen
// time does not include the wait; cancelling the request while it waits there fails the
// checkpoint, and the workload runs on and verifies itself. (Root; run under the CRIU lock.)
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { checkpoint } from '../engine/checkpoint.js';
import { Admission, type Release } from '../scheduler/admission.js';
import { Store } from '../store/store.js';
import { Live } from './harness.js';

const state = (pid: number): string => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.charAt(0);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('scheduler gate at pre-dump (real CRIU)', () => {
  let dir: string;
  let store: Store;
  const live = new Live();
  before(async () => {
    dir = await mkdtemp('/dev/shm/ferry-test-gate-');
    store = new Store({ root: join(dir, 'store'), memoryDir: join(dir, 'memory') });
    await store.ensure('memory');
  });
  after(async () => {
    live.killAll();
    await rm(dir, { recursive: true, force: true });
  });

  it('a checkpoint waiting for its slot is not frozen while it waits, and its frozen time leaves the wait out', { timeout: 60_000 }, async () => {
    const { inst, run } = await live.memcheck(dir, 32);
    const admission = new Admission({ dumps: 1, memoryBytes: 1e12 });
    const holder = await admission.acquire({ id: 'other', bytes: 0, tier: 'memory' });
    let release: Release = () => undefined;
    let waiting = false;
    const t0 = performance.now();
    const job = checkpoint(store, {
      target: run.rootPid, tier: 'memory',
      beforeFreeze: async () => { waiting = true; release = await admission.acquire({ id: 'job', bytes: 32 << 20, tier: 'memory' }); },
      afterFreeze: () => release(),
    });
    for (let i = 0; i < 200 && !waiting; i++) await sleep(10);
    assert.ok(waiting, 'CRIU reached pre-dump');
    assert.equal(admission.queuePosition('job'), 1);
    const states = new Set<string>();
    for (let i = 0; i < 10; i++) { states.add(state(run.rootPid)); await sleep(50); }
    assert.ok(!states.has('t') && !states.has('T'), `the tree ran while it waited (states seen: ${[...states].join('')})`);
    holder();
    const result = await job;
    const waitedMs = performance.now() - t0;
    const frozenMs = result.manifest.stats!.frozen_time / 1000;
    assert.ok(waitedMs >= 500, `the checkpoint took ${waitedMs.toFixed(0)} ms, waiting included`);
    assert.ok(frozenMs < 400, `frozen ${frozenMs.toFixed(0)} ms: the ≥ 500 ms wait is not in it`);
    await live.gone(run);
    await store.remove(result.snapshot);
    await inst.cleanup();
  });

  it('cancelling a request waiting at pre-dump fails the checkpoint; the workload runs on and verifies', { timeout: 60_000 }, async () => {
    const { inst, run } = await live.memcheck(dir, 32);
    const admission = new Admission({ dumps: 1, memoryBytes: 1e12 });
    const holder = await admission.acquire({ id: 'other', bytes: 0, tier: 'memory' });
    const ac = new AbortController();
    let waiting = false;
    const job = checkpoint(store, {
      target: run.rootPid, tier: 'memory',
      beforeFreeze: async () => { waiting = true; await admission.acquire({ id: 'job', bytes: 0, tier: 'memory', signal: ac.signal }); },
    });
    for (let i = 0; i < 200 && !waiting; i++) await sleep(10);
    assert.ok(waiting, 'CRIU reached pre-dump');
    ac.abort();
    await assert.rejects(job, (err: unknown) => {
      // CRIU was told to stop at pre-dump: its failure carries the handler's error, which carries the cancellation.
      const codes: unknown[] = [];
      for (let e = err as { code?: unknown; cause?: unknown } | undefined; e; e = e.cause as typeof e) codes.push(e.code);
      assert.ok(codes.includes('ERR_CANCELLED'), `error chain: ${codes.join(' → ')}`);
      return true;
    });
    holder();
    assert.equal(admission.snapshot().queued.length, 0);
    assert.match(await inst.verify(run.rootPid), /progress=/, 'its own check passed (it throws otherwise)');
    assert.deepEqual((await store.list()).length, 0, 'no snapshot was kept');
    await live.kill(run);
    await inst.cleanup();
  });
});
