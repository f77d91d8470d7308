// Host evacuation on the testbed (root, real CRIU, two hosts): two counter workloads on h1
// (test/workloads/counter.py: a count in memory, published to a file 10 times a second) are
// evacuated to h1's disk tier through h1's agent, come back with `host restore` verified and
// counting on from where they were (never from zero), and then all move to h2 with
// `host evacuate --to h2`. Nothing is left running or stored on h1.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PROJECT_ROOT } from '../criu/binary.js';
import { FERRY } from '../testing/ferry-cli.js';
import { testbedDown, testbedUp, type UpResult } from '../testbed/testbed.js';
import type { EvacuateResult, RestoreEvacuationResult } from './evacuate.js';
import { EvacuationManifestSchema } from './evacuation-manifest.js';

const COUNTER = join(PROJECT_ROOT, 'test', 'workloads', 'counter.py');
const PREFIX = 'ferry-evac-';

interface Ran { code: number; stdout: string; stderr: string }

describe('host evacuate / restore on the testbed: every workload to disk and back, then to h2', { timeout: 240_000 }, () => {
  let dir = '';
  let tb: UpResult | undefined;
  const env = () => ({ ...process.env, FERRY_TESTBED_DIR: dir, FERRY_TESTBED_PREFIX: PREFIX });
  const on = (host: string, cmd: string[]): Promise<Ran> => new Promise((resolve) => {
    execFile(FERRY, ['testbed', 'exec', host, '--', ...cmd], { env: env(), timeout: 120_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
  /** Through the host's agent (testbed exec sets FERRY_AGENT), or `local` on the host itself. */
  const ok = async (host: string, cmd: string[], local = false): Promise<string> => {
    const r = await on(host, local ? ['env', 'FERRY_AGENT=', ...cmd] : cmd);
    assert.equal(r.code, 0, `${host}: ${cmd.join(' ')}\n${r.stdout}${r.stderr}`);
    return r.stdout;
  };
  const count = async (file: string) => Number((await readFile(file, 'utf8')).trim());
  const ps = async (host: string) => (JSON.parse(await ok(host, [FERRY, 'ps', '--json'], true)) as { workloads: { name: string; state: string; pid: number }[] }).workloads;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), PREFIX));
    tb = await testbedUp({ dir, prefix: PREFIX, hosts: 2, rate: '1gbit' });
  });
  after(async () => {
    if (tb) await testbedDown({ dir, prefix: PREFIX });
    await rm(dir, { recursive: true, force: true });
  });

  it('to disk: both stop, a manifest names their snapshots; restore brings both back verified, counting on; --to h2 moves both', async (t) => {
    const names = ['c1', 'c2'];
    for (const n of names) await ok('h1', [FERRY, 'run', '--name', n, '--', 'python3', COUNTER, join(dir, n)], true);
    await new Promise((r) => setTimeout(r, 700));

    // --- to disk
    const ev = JSON.parse(await ok('h1', [FERRY, 'host', 'evacuate', '--to-disk', '--json'])) as EvacuateResult;
    assert.equal(ev.ok, true, JSON.stringify(ev));
    assert.deepEqual(ev.workloads.map((w) => [w.target, w.ok]), [['c1', true], ['c2', true]]);
    assert.ok(ev.evacuation);
    const at = Object.fromEntries(await Promise.all(names.map(async (n) => [n, await count(join(dir, n))] as const)));
    await new Promise((r) => setTimeout(r, 500));
    for (const n of names) assert.equal(await count(join(dir, n)), at[n], `${n} is stopped (its count does not move)`);
    assert.deepEqual((await ps('h1')).map((w) => w.state), ['exited', 'exited']);
    // The manifest is in the store's disk side, valid, naming each snapshot.
    const store = tb!.hosts.find((h) => h.name === 'h1')!.store;
    const file = join(store, 'evacuations', `${ev.evacuation}.json`);
    const manifest = EvacuationManifestSchema.parse(JSON.parse(await readFile(file, 'utf8')));
    assert.equal(manifest.state, 'complete');
    assert.deepEqual(manifest.workloads.map((w) => [w.target, w.state, w.snapshot]), ev.workloads.map((w) => [w.target, 'evacuated', w.snapshot]));
    const snaps = JSON.parse(await ok('h1', [FERRY, 'snapshots', 'ls', '--json'], true)) as { snapshots: { id: string; tier: string }[] };
    for (const w of ev.workloads) assert.equal(snaps.snapshots.find((s) => s.id === w.snapshot)?.tier, 'disk');

    // --- restore
    const rs = JSON.parse(await ok('h1', [FERRY, 'host', 'restore', '--json'])) as RestoreEvacuationResult;
    assert.equal(rs.ok, true, JSON.stringify(rs));
    assert.equal(rs.evacuation, ev.evacuation);
    assert.deepEqual(rs.workloads.map((w) => [w.target, w.ok, w.verified]), [['c1', true, true], ['c2', true, true]]);
    await new Promise((r) => setTimeout(r, 500));
    for (const n of names) {
      const c = await count(join(dir, n));
      assert.ok(c > at[n]!, `${n} counts on after the restore (${at[n]} → ${c})`);
      assert.ok(c < at[n]! + 30, `${n} went on from its evacuated count, not from anywhere else (${at[n]} → ${c})`);
    }
    const running = await ps('h1');
    assert.deepEqual(running.map((w) => [w.name, w.state, w.pid]), rs.workloads.map((w) => [w.target, 'running', w.pid]));
    // A second restore restores nothing twice.
    const again = JSON.parse(await ok('h1', [FERRY, 'host', 'restore', '--json'])) as RestoreEvacuationResult;
    assert.deepEqual(again.workloads.map((w) => [w.target, w.already]), [['c1', true], ['c2', true]]);
    t.diagnostic(`to disk ${ev.ms} ms, restore ${rs.ms} ms (2 counters)`);

    // --- to h2
    const before2 = Object.fromEntries(await Promise.all(names.map(async (n) => [n, await count(join(dir, n))] as const)));
    const mv = JSON.parse(await ok('h1', [FERRY, 'host', 'evacuate', '--to', 'h2', '--json'])) as EvacuateResult;
    assert.equal(mv.ok, true, JSON.stringify(mv));
    assert.deepEqual(mv.workloads.map((w) => [w.target, w.ok]), [['c1', true], ['c2', true]]);
    assert.equal(mv.evacuation, null, 'a move to another host writes no manifest');
    const on2 = await ps('h2');
    assert.deepEqual(on2.map((w) => [w.name, w.state, w.pid]), mv.workloads.map((w) => [w.target, 'running', w.destination?.pid]));
    assert.deepEqual((await ps('h1')).filter((w) => w.state === 'running'), [], 'nothing runs on h1 any more');
    await new Promise((r) => setTimeout(r, 500));
    for (const n of names) assert.ok(await count(join(dir, n)) > before2[n]!, `${n} counts on on h2`);
    t.diagnostic(`to h2 ${mv.ms} ms (2 migrations, one at a time)`);
    // An empty host: nothing to do, still ok.
    const none = JSON.parse(await ok('h1', [FERRY, 'host', 'evacuate', '--to-disk', '--json'])) as EvacuateResult;
    assert.deepEqual([none.ok, none.workloads], [true, []]);
    for (const n of names) await ok('h2', [FERRY, 'stop', n], true);
    assert.deepEqual((await readdir(join(store, 'evacuations'))).length, 2);
  });

  it('bad input: both or neither of --to-disk and --to; restore with no manifest', async () => {
    const both = await on('h2', [FERRY, 'host', 'evacuate', '--to-disk', '--to', 'h1']);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /exactly one of --to-disk and --to/);
    const none = await on('h2', [FERRY, 'host', 'restore']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no evacuation manifest/);
    assert.doesNotMatch(none.stderr, /at .*\.js:\d+/, 'no stack trace');
  });
});
