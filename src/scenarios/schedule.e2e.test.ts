// Periodic snapshots with a standby, and failover (root, real CRIU):
// - on the testbed: a counter workload on h1 (test/workloads/counter.py: counts in memory, 10 a
//   second, published to a file) scheduled every 2 s by h1's agent and replicated to h2; the
//   workload is killed on h1; `ferry failover` on h2 brings it back having lost at most one
//   interval (plus the replication's own time) of counting;
// - an agent restarted on the same store finds its schedule and goes on with it.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentClient } from '../agent/client.js';
import { startAgent } from '../agent/server.js';
import { PROJECT_ROOT } from '../criu/binary.js';
import { FERRY, ferryCli, ferryOk } from '../testing/ferry-cli.js';
import { testbedDown, testbedUp, type UpResult } from '../testbed/testbed.js';
import type { FailoverResult } from './failover.js';
import type { ScheduleView } from './schedules.js';

const COUNTER = join(PROJECT_ROOT, 'test', 'workloads', 'counter.py');
const PREFIX = 'ferry-sched-';
const EVERY_MS = 2000;

interface Ran { code: number; stdout: string; stderr: string }
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('ferry schedule --replicate-to h2, the workload killed on h1, ferry failover on h2', { timeout: 240_000 }, () => {
  let dir = '';
  let tb: UpResult | undefined;
  const env = () => ({ ...process.env, FERRY_TESTBED_DIR: dir, FERRY_TESTBED_PREFIX: PREFIX });
  const on = (host: string, cmd: string[]): Promise<Ran> => new Promise((resolve) => {
    execFile(FERRY, ['testbed', 'exec', host, '--', ...cmd], { env: env(), timeout: 120_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
  const ok = async (host: string, cmd: string[], local = false): Promise<string> => {
    const r = await on(host, local ? ['env', 'FERRY_AGENT=', ...cmd] : cmd);
    assert.equal(r.code, 0, `${host}: ${cmd.join(' ')}\n${r.stdout}${r.stderr}`);
    return r.stdout;
  };
  const count = async (file: string) => Number((await readFile(file, 'utf8')).trim());
  const snapshotsOf = async (host: string, workload: string) => (JSON.parse(await ok(host, [FERRY, 'snapshots', 'ls', '--json'], true)) as { snapshots: { id: string; workload: string | null }[] }).snapshots.filter((s) => s.workload === workload);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), PREFIX));
    tb = await testbedUp({ dir, prefix: PREFIX, hosts: 2, rate: '1gbit' });
  });
  after(async () => {
    if (tb) await testbedDown({ dir, prefix: PREFIX });
    await rm(dir, { recursive: true, force: true });
  });

  it('loses at most one interval of counting; retention on both hosts; the gauges in /metrics', async (t) => {
    const file = join(dir, 'cnt');
    const run = JSON.parse(await ok('h1', [FERRY, 'run', '--name', 'cnt', '--json', '--', 'python3', COUNTER, file], true)) as { pid: number };
    await sleep(300);
    const added = JSON.parse(await ok('h1', [FERRY, 'schedule', 'cnt', '--every', `${EVERY_MS}ms`, '--keep', '2', '--replicate-to', 'h2', '--json'])) as { schedule: ScheduleView };
    const id = added.schedule.id;
    assert.match(id, /^s-[0-9a-f]{12}$/);
    assert.ok(added.schedule.lastSnapshot, 'the first snapshot is taken before the answer');
    await sleep(EVERY_MS * 3 + 500);

    const ls = (JSON.parse(await ok('h1', [FERRY, 'schedule', 'ls', '--json'])) as { schedules: ScheduleView[] }).schedules;
    assert.equal(ls.length, 1);
    const s = ls[0]!;
    assert.ok(s.runs >= 3, `ran every ${EVERY_MS} ms (${s.runs} runs)`);
    assert.equal(s.failures, 0, JSON.stringify(s.lastError));
    assert.equal(s.replicationFailures, 0, JSON.stringify(s.lastReplicationError));
    assert.ok(s.replicationLagSeconds !== null && s.replicationLagSeconds < (EVERY_MS * 2) / 1000, `lag ${s.replicationLagSeconds} s`);
    // Retention: 2 of the schedule's snapshots here, 2 replicas there (a run in flight may add one for a moment).
    assert.ok((await snapshotsOf('h1', 'cnt')).length <= 3);
    assert.ok((await snapshotsOf('h2', 'cnt')).length <= 3);
    const replicas = await snapshotsOf('h2', 'cnt');
    assert.ok(replicas.length >= 1);
    // The gauges.
    const h1 = tb!.hosts.find((h) => h.name === 'h1')!;
    const metrics = await ok('h1', ['node', '-e', `fetch(process.env.FERRY_AGENT + '/metrics', { headers: { authorization: 'Bearer ' + process.env.FERRY_TOKEN } }).then((r) => r.text()).then((t) => process.stdout.write(t))`]);
    for (const g of ['ferry_schedule_interval_seconds', 'ferry_schedule_last_snapshot_age_seconds', 'ferry_schedule_replication_lag_seconds']) {
      assert.match(metrics, new RegExp(`^${g}\\{schedule="${id}",target="cnt"\\} [0-9.e-]+$`, 'm'), `${g} in ${h1.agent}/metrics`);
    }
    assert.match(metrics, new RegExp(`^ferry_schedule_interval_seconds\\{schedule="${id}",target="cnt"\\} 2$`, 'm'));

    // The source host's workload dies (SIGKILL to its namespace's init: the whole tree goes), at a
    // random point of the interval (the steps above take about a whole number of intervals).
    await sleep(Math.floor(Math.random() * EVERY_MS));
    process.kill(run.pid, 'SIGKILL');
    await sleep(300);
    const killedAt = Date.now();
    const atKill = await count(file);
    // It is gone on h1: nothing counts any more (so whatever counts next is the restored copy).
    await sleep(300);
    assert.equal(await count(file), atKill, 'the killed workload does not count on');
    const ps1 = (JSON.parse(await ok('h1', [FERRY, 'ps', '--json'], true)) as { workloads: { name: string; state: string }[] }).workloads;
    assert.deepEqual(ps1.map((w) => [w.name, w.state]), [['cnt', 'exited']]);
    // The newest replica's delay from snapshot to confirmation: how late a replica can be beside the interval.
    const state = (JSON.parse(await ok('h1', [FERRY, 'schedule', 'ls', '--json'])) as { schedules: ScheduleView[] }).schedules[0]!;
    const sendMs = Math.max(...state.replicas.map((r) => Date.parse(r.sentAt) - Date.parse(r.takenAt)));

    // The restored copy counts on before the failover command returns: watch for its first count
    // from before the command starts, or a later count would be taken for it.
    let first = atKill;
    let watching = true;
    const watcher = (async () => {
      while (watching && first === atKill) {
        await sleep(5);
        const c = await count(file);
        if (c !== atKill) first = c;
      }
    })();
    const f = await on('h2', [FERRY, 'failover', 'cnt', '--from', 'h1', '--json']);
    assert.equal(f.code, 0, f.stdout + f.stderr);
    const fr = JSON.parse(f.stdout) as FailoverResult;
    assert.equal(fr.workload, 'cnt');
    assert.equal(fr.from.url, h1.agent, 'the replica came from h1\'s agent');
    assert.deepEqual(fr.skipped, []);
    // The restored counter's first count: one more than its count at the snapshot.
    const deadline = Date.now() + 5000;
    while (first === atKill && Date.now() < deadline) await sleep(10);
    watching = false;
    await watcher;
    assert.notEqual(first, atKill, 'the restored counter writes again');
    const lost = atKill - (first - 1);
    const allowed = Math.ceil(((EVERY_MS + sendMs) / 1000) * 10) + 2;
    assert.ok(lost >= 0 && lost <= allowed, `lost ${lost} counts (≤ ${allowed}: one interval of ${EVERY_MS} ms plus the replication's ${sendMs} ms, at 10 counts a second)`);
    assert.ok(first > 10, 'it went on from its replica, not from zero');
    assert.ok(fr.replicaAgeMs - (Date.now() - killedAt) <= EVERY_MS + sendMs + 500, `the replica was at most one interval old at the kill (${fr.replicaAgeMs} ms at the failover)`);
    t.diagnostic(`failover: lost ${lost} counts (${(lost / 10).toFixed(1)} s of state; interval ${EVERY_MS} ms, replication ${sendMs} ms), replica age at failover ${fr.replicaAgeMs} ms, restore ${fr.restoreMs} ms`);
    const ps2 = (JSON.parse(await ok('h2', [FERRY, 'ps', '--json'], true)) as { workloads: { name: string; state: string; pid: number }[] }).workloads;
    assert.deepEqual(ps2.map((w) => [w.name, w.state, w.pid]), [['cnt', 'running', fr.pid]]);
    await sleep(300);
    assert.ok(await count(file) > first, 'it counts on on h2');

    // The schedule on h1 goes on and fails (its workload is gone), counted, without harm; rm stops it.
    const rmd = JSON.parse(await ok('h1', [FERRY, 'schedule', 'rm', id, '--json'])) as { removed: string };
    assert.equal(rmd.removed, id);
    assert.deepEqual((JSON.parse(await ok('h1', [FERRY, 'schedule', 'ls', '--json'])) as { schedules: unknown[] }).schedules, []);
    await ok('h2', [FERRY, 'stop', 'cnt'], true);
  });

  it('refuses a target that does not run, an unknown schedule, a failover with no replica; schedule needs an agent', async () => {
    const no = await on('h1', [FERRY, 'schedule', 'nosuch', '--every', '2s']);
    assert.equal(no.code, 1, no.stderr);
    assert.match(no.stderr, /cannot schedule nosuch/);
    const rm1 = await on('h1', [FERRY, 'schedule', 'rm', 's-000000000000']);
    assert.equal(rm1.code, 1);
    assert.match(rm1.stderr, /no schedule 's-000000000000'/);
    const fo = await on('h2', [FERRY, 'failover', 'nosuch']);
    assert.equal(fo.code, 1);
    assert.match(fo.stderr, /no complete replica of 'nosuch'/);
    const local = await on('h1', ['env', 'FERRY_AGENT=', FERRY, 'schedule', 'ls']);
    assert.equal(local.code, 2);
    assert.match(local.stderr, /needs an agent/);
  });
});

describe('an agent restarted on the same store resumes its schedule', { timeout: 60_000 }, () => {
  let store = '';
  before(async () => { store = await mkdtemp(join(tmpdir(), 'ferry-sched-store-')); });
  after(async () => {
    await ferryCli(store, ['stop', 'cnt2']);
    const storeId = (JSON.parse(await readFile(join(store, 'store.json'), 'utf8').catch(() => '{}')) as { id?: string }).id;
    if (storeId) await rm(join('/dev/shm/ferry', storeId), { recursive: true, force: true });
    await rm(store, { recursive: true, force: true });
  });

  it('keeps its id, its snapshots and retention, and runs on', async () => {
    await ferryOk(store, ['run', '--name', 'cnt2', '--', 'python3', COUNTER, join(store, 'cnt2.count')]);
    let agent = await startAgent({ listen: { host: '127.0.0.1', port: 0 }, store, logFile: join(store, 'agent.log') });
    let client = new AgentClient({ url: agent.url });
    const { schedule } = await client.request<{ schedule: ScheduleView }>('POST', '/v1/schedules', { target: 'cnt2', everyMs: 1000, keep: 2 });
    await sleep(2300);
    const before1 = (await client.request<{ schedules: ScheduleView[] }>('GET', '/v1/schedules')).schedules[0]!;
    await agent.close();
    assert.deepEqual(await readdir(join(store, 'schedules')), [`${schedule.id}.json`]);

    agent = await startAgent({ listen: { host: '127.0.0.1', port: 0 }, store, logFile: join(store, 'agent.log') });
    client = new AgentClient({ url: agent.url });
    try {
      await sleep(2300);
      const s = (await client.request<{ schedules: ScheduleView[] }>('GET', '/v1/schedules')).schedules;
      assert.deepEqual(s.map((x) => x.id), [schedule.id]);
      assert.ok(s[0]!.runs >= before1.runs + 2, `it ran on (${before1.runs} → ${s[0]!.runs} runs)`);
      assert.equal(s[0]!.failures, 0, JSON.stringify(s[0]!.lastError));
      // (Removing it waits for a run in progress: then the store and its record hold still.)
      const { schedule: last } = await client.request<{ schedule: ScheduleView }>('DELETE', `/v1/schedules/${schedule.id}`);
      assert.deepEqual(await readdir(join(store, 'schedules')), []);
      const ls = JSON.parse(await ferryOk(store, ['snapshots', 'ls', '--json'])) as { snapshots: { id: string }[] };
      assert.deepEqual(ls.snapshots.map((x) => x.id).sort(), last.snapshots.map((x) => x.id).sort(), 'retention goes on across the restart: only its newest 2 remain');
      assert.equal(ls.snapshots.length, 2);
    } finally {
      await agent.close();
    }
  });
});
