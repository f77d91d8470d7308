// Host evacuation on the testbed (root, real CRIU, two hosts): two counter workloads on h1
// (test/workloads/counter.py: a count in memory, published to a file 10 times a second) are
// evacuated to h1's disk tier through h1's agent, come back with `host restore` verified and
// counting on from where they were (never from zero), and then all move to h2 with
// `host evacuate --to h2`. Nothing is left running or stored on h1.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PROJECT_ROOT } from '../criu/binary.js';
import { FERRY } from '../testing/ferry-cli.js';
import { makeBundle, removeContainer, startContainer, state, stateOrUndefined } from '../testing/containers.js';
import { hostRuntimeEnv } from '../testbed/state.js';
import { testbedDown, testbedUp, type UpResult } from '../testbed/testbed.js';
import type { EvacuateResult, RestoreEvacuationResult } from './evacuate.js';
import { EvacuationManifestSchema } from './evacuation-manifest.js';

const COUNTER = join(PROJECT_ROOT, 'test', 'workloads', 'counter.py');
const PREFIX = 'ferry-evac-';

interface Ran { code: number; stdout: string; stderr: string }

describe('host evacuate / restore on the testbed: every workload and container to disk and back, then to h2', { timeout: 240_000 }, () => {
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
  const cid = `ferry-evac-${process.pid}`;
  const crunRoot = (host: string) => hostRuntimeEnv(dir, host).FERRY_CRUN_ROOT;
  after(async () => {
    for (const h of ['h1', 'h2']) await removeContainer('crun', cid, crunRoot(h)).catch(() => undefined);
    if (tb) await testbedDown({ dir, prefix: PREFIX });
    // The container's cgroup (crun's default, /<id>): a dump that ends the container leaves it, empty.
    for (const c of await readdir('/sys/fs/cgroup').catch(() => [] as string[])) await rmdir(join('/sys/fs/cgroup', c, cid)).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  it('to disk: all stop, a manifest names their snapshots; restore brings all back verified, counting on; --to h2 moves all', async (t) => {
    const names = ['c1', 'c2'];
    for (const n of names) await ok('h1', [FERRY, 'run', '--name', n, '--', 'python3', COUNTER, join(dir, n)], true);
    // A crun container in h1's own runtime state directory: a busybox counter in its bind-mounted /data.
    const data = join(dir, 'c-data');
    const loop = ['/bin/sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /data/c.tmp; mv /data/c.tmp /data/counter; sleep 0.05; done'];
    await startContainer('crun', cid, await makeBundle('busybox', join(dir, 'c-bundle'), data, loop), join(dir, 'c-logs'), crunRoot('h1'));
    const boxFile = join(data, 'counter');
    // A server bound to its own service address: it can only come back once the address does.
    const ip = tb!.subnet.replace(/\.0\/\d+$/, '.120');
    await ok('h1', [FERRY, 'run', '--name', 'web', '--ip', ip, '--', 'python3', '-m', 'http.server', '--bind', ip, '8080', '--directory', dir], true);
    const get = async (from: string) => {
      for (let i = 0; ; i++) {
        const r = await on(from, ['python3', '-c', `import urllib.request; print(urllib.request.urlopen('http://${ip}:8080/', timeout=2).status)`]);
        if (r.code === 0 || i >= 30) return r.stdout.trim();
        await new Promise((res) => setTimeout(res, 100));
      }
    };
    const hasIp = async (host: string) => (await ok(host, ['ip', '-4', '-o', 'addr', 'show'])).includes(` ${ip}/`);
    assert.equal(await get('h2'), '200');
    await new Promise((r) => setTimeout(r, 500));
    const targets = ['c1', 'c2', `container:${cid}`, 'web'].sort();

    // --- to disk
    const ev = JSON.parse(await ok('h1', [FERRY, 'host', 'evacuate', '--to-disk', '--json'])) as EvacuateResult;
    assert.equal(ev.ok, true, JSON.stringify(ev));
    assert.deepEqual(ev.workloads.map((w) => [w.target, w.ok]), targets.map((x) => [x, true]));
    assert.ok(ev.evacuation);
    const at = Object.fromEntries(await Promise.all(names.map(async (n) => [n, await count(join(dir, n))] as const)));
    const boxAt = await count(boxFile);
    await new Promise((r) => setTimeout(r, 500));
    for (const n of names) assert.equal(await count(join(dir, n)), at[n], `${n} is stopped (its count does not move)`);
    assert.equal(await count(boxFile), boxAt, 'the container is stopped');
    assert.equal((await stateOrUndefined('crun', cid, crunRoot('h1')))?.status ?? 'gone', 'gone', 'the container is gone from crun');
    assert.deepEqual((await ps('h1')).map((w) => w.state), ['exited', 'exited', 'exited']);
    assert.equal(await hasIp('h1'), false, 'the service address left with its workload');
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
    assert.deepEqual(rs.workloads.map((w) => [w.target, w.ok, w.verified]).sort(), targets.map((x) => [x, true, true]));
    await new Promise((r) => setTimeout(r, 500));
    for (const n of names) {
      const c = await count(join(dir, n));
      assert.ok(c > at[n]!, `${n} counts on after the restore (${at[n]} → ${c})`);
      assert.ok(c < at[n]! + 30, `${n} went on from its evacuated count, not from anywhere else (${at[n]} → ${c})`);
    }
    assert.equal(await hasIp('h1'), true, 'the service address is back');
    assert.equal(await get('h2'), '200', 'the server answers on its address again, from another host');
    assert.equal((await ps('h1')).find((w) => w.name === 'web')?.state, 'running');
    const box = await count(boxFile);
    assert.ok(box > boxAt && box < boxAt + 60, `the container counts on from its count (${boxAt} → ${box})`);
    const running = await ps('h1');
    assert.deepEqual(running.map((w) => [w.name, w.state, w.pid]), rs.workloads.filter((w) => w.kind === 'process').map((w) => [w.target, 'running', w.pid]));
    const cst = await state('crun', cid, crunRoot('h1'));
    assert.deepEqual([cst.status, cst.pid], ['running', rs.workloads.find((w) => w.kind === 'container')?.pid]);
    // A second restore restores nothing twice.
    const again = JSON.parse(await ok('h1', [FERRY, 'host', 'restore', '--json'])) as RestoreEvacuationResult;
    assert.deepEqual(again.workloads.map((w) => [w.target, w.already]).sort(), targets.map((x) => [x, true]));
    t.diagnostic(`to disk ${ev.ms} ms, restore ${rs.ms} ms (2 counters, an http server on its service address, 1 crun container)`);

    // --- to h2
    const before2 = Object.fromEntries(await Promise.all(names.map(async (n) => [n, await count(join(dir, n))] as const)));
    const mv = JSON.parse(await ok('h1', [FERRY, 'host', 'evacuate', '--to', 'h2', '--json'])) as EvacuateResult;
    assert.equal(mv.ok, true, JSON.stringify(mv));
    assert.deepEqual(mv.workloads.map((w) => [w.target, w.ok]), targets.map((x) => [x, true]));
    assert.equal(mv.evacuation, null, 'a move to another host writes no manifest');
    const on2 = await ps('h2');
    assert.deepEqual(on2.map((w) => [w.name, w.state, w.pid]), mv.workloads.filter((w) => w.kind === 'process').map((w) => [w.target, 'running', w.destination?.pid]));
    assert.deepEqual((await ps('h1')).filter((w) => w.state === 'running'), [], 'nothing runs on h1 any more');
    assert.equal(await stateOrUndefined('crun', cid, crunRoot('h1')), undefined, 'the container is gone from h1');
    assert.equal((await state('crun', cid, crunRoot('h2'))).status, 'running', 'and runs on h2');
    const boxBefore = await count(boxFile);
    await new Promise((r) => setTimeout(r, 500));
    for (const n of names) assert.ok(await count(join(dir, n)) > before2[n]!, `${n} counts on on h2`);
    assert.ok(await count(boxFile) > boxBefore, 'the container counts on on h2');
    assert.deepEqual([await hasIp('h1'), await hasIp('h2')], [false, true], 'the address moved with its server');
    assert.equal(await get('h1'), '200', 'which answers on h2');
    t.diagnostic(`to h2 ${mv.ms} ms (4 migrations, one at a time)`);
    await removeContainer('crun', cid, crunRoot('h2'));
    // An empty host: nothing to do, still ok.
    const none = JSON.parse(await ok('h1', [FERRY, 'host', 'evacuate', '--to-disk', '--json'])) as EvacuateResult;
    assert.deepEqual([none.ok, none.workloads], [true, []]);
    for (const n of [...names, 'web']) await ok('h2', [FERRY, 'stop', n], true);
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
