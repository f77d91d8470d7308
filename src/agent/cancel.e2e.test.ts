// Cancellation and failures in the agent's queue, end to end (root, real CRIU): the agent's app
// with the real engine and freeze scheduler, served on a loopback socket, jobs submitted and
// cancelled over HTTP. The test holds the scheduler's one freeze slot itself (a gate), so which
// checkpoints wait is certain, not a race.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createAdaptorServer } from '@hono/node-server';
import { LimitAdmission } from '../engine/admission.js';
import { createEngine } from '../engine/engine.js';
import { Jobs, type Job, type JobEvent } from '../engine/jobs.js';
import { Admission } from '../scheduler/admission.js';
import { ferryOk } from '../testing/ferry-cli.js';
import { isAlive, killQuietly } from '../testing/processes.js';
import { memcheckWorkload, type WorkloadInstance } from '../testing/workloads.js';
import { createAgentApp } from './app.js';
import { AgentClient } from './client.js';

/** Samples /proc/PID/status every few ms: did the process ever stop under ptrace (CRIU's freeze)? */
function watchFrozen(pid: number): { stop(): { samples: number; frozen: number } } {
  let samples = 0;
  let frozen = 0;
  const timer = setInterval(() => {
    try {
      const state = /^State:\s+(\S)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
      samples++;
      if (state === 't' || state === 'T') frozen++;
    } catch { /* gone: the caller checks that */ }
  }, 2);
  return { stop() { clearInterval(timer); return { samples, frozen }; } };
}

async function until<T>(what: string, f: () => Promise<T | undefined> | T | undefined, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('agent: cancelling and failing checkpoints with real CRIU', { timeout: 240_000 }, () => {
  let dir = '';
  let store = '';
  let jobs: Jobs;
  let scheduler: Admission;
  let agent: ReturnType<typeof createAgentApp>;
  let server: Server;
  let client: AgentClient;
  const pids: number[] = [];

  /** A memcheck workload started with `ferry run` in the agent's store; its instance and host pid. */
  async function workload(name: string, mib: number, seed: number): Promise<{ inst: WorkloadInstance; pid: number }> {
    const inst = await memcheckWorkload({ mib, seed }).prepare(join(dir, name));
    const pid = (JSON.parse(await ferryOk(store, ['run', '--name', name, '--json', '--', ...inst.command])) as { pid: number }).pid;
    pids.push(pid);
    await inst.waitReady(60_000);
    return { inst, pid };
  }

  const tmpLeft = async () => (await readdir(join(store, 'snapshots')).catch(() => [] as string[])).filter((n) => n.startsWith('.tmp-'));
  const listed = async () => (await client.snapshots()).map((s) => String(s['id']));

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-agent-cancel-'));
    store = join(dir, 'store');
    const engine = createEngine({ store });
    await engine.store.ensure();
    scheduler = new Admission({ dumps: 1, memoryBytes: 1 << 30 });
    jobs = new Jobs({ engine, admission: new LimitAdmission(8), scheduler });
    agent = createAgentApp({ engine, jobs });
    server = createAdaptorServer({ fetch: agent.app.fetch }) as Server;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    client = new AgentClient({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, timeoutMs: 60_000 });
  });

  after(async () => {
    await jobs.close();
    agent.dispose();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    for (const p of pids) killQuietly(p);
    await rm(dir, { recursive: true, force: true });
  });

  it('while the freeze slot is taken: a cancelled queued checkpoint never freezes its workload; one whose target dies fails; the other then runs', async () => {
    const keep = await workload('keep', 24, 11);
    const cancelMe = await workload('cancel-me', 24, 12);
    const victim = await workload('victim', 8, 13);
    const gate = await scheduler.acquire({ id: 'test-gate', bytes: 0, tier: 'disk' });
    const watch = watchFrozen(cancelMe.pid);
    try {
      const submitted: Job[] = [];
      for (const target of ['keep', 'victim', 'cancel-me']) submitted.push(await client.checkpoint({ target, leaveRunning: true }));
      const [jKeep, jVictim, jCancel] = submitted as [Job, Job, Job];
      // Each CRIU starts and stops at pre-dump, its workload running: queued, in order.
      let last: Job[] = [];
      const places = await until('three checkpoints queued at the freeze gate', async () => {
        const js = await Promise.all(submitted.map((j) => client.job(j.id)));
        last = js;
        return js.every((j) => j.state === 'queued' && j.phases.some((p) => p.name === 'criu')) ? js.map((j) => [j.queuePosition, j.queueLength]) : undefined;
      }, 30_000).catch((err: unknown) => { throw new Error(`${String(err)}: ${JSON.stringify(last)}`); });
      // (In the order their CRIUs reached the gate.)
      assert.deepEqual(places.map(([p]) => p).sort(), [1, 2, 3]);
      assert.ok(places.every(([, n]) => n === 3));

      // Cancel a queued one: it leaves the line; CRIU gave up before freezing anything.
      const d = await client.cancel(jCancel.id);
      assert.equal(d.cancelled, true);
      const cancelled = await client.wait(jCancel.id, undefined, AbortSignal.timeout(60_000));
      assert.equal(cancelled.state, 'cancelled', JSON.stringify(cancelled.error));
      assert.ok(isAlive(cancelMe.pid));
      await cancelMe.inst.verify(cancelMe.pid);

      // The victim dies while it waits: its job fails (the watchdog), its place is given up.
      const events: JobEvent[] = [];
      const following = client.wait(jVictim.id, (e) => events.push(e), AbortSignal.timeout(60_000));
      process.kill(victim.pid, 'SIGKILL');
      const failed = await following;
      assert.equal(failed.state, 'failed');
      assert.equal(failed.error?.code, 'ERR_TARGET_DIED', JSON.stringify(failed.error));
      const states = events.filter((e): e is Extract<JobEvent, { type: 'state' }> => e.type === 'state').map((e) => e.state);
      assert.deepEqual(states.slice(-2), ['queued', 'failed'], 'it failed while it waited, never frozen');
      assert.deepEqual((await client.job(jKeep.id)).queuePosition, 1, 'the one left moved up');
      assert.deepEqual(scheduler.snapshot().queued.map((q) => q.id), [jKeep.id]);

      // The gate opens: the remaining checkpoint runs and succeeds.
      gate();
      const done = await client.wait(jKeep.id, undefined, AbortSignal.timeout(60_000));
      assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
      await keep.inst.verify(keep.pid);
      const seen = watch.stop();
      assert.ok(seen.samples > 50, `sampled ${seen.samples} times`);
      assert.equal(seen.frozen, 0, 'the cancelled checkpoint\'s workload was never frozen');
      await cancelMe.inst.verify(cancelMe.pid);
      assert.deepEqual(await listed(), [String(done.result?.['snapshot'])], 'only the finished checkpoint is listed');
      assert.deepEqual(await tmpLeft(), []);
    } finally {
      watch.stop();
      gate();
    }
  });

  it('cancelled while CRIU dumps (DELETE /v1/jobs/:id): CRIU resumes the workload, which verifies; nothing is listed or left', async () => {
    const big = await workload('big', 200, 21);
    const before = await listed();
    // Not --leave-running: had the cancel come too late, CRIU would have ended the workload.
    const job = await client.checkpoint({ target: 'big' });
    const events: JobEvent[] = [];
    const following = client.wait(job.id, (e) => events.push(e), AbortSignal.timeout(60_000));
    await until('the criu phase', () => events.some((e) => e.type === 'phase' && e.phase === 'criu' && e.state === 'start'));
    // And the pages being written (the tree is frozen now).
    await until('CRIU writing pages', async () => {
      for (const t of await tmpLeft()) {
        const names = (await readdir(join(store, 'snapshots', t)).catch(() => [] as string[])).filter((n) => n.startsWith('pages-'));
        const sizes = await Promise.all(names.map((n) => stat(join(store, 'snapshots', t, n)).then((s) => s.size, () => 0)));
        if (sizes.reduce((a, b) => a + b, 0) > 8 << 20) return true;
      }
      return undefined;
    });
    const d = await client.cancel(job.id);
    assert.equal(d.cancelled, true);
    const done = await following;
    assert.equal(done.state, 'cancelled', JSON.stringify(done.error ?? done.result));
    assert.equal(done.error?.code, 'ERR_INTERRUPTED');
    assert.equal(done.error?.phase, 'criu');
    assert.match(done.error?.message ?? '', /runs on/);
    assert.ok(isAlive(big.pid), 'the workload runs on');
    await big.inst.verify(big.pid);
    assert.deepEqual(await listed(), before, 'no new snapshot');
    assert.deepEqual(await tmpLeft(), [], 'nothing half-written left');
  });
});
