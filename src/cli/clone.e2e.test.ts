// `ferry clone`: copies of a live workload (or a snapshot), each in its own pid namespace, the
// original left running, every copy verifying its memory; refusals before anything is frozen.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { readlinkSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ferryCli, ferryOk, ferryRefused } from '../testing/ferry-cli.js';
import { isAlive, OwnedPids } from '../testing/processes.js';
import { memcheckWorkload, type WorkloadInstance } from '../testing/workloads.js';
import { testbedDown, testbedUp } from '../testbed/testbed.js';
import { FERRY } from '../testing/ferry-cli.js';

const pids = new OwnedPids();
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  pids.killAll();
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

async function tempDir(base: string, prefix: string): Promise<string> {
  const d = await mkdtemp(join(base, `ferry-clone-${prefix}-`));
  cleanups.push(() => rm(d, { recursive: true, force: true }));
  return d;
}

const pidNs = (pid: number): string => readlinkSync(`/proc/${pid}/ns/pid`);
const nsPid = (pid: number): string | undefined => /^NSpid:\s*(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]?.trim().split(/\s+/).at(-1);

interface CloneJson { clones: { pid: number; name: string }[]; snapshot: string; snapshotKept: boolean; source: { kind: string } }

describe('ferry clone (real CRIU, memcheck)', () => {
  it('three clones of a running memcheck: each in its own pid namespace, all four verify, the temporary snapshot is removed', async () => {
    const store = await tempDir(tmpdir(), 'store');
    const env = { FERRY_MEMORY_TIER: await tempDir('/dev/shm', 'mem') };
    const wl: WorkloadInstance = await memcheckWorkload({ mib: 16, seed: 7 }).prepare(await tempDir(tmpdir(), 'wl'));
    cleanups.push(() => wl.cleanup());
    const orig = (JSON.parse(await ferryOk(store, ['run', '--name', 'mc', '--json', '--', ...wl.command], env)) as { pid: number }).pid;
    pids.add(orig);
    await wl.waitReady();
    const r = JSON.parse(await ferryOk(store, ['clone', 'mc', '--count', '3', '--json'], env)) as CloneJson;
    for (const c of r.clones) pids.add(c.pid);
    assert.equal(r.clones.length, 3);
    assert.equal(r.source.kind, 'live');
    assert.equal(r.snapshotKept, false);
    assert.equal(new Set(r.clones.map((c) => c.name)).size, 3, 'three distinct names');
    assert.ok(isAlive(orig), 'the original runs on');
    const namespaces = new Set([orig, ...r.clones.map((c) => c.pid)].map(pidNs));
    assert.equal(namespaces.size, 4, 'four pid namespaces: the original and one per clone');
    for (const c of r.clones) assert.equal(nsPid(c.pid), '1', `clone ${c.name} is pid 1 of its namespace`);
    // Every copy checks every byte of its 16 MiB against its own version bookkeeping.
    for (const pid of [orig, ...r.clones.map((c) => c.pid)]) assert.match(await wl.verify(pid), /bad_pages=0/);
    // ps lists the clones as running workloads; the snapshot taken for them is gone.
    const ps = (JSON.parse(await ferryOk(store, ['ps', '--json'], env)) as { workloads: { name: string; state: string; pid: number }[] }).workloads;
    for (const c of r.clones) assert.deepEqual(ps.filter((w) => w.name === c.name).map((w) => [w.state, w.pid]), [['running', c.pid]]);
    const snaps = JSON.parse(await ferryOk(store, ['snapshots', 'ls', '--json'], env)) as { snapshots: unknown[] };
    assert.equal(snaps.snapshots.length, 0, 'the temporary snapshot was removed');
    // A clone is a workload like any other: stop ends it, the others run on.
    const first = r.clones[0]!;
    await ferryOk(store, ['stop', first.name, '--timeout', '0'], env);
    assert.ok(!isAlive(first.pid) || readFileSync(`/proc/${first.pid}/stat`, 'utf8').includes(') Z'));
    for (const pid of [orig, r.clones[1]!.pid]) assert.match(await wl.verify(pid), /bad_pages=0/);

    // From a snapshot of the store: kept, and a clone of it verifies too.
    const snap = (JSON.parse(await ferryOk(store, ['checkpoint', 'mc', '--leave-running', '--tier', 'memory', '--json'], env)) as { snapshot: string }).snapshot;
    const fromSnap = JSON.parse(await ferryOk(store, ['clone', snap, '--json'], env)) as CloneJson;
    for (const c of fromSnap.clones) pids.add(c.pid);
    assert.equal(fromSnap.source.kind, 'snapshot');
    assert.equal(fromSnap.snapshotKept, true);
    assert.equal(fromSnap.clones.length, 1);
    assert.match(await wl.verify(fromSnap.clones[0]!.pid), /bad_pages=0/);
    assert.ok(isAlive(orig));
  });

  it('refusals: a process in the host pid namespace (not frozen), an unknown source, a bad count, --to', async () => {
    const store = await tempDir(tmpdir(), 'store');
    const env = { FERRY_MEMORY_TIER: await tempDir('/dev/shm', 'mem') };
    // detached: its own session (a session leader, as checkpoints want), in the host pid namespace.
    const sleeper = spawn('sleep', ['60'], { stdio: 'ignore', detached: true });
    await new Promise((r) => sleeper.once('spawn', r));
    pids.add(sleeper.pid!);
    const refused = await ferryRefused(store, ['clone', String(sleeper.pid), '--count', '2'], /is not pid 1 of its own pid namespace/, env);
    assert.match(refused.stderr, /hint: start the program with `ferry run`/);
    assert.ok(isAlive(sleeper.pid!), 'the process runs on');
    assert.ok(!readFileSync(`/proc/${sleeper.pid}/status`, 'utf8').includes('State:\tT'), 'never frozen');
    assert.deepEqual(await readdir(env.FERRY_MEMORY_TIER), [], 'nothing was written');
    const j = await ferryCli(store, ['clone', String(sleeper.pid), '--json'], env);
    assert.equal(j.code, 1);
    assert.equal((JSON.parse(j.stdout) as { error: { code: string } }).error.code, 'ERR_NO_PID_NAMESPACE');
    await ferryRefused(store, ['clone', 'no-such-thing'], /no snapshot, pid or workload named 'no-such-thing'/, env);
    const bad = await ferryCli(store, ['clone', 'x', '--count', '0'], env);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--count must be a positive integer/);
    await ferryRefused(store, ['clone', 'x', '--to', 'no-such-host'], /testbed|no-such-host/, { ...env, FERRY_TESTBED_DIR: join(store, 'no-testbed') });
  });

  it('--to h2 on a testbed: two copies restored on another host (its store, its agent), the original runs on h1, all verify', { timeout: 180_000 }, async () => {
    const dir = await tempDir(tmpdir(), 'tb');
    const prefix = 'ferry-warm-';
    const tbEnv = { ...process.env, FERRY_TESTBED_DIR: dir, FERRY_TESTBED_PREFIX: prefix };
    await testbedUp({ dir, prefix, hosts: 2 });
    cleanups.push(() => testbedDown({ dir, prefix }).then(() => undefined));
    // On a host, with its own store; FERRY_AGENT cleared: these are this host's verbs.
    const on = (host: string, cmd: string[]): Promise<{ code: number; stdout: string; stderr: string }> => new Promise((resolve) => {
      execFile(FERRY, ['testbed', 'exec', host, '--', 'env', 'FERRY_AGENT=', FERRY, ...cmd], { env: tbEnv, timeout: 120_000, maxBuffer: 16 << 20 },
        (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
    });
    const wl = await memcheckWorkload({ mib: 16, seed: 9 }).prepare(await tempDir(tmpdir(), 'wl'));
    cleanups.push(() => wl.cleanup());
    const started = await on('h1', ['run', '--name', 'mc', '--json', '--', ...wl.command]);
    assert.equal(started.code, 0, started.stderr);
    const orig = (JSON.parse(started.stdout) as { pid: number }).pid;
    pids.add(orig);
    await wl.waitReady();
    const c = await on('h1', ['clone', 'mc', '--count', '2', '--to', 'h2', '--json']);
    assert.equal(c.code, 0, c.stdout + c.stderr);
    const r = JSON.parse(c.stdout) as CloneJson & { host: string };
    for (const x of r.clones) pids.add(x.pid);
    assert.equal(r.host, 'h2');
    assert.equal(r.clones.length, 2);
    assert.equal(r.snapshotKept, false);
    assert.ok(isAlive(orig), 'the original runs on h1');
    // The copies are h2's workloads (its store), each pid 1 of its own pid namespace.
    const ps2 = JSON.parse((await on('h2', ['ps', '--json'])).stdout) as { workloads: { name: string; state: string; pid: number }[] };
    for (const x of r.clones) {
      assert.deepEqual(ps2.workloads.filter((w) => w.name === x.name).map((w) => [w.state, w.pid]), [['running', x.pid]]);
      assert.equal(nsPid(x.pid), '1');
    }
    assert.notEqual(readlinkSync(`/proc/${r.clones[0]!.pid}/ns/net`), readlinkSync(`/proc/${orig}/ns/net`), 'a copy lives in h2\'s network namespace, not h1\'s');
    assert.equal(new Set([orig, ...r.clones.map((x) => x.pid)].map(pidNs)).size, 3);
    for (const pid of [orig, ...r.clones.map((x) => x.pid)]) assert.match(await wl.verify(pid), /bad_pages=0/);
    // Neither host keeps a snapshot: h1's temporary one was removed, h2's received ones after each commit.
    for (const h of ['h1', 'h2']) {
      const ls = JSON.parse((await on(h, ['snapshots', 'ls', '--json'])).stdout) as { snapshots: unknown[] };
      assert.equal(ls.snapshots.length, 0, `no snapshot left on ${h}`);
    }
  });
});
