// Containers through the CLI, as a user runs it: runc and crun containers built from Debian
// packages (scripts/build-bundles.sh), checkpointed into ferry's store and restored under a new
// id; the clone of a container left running; refusals that leave the container running.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PROJECT_ROOT } from '../criu/binary.js';
import {
  containerRedis, containerTestsBlocked, makeBundle, removeContainer, startContainer, state, stateOrUndefined, type TestRuntime,
} from '../testing/containers.js';
import { waitFor } from '../testing/processes.js';

const FERRY = join(PROJECT_ROOT, 'bin', 'ferry');
interface Ran { code: number; stdout: string; stderr: string }

let base: string;
let store: string;
const started: [TestRuntime, string][] = [];
const tag = Math.random().toString(36).slice(2, 8);
const cid = (name: string): string => `ferry-${name}-${tag}`;

function ferry(args: string[]): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(FERRY, ['--store', store, ...args], { timeout: 120_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}
async function ok(args: string[]): Promise<string> {
  const r = await ferry(args);
  assert.equal(r.code, 0, `ferry ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}
function track(runtime: TestRuntime, id: string): string {
  started.push([runtime, id]);
  return id;
}
const counterIn = (dataDir: string): number => Number(existsSync(join(dataDir, 'counter')) ? readFileSync(join(dataDir, 'counter'), 'utf8').trim() : 0);

const blocked = containerTestsBlocked();

describe('containers (runc, crun)', { skip: blocked }, () => {
  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-containers-'));
    store = join(base, 'store');
  });
  after(async () => {
    for (const [rt, id] of started) await removeContainer(rt, id);
    await rm(base, { recursive: true, force: true });
  });

  for (const runtime of ['runc', 'crun'] as const) {
    it(`${runtime}: redis-server with 1000 keys → checkpoint → restore under a new id → every key and its run_id verified`, async () => {
      const id = track(runtime, cid(`redis-${runtime}`));
      const data = join(base, `${id}-data`);
      const bundle = await makeBundle('redis', join(base, `${id}-bundle`), data);
      await startContainer(runtime, id, bundle, join(base, `${id}-logs`));
      const redis = containerRedis(data);
      await redis.load();
      await redis.verify();

      const out = JSON.parse(await ok(['checkpoint', `container:${id}`, '--runtime', runtime, '--json'])) as { snapshot: string; container: { runtime: string; driver: string } };
      assert.equal(out.container.runtime, runtime);
      assert.equal(await stateOrUndefined(runtime, id), undefined, 'a checkpoint without --leave-running removes the container');

      const clone = track(runtime, cid(`redis-${runtime}-2`));
      const r = JSON.parse(await ok(['restore', out.snapshot, '--as', `container:${clone}`, '--json'])) as { container: string; pid: number; runtime: string };
      assert.equal(r.container, clone);
      assert.equal(r.runtime, runtime);
      const st = await state(runtime, clone);
      assert.equal(st.status, 'running');
      assert.equal(st.pid, r.pid);
      assert.match(await redis.verify(), /keys=1001/);

      const inspect = await ok(['snapshots', 'inspect', out.snapshot]);
      assert.match(inspect, new RegExp(`container ${id} \\(${runtime}`));
      assert.match(inspect, /redis-server/);
    });

    it(`${runtime}: busybox --leave-running → the original keeps running; a clone (new id, own --bundle) continues from the checkpointed state, stdout intact`, async () => {
      const id = track(runtime, cid(`bb-${runtime}`));
      const data = join(base, `${id}-data`);
      const loop = ['/bin/sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /data/c.tmp; mv /data/c.tmp /data/counter; echo tick $i; sleep 0.05; done'];
      const bundle = await makeBundle('busybox', join(base, `${id}-bundle`), data, loop);
      await startContainer(runtime, id, bundle, join(base, `${id}-logs`));
      await waitFor(() => counterIn(data) > 5, 5000, 'the busybox loop to count');
      const before = counterIn(data);

      const snap = (await ok(['checkpoint', `container:${id}`, '--runtime', runtime, '--leave-running'])).trim();
      assert.equal((await state(runtime, id)).status, 'running');
      const atCheckpoint = counterIn(data);
      await waitFor(() => counterIn(data) > atCheckpoint + 2, 5000, 'the original to keep counting');

      const clone = track(runtime, cid(`bb-${runtime}-clone`));
      const cloneData = join(base, `${clone}-data`);
      const cloneBundle = await makeBundle('busybox', join(base, `${clone}-bundle`), cloneData, loop);
      await ok(['restore', snap, '--as', `container:${clone}`, '--bundle', cloneBundle]);
      await waitFor(() => counterIn(cloneData) > 0, 5000, 'the clone to count');
      const first = counterIn(cloneData);
      assert.ok(first > before, `the clone resumed at ${first}, not after ${before}: it restarted instead of being restored`);
      assert.equal((await state(runtime, id)).status, 'running', 'the original still runs beside its clone');
      await waitFor(() => /tick \d+/.test(readFileSync(join(store, 'containers', clone, 'stdout.log'), 'utf8')), 5000, 'the clone\'s stdout');
      const ticks = readFileSync(join(store, 'containers', clone, 'stdout.log'), 'utf8').match(/tick (\d+)/g) ?? [];
      assert.ok(Number(ticks[0]?.split(' ')[1]) > before, `the clone's stdout starts at ${ticks[0]}`);
    });
  }

  it('refuses a container with an established TCP connection: names it and --tcp-established; the container keeps running', async () => {
    const id = track('runc', cid('tcp'));
    const args = ['/bin/sh', '-c', 'sleep 100000 | nc -l -p 7000 >/dev/null & sleep 0.3; sleep 100000 | nc 127.0.0.1 7000 & while true; do sleep 1; done'];
    const bundle = await makeBundle('busybox', join(base, `${id}-bundle`), join(base, `${id}-data`), args);
    const pid = await startContainer('runc', id, bundle, join(base, `${id}-logs`));
    await waitFor(() => /:1B58 .* 01 /.test(readFileSync(`/proc/${pid}/net/tcp`, 'utf8') + readFileSync(`/proc/${pid}/net/tcp6`, 'utf8')), 5000, 'the TCP connection');
    const r = await ferry(['checkpoint', `container:${id}`]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^ferry: error: cannot checkpoint container \S+: the container has an established TCP connection \(fd \d+ of its process \d+\)/);
    assert.match(r.stderr, /hint: pass --tcp-established/);
    assert.match(r.stderr, /still running/);
    const st = await state('runc', id);
    assert.equal(st.status, 'running');
    assert.equal(st.pid, pid);
    assert.equal((await ferry(['snapshots', 'ls', '--json'])).stdout.includes(`"${id}"`), false);
  });

  it('refuses a container whose stdout is a unix socket to a program outside: names fd 1 and the socket; keeps running', async () => {
    const id = track('runc', cid('sock'));
    const bundle = await makeBundle('busybox', join(base, `${id}-bundle`), join(base, `${id}-data`), ['/bin/sh', '-c', 'while true; do echo hi; sleep 0.2; done']);
    // Node's stdio "pipes" are unix socketpairs: the container's stdout is a socket whose peer is this test.
    const child = spawn('runc', ['run', '--detach', '--bundle', bundle, id], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.resume();
    await new Promise<void>((res) => child.once('exit', () => res()));
    try {
      const r = await ferry(['checkpoint', `container:${id}`, '--json']);
      assert.equal(r.code, 1);
      const e = (JSON.parse(r.stdout) as { error: { code: string; message: string; hint: string } }).error;
      assert.equal(e.code, 'ERR_CONTAINER_CHECKPOINT');
      assert.match(e.message, /fd 1 \(stdout\) is unix socket socket:\[\d+\], connected to a peer outside the container/);
      assert.match(e.hint, /pipes or \/dev\/null/);
      assert.equal((await state('runc', id)).status, 'running');
    } finally {
      child.stdout.destroy();
      child.stderr.destroy();
    }
  });

  it('Podman layout: export (zstd, with rootfs) → import into another store with a new bundle → restore; damaged or foreign archives refused', async () => {
    const id = track('crun', cid('arch'));
    const data = join(base, `${id}-data`);
    const loop = ['/bin/sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /data/c.tmp; mv /data/c.tmp /data/counter; sleep 0.05; done'];
    const bundle = await makeBundle('busybox', join(base, `${id}-bundle`), data, loop);
    await startContainer('crun', id, bundle, join(base, `${id}-logs`));
    await waitFor(() => counterIn(data) > 5, 5000, 'the busybox loop to count');
    const snap = (await ok(['checkpoint', `container:${id}`])).trim();
    const last = counterIn(data);
    const file = join(base, 'arch.tar.zst');
    const exp = JSON.parse(await ok(['container-archive', 'export', snap, file, '--include-rootfs', '--json'])) as { members: string[] };
    for (const m of ['config.dump', 'spec.dump', 'network.status', 'stats-dump', 'rootfs-diff.tar', 'checkpoint/inventory.img', 'checkpoint/pages-1.img']) {
      assert.ok(exp.members.includes(m), `the archive lacks ${m}`);
    }
    const other = join(base, 'store2');
    const newBundle = join(base, 'imported-bundle');
    const imp = await new Promise<Ran>((res) => execFile(FERRY, ['--store', other, 'container-archive', 'import', file, '--bundle', newBundle, '--json'], (err, stdout, stderr) =>
      res({ code: err ? 1 : 0, stdout, stderr })));
    assert.equal(imp.code, 0, imp.stderr);
    const r = JSON.parse(imp.stdout) as { snapshot: string; source: string; rootfsUnpacked: boolean };
    assert.equal(r.source, 'ferry');
    assert.ok(r.rootfsUnpacked && existsSync(join(newBundle, 'rootfs', 'bin', 'busybox')));
    const clone = track('crun', cid('arch-2'));
    const restored = await new Promise<Ran>((res) => execFile(FERRY, ['--store', other, 'restore', r.snapshot, '--as', `container:${clone}`], (err, stdout, stderr) =>
      res({ code: err ? 1 : 0, stdout, stderr })));
    assert.equal(restored.code, 0, restored.stderr);
    await waitFor(() => counterIn(data) > last, 5000, 'the restored container to count on');
    assert.equal((await state('crun', clone)).status, 'running');
    assert.match(readFileSync(`/proc/${(await state('crun', clone)).pid}/mountinfo`, 'utf8'), /imported-bundle\/rootfs/);

    // A flipped byte in the memory image: refused on import, nothing added to the store.
    const plain = join(base, 'arch.tar');
    await ok(['container-archive', 'export', snap, plain, '--compress', 'none']);
    const buf = readFileSync(plain);
    const at = buf.indexOf(Buffer.from('checkpoint/pages-1.img')) + 512 + 4096;
    buf[at] = (buf[at] ?? 0) ^ 0xff;
    const damaged = join(base, 'damaged.tar');
    writeFileSync(damaged, buf);
    const bad = await ferry(['container-archive', 'import', damaged]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /pages-1\.img differs from the checksum ferry recorded/);
    const foreign = await ferry(['container-archive', 'import', join(PROJECT_ROOT, 'package.json')]);
    assert.equal(foreign.code, 1);
    assert.match(foreign.stderr, /not a readable checkpoint archive|lacks spec\.dump/);
  });

  it('bad input: an unknown container, a taken id, a bad runtime — one clear line each, exit 1', async () => {
    const none = await ferry(['checkpoint', 'container:no-such-container']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /^ferry: error: no container 'no-such-container' in runc \(\/run\/runc\), crun/);
    const badRt = await ferry(['checkpoint', 'container:x', '--runtime', 'docker']);
    assert.match(badRt.stderr, /--runtime must be runc or crun, not 'docker'/);
    const badId = await ferry(['checkpoint', 'container:../etc']);
    assert.match(badId.stderr, /is not a valid container target/);

    const id = track('runc', cid('taken'));
    const bundle = await makeBundle('busybox', join(base, `${id}-bundle`), join(base, `${id}-data`), ['/bin/sh', '-c', 'while true; do sleep 1; done']);
    await startContainer('runc', id, bundle, join(base, `${id}-logs`));
    const snap = (await ok(['checkpoint', `container:${id}`, '--leave-running'])).trim();
    const taken = await ferry(['restore', snap]);
    assert.equal(taken.code, 1);
    assert.match(taken.stderr, new RegExp(`a container named '${id}' already exists in runc`));
    assert.match(taken.stderr, /hint: restore under another id with --as container:<new-id>/);
    const noBundle = await ferry(['restore', snap, '--as', `container:${id}-x`, '--bundle', join(base, 'nowhere')]);
    assert.match(noBundle.stderr, /cannot read the bundle's config.json/);
    assert.equal(await readFile(join(base, 'nowhere', 'config.json')).catch(() => 'absent'), 'absent');
  });
});

// Podman interop, both ways, with the runc runtime (Debian's crun lacks CRIU support).
// Podman's defaults that fail here are overridden: RLIMIT_NOFILE/NPROC above this machine's
// hard limits (no CAP_SYS_RESOURCE), and its network (none: nothing to restore).
const podmanMissing = blocked ?? (existsSync('/usr/bin/podman') ? undefined : 'podman is not installed (make setup installs it)');

describe('Podman interop (podman ↔ ferry checkpoint archives)', { skip: podmanMissing }, () => {
  const image = `localhost/ferry-test-busybox:${tag}`;
  const env = { ...process.env, PATH: `${join(PROJECT_ROOT, '.deps', 'criu', 'sbin')}:${process.env['PATH'] ?? ''}` };
  const sh = (cmd: string, args: string[]): Promise<Ran> => new Promise((res) => execFile(cmd, args, { env, timeout: 120_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
    res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr })));
  const must = async (cmd: string, args: string[]): Promise<string> => {
    const r = await sh(cmd, args);
    assert.equal(r.code, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  // (written aside and renamed: a reader never sees the file empty, half-way through a write)
  const loop = 'i=0; while true; do i=$((i+1)); echo $i > /tmp/counter.tmp; mv /tmp/counter.tmp /tmp/counter; sleep 0.05; done';
  const podmanNames: string[] = [];
  let podStore: string;
  let imageId: string;

  before(async () => {
    podStore = await mkdtemp(join(tmpdir(), 'ferry-podman-'));
    store = join(podStore, 'store');
    await must('bash', ['-c', `tar -C "${join(PROJECT_ROOT, '.deps', 'bundles', 'busybox', 'rootfs')}" -c . | podman import - ${image}`]);
    imageId = (await must('podman', ['image', 'inspect', image, '--format', '{{.Id}}'])).trim();
  });
  after(async () => {
    for (const n of podmanNames) await sh('podman', ['rm', '-f', n]);
    for (const [rt, id] of started) await removeContainer(rt, id);
    await sh('podman', ['rmi', '-f', image]);
    await rm(podStore, { recursive: true, force: true });
  });

  it('podman container checkpoint --export → ferry import → ferry restore (runc, new id): the clone counts on', async () => {
    const name = `ferry-pod-${tag}`;
    podmanNames.push(name);
    await must('podman', ['run', '-d', '--runtime', 'runc', '--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=4096:4096',
      '--name', name, image, '/bin/sh', '-c', loop]);
    const counter = async (cmd: string, args: string[]) => Number((await must(cmd, args)).trim());
    for (let i = 0; i < 100 && (await counter('podman', ['exec', name, 'cat', '/tmp/counter']).catch(() => 0)) < 5; i++) await new Promise((r) => setTimeout(r, 50));
    const before = await counter('podman', ['exec', name, 'cat', '/tmp/counter']);
    const file = join(podStore, 'from-podman.tar.gz');
    // --leave-running: the podman container keeps its bind-mount sources (/run/.containerenv, shm).
    await must('podman', ['container', 'checkpoint', '--leave-running', '--export', file, '--compress', 'gzip', name]);
    const bundle = join(podStore, 'bundle');
    // The image's files, as a bundle rootfs (import writes config.json from spec.dump).
    await must('cp', ['-a', join(PROJECT_ROOT, '.deps', 'bundles', 'busybox'), bundle]);
    const imp = JSON.parse(await ok(['container-archive', 'import', file, '--bundle', bundle, '--json'])) as { snapshot: string; source: string };
    assert.equal(imp.source, 'podman');
    const clone = track('runc', cid('from-podman'));
    await ok(['restore', imp.snapshot, '--as', `container:${clone}`]);
    const first = await counter('runc', ['exec', clone, 'cat', '/tmp/counter']);
    await new Promise((r) => setTimeout(r, 300));
    const later = await counter('runc', ['exec', clone, 'cat', '/tmp/counter']);
    assert.ok(later > first, `the clone does not count (${first} → ${later})`);
    assert.ok(first >= before, `the clone counts from ${first}, but the podman container was at ${before} before the checkpoint: it restarted`);
    assert.match(await ok(['snapshots', 'inspect', imp.snapshot]), /container ferry-pod-\w+ \(runc/);
  });

  it('ferry checkpoint → container-archive export --image → podman container restore --import: podman runs it on', async () => {
    const id = track('runc', cid('to-podman'));
    const bundle = await makeBundle('busybox', join(podStore, `${id}-bundle`), join(podStore, `${id}-data`), ['/bin/sh', '-c', loop]);
    await startContainer('runc', id, bundle, join(podStore, `${id}-logs`));
    await new Promise((r) => setTimeout(r, 500));
    const snap = (await ok(['checkpoint', `container:${id}`])).trim();
    const file = join(podStore, 'to-podman.tar.gz');
    await ok(['container-archive', 'export', snap, file, '--compress', 'gzip', '--image', image, '--image-id', imageId]);
    const name = `ferry-restored-${tag}`;
    podmanNames.push(name);
    await must('podman', ['container', 'restore', '--import', file, '--name', name]);
    const a = Number((await must('podman', ['exec', name, 'cat', '/tmp/counter'])).trim());
    await new Promise((r) => setTimeout(r, 300));
    const b = Number((await must('podman', ['exec', name, 'cat', '/tmp/counter'])).trim());
    assert.ok(b > a && a > 5, `podman's restored container counts ${a} → ${b} (a fresh start would begin at 1)`);
  });
});
