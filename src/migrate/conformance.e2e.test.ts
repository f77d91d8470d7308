// The strategies' conformance suite, end to end on loopback (root, real CRIU): for every strategy
// in CONFORMANCE_STRATEGIES, two agents with their own stores, a memcheck workload moved between
// them, and the faults a migration must survive — each leaves the workload running on the source,
// verified, and nothing on the destination (no snapshot, no held copy, no half-received files).
// (Containers move with the cold strategy, tested once.)
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PROJECT_ROOT } from '../criu/binary.js';
import { FERRY, ferryCli, ferryOk } from '../testing/ferry-cli.js';
import { agentListening } from '../testing/agent-process.js';
import { startProxy, type Proxy } from '../testing/tcp-proxy.js';
import { makeBundle, removeContainer, startContainer, state, stateOrUndefined } from '../testing/containers.js';
import { memcheckWorkload } from '../testing/workloads.js';
import { CONFORMANCE_STRATEGIES, EXPECTED_PHASES, faultPhase, faultStream, NOT_APPLICABLE, type ConformanceFault } from './conformance.js';
import type { ConcreteStrategy } from './strategy.js';
import { availableStrategies } from './strategies/index.js';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** A record read while it may be half-written (a writer's temporary file, an empty one): {} then. */
function parseOr(text: string): unknown {
  try { return JSON.parse(text); } catch { return {}; }
}

interface AgentProc { child: ChildProcess; url: string; store: string; log: string }


async function stopAgent(a: AgentProc | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!a || a.child.exitCode !== null || a.child.signalCode !== null) return;
  const exited = new Promise((r) => a.child.once('exit', r));
  a.child.kill(signal);
  await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
  if (a.child.exitCode === null && a.child.signalCode === null) a.child.kill('SIGKILL');
}

/** Pids of processes whose command line mentions `marker` (the workload instance's status dir). */
function pidsWith(marker: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    let cmd: string;
    try { cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8'); } catch { continue; /* gone */ }
    // (not the `unshare` that launched the original: it waits for its child, holding the same arguments)
    if (cmd.includes(marker) && !cmd.startsWith('unshare\0')) out.push(Number(p));
  }
  return out;
}

for (const strategy of CONFORMANCE_STRATEGIES) suite(strategy);

function suite(strategy: ConcreteStrategy): void {
describe(`ferry migrate between two agents on loopback: ${strategy}`, { timeout: 600_000 }, () => {
  /** A fault that cannot apply to this strategy is reported as skipped, with the reason. */
  const na = (f: ConformanceFault): { skip: string | false } => ({ skip: NOT_APPLICABLE[strategy]?.[f] ?? false });
  let dir = '';
  let tokenFile = '';
  let a: AgentProc | undefined;
  let b: AgentProc | undefined;
  const instances: { cleanup(): Promise<void> }[] = [];
  const workloads: { store: string; name: string }[] = [];

  const startAgentProc = async (name: string, store?: string, env: Record<string, string> = {}): Promise<AgentProc> => {
    const s = store ?? join(dir, name);
    const log = join(dir, `${name}-${Date.now()}.log`);
    const child = spawn(FERRY, ['--store', s, 'agent', '--listen', '127.0.0.1:0', '--token-file', tokenFile, '--log-file', log, '--json'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    return { child, url: await agentListening(child), store: s, log };
  };

  /** A 64 MiB memcheck workload started with `ferry run` in the source's store. */
  const launch = async (store: string, name: string) => {
    const inst = await memcheckWorkload({ mib: 64 }).prepare(join(dir, 'w'));
    instances.push(inst);
    const pid = (JSON.parse(await ferryOk(store, ['run', '--name', name, '--json', '--', ...inst.command])) as { pid: number }).pid;
    workloads.push({ store, name });
    await inst.waitReady();
    return { inst, pid, marker: inst.statusDir ?? inst.dir };
  };

  /** What a failed migration must leave: the workload verified on the source, nothing on the destination. */
  const assertRolledBack = async (w: { inst: { verify(pid: number): Promise<string> }; pid: number; marker: string }, dest: AgentProc) => {
    await w.inst.verify(w.pid);
    assert.deepEqual(pidsWith(w.marker), [w.pid], 'exactly one live copy: the source');
    const ls = JSON.parse(await ferryOk(dest.store, ['snapshots', 'ls', '--json'])) as { snapshots: unknown[] };
    assert.deepEqual(ls.snapshots, [], 'no snapshot on the destination');
    const id = (JSON.parse(await readFile(join(dest.store, 'store.json'), 'utf8')) as { id: string }).id;
    const tiers = [join(dest.store, 'snapshots'), join('/dev/shm/ferry', id)];
    for (const t of tiers) {
      const left = (await readdir(t).catch(() => [] as string[])).filter((n) => n.startsWith('.tmp-'));
      assert.deepEqual(left, [], `no half-received files in ${t}`);
    }
    assert.deepEqual((await readdir(join(dest.store, 'migrations')).catch(() => [])), [], 'no migration record left');
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-migrate-e2e-'));
    tokenFile = join(dir, 'token');
    await writeFile(tokenFile, `${randomBytes(24).toString('hex')}\n`, { mode: 0o600 });
    await mkdir(join(dir, 'w'));
    [a, b] = [await startAgentProc('a', undefined, { FERRY_CRUN_ROOT: join(dir, 'crun-a'), FERRY_RUNC_ROOT: join(dir, 'runc-a') }),
      await startAgentProc('b', undefined, { FERRY_CRUN_ROOT: join(dir, 'crun-b'), FERRY_RUNC_ROOT: join(dir, 'runc-b'), FERRY_CGROUP_PARENT: '/ferry-test-b' })];
  });

  after(async () => {
    for (const w of workloads) await ferryCli(w.store, ['stop', w.name]);
    await stopAgent(a);
    await stopAgent(b);
    for (const i of instances) await i.cleanup().catch(() => undefined);
    // Every store this test made (a, b, the old-CRIU agent's; the full-disk one's goes with its test): its snapshots,
    // then its memory tier, which lives outside its directory.
    const stores = [a?.store, b?.store, join(dir, 'old')].filter((x): x is string => x !== undefined);
    for (const s of stores) {
      const ls = await ferryCli(s, ['snapshots', 'ls', '--json']);
      const ids = ls.code === 0 ? (JSON.parse(ls.stdout) as { snapshots: { id: string }[] }).snapshots.map((x) => x.id) : [];
      for (const id of ids) await ferryCli(s, ['snapshots', 'rm', id]);
      const storeId = (JSON.parse(await readFile(join(s, 'store.json'), 'utf8').catch(() => '{}')) as { id?: string }).id;
      if (storeId) await rm(join('/dev/shm/ferry', storeId), { recursive: true, force: true });
    }
    await rm(dir, { recursive: true, force: true });
    // The cgroups B restored its containers under (empty once they ended).
    for (const c of await readdir('/sys/fs/cgroup').catch(() => [] as string[])) {
      const parent = join('/sys/fs/cgroup', c, 'ferry-test-b');
      for (const leaf of await readdir(parent, { withFileTypes: true }).catch(() => [])) if (leaf.isDirectory()) await rmdir(join(parent, leaf.name)).catch(() => undefined);
      await rmdir(parent).catch(() => undefined);
    }
  });

  it('moves a workload A → B (the CLI as source), then B → A through B\'s agent; it verifies on each side, nothing is left behind', async () => {
    const w = await launch(a!.store, 'mc');
    const r = await ferryCli(a!.store, ['migrate', '--strategy', strategy, 'mc', '--to', b!.url, '--to-token-file', tokenFile, '--json']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const out = JSON.parse(r.stdout) as { ok: boolean; strategy: string; downtimeMs: number; totalMs: number; bytesMoved: number; phases: Record<string, number>; destination: { pid: number; name: string }; source: { snapshot?: string } };
    assert.equal(out.ok, true);
    assert.equal(out.strategy, strategy);
    assert.ok(out.bytesMoved > 60 * 2 ** 20, `bytes moved: ${out.bytesMoved}`);
    assert.ok(out.downtimeMs > 0 && out.downtimeMs <= out.totalMs);
    for (const p of EXPECTED_PHASES[strategy] ?? ['preflight', 'commit']) assert.ok(p in out.phases, `phase ${p} timed`);
    assert.equal(out.destination.name, 'mc');
    assert.equal(out.source.snapshot, undefined, 'the source snapshot is removed after the commit');
    await w.inst.verify(out.destination.pid);
    assert.deepEqual(pidsWith(w.marker), [out.destination.pid], 'one live copy: on B');
    const psB = JSON.parse(await ferryOk(b!.store, ['ps', '--json'])) as { workloads: { name: string; state: string; pid: number }[] };
    assert.ok(psB.workloads.some((x) => x.name === 'mc' && x.state === 'running' && x.pid === out.destination.pid), JSON.stringify(psB));
    workloads.push({ store: b!.store, name: 'mc' });
    for (const s of [a!.store, b!.store]) assert.deepEqual((JSON.parse(await ferryOk(s, ['snapshots', 'ls', '--json'])) as { snapshots: unknown[] }).snapshots, []);

    // Back, as a job on B's agent (FERRY_AGENT), which outlives the command.
    const back = await ferryCli(b!.store, ['migrate', '--strategy', strategy, 'mc', '--to', a!.url, '--json'], { FERRY_AGENT: b!.url, FERRY_TOKEN: (await readFile(tokenFile, 'utf8')).trim() });
    assert.equal(back.code, 0, back.stderr + back.stdout);
    const outBack = JSON.parse(back.stdout) as { destination: { pid: number } };
    // The job on B: its events carried the transfer's bytes; /metrics counts the migration.
    const token = (await readFile(tokenFile, 'utf8')).trim();
    const api = (path: string) => fetch(b!.url + path, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) });
    const jobs = (await (await api('/v1/jobs')).json()) as { jobs: { id: string; kind: string; state: string; phases: { name: string }[] }[] };
    const job = jobs.jobs.find((j) => j.kind === 'migrate');
    assert.equal(job?.state, 'succeeded');
    for (const p of EXPECTED_PHASES[strategy] ?? ['preflight', 'commit']) assert.ok(job.phases.some((x) => x.name === p), `job phase ${p}`);
    const events = await (await api(`/v1/jobs/${job.id}/events`)).text();
    assert.match(events, /event: transfer\ndata: \{"bytes":\d+,"totalBytes":\d+\}/);
    const metrics = await (await api('/metrics')).text();
    assert.match(metrics, /^ferry_migration_downtime_seconds_count 1$/m);
    assert.match(metrics, /^ferry_migration_bytes_moved_total [1-9]\d*/m);
    assert.match(metrics, /^ferry_jobs_total\{kind="migrate",outcome="succeeded"\} 1$/m);
    await w.inst.verify(outBack.destination.pid);
    assert.deepEqual(pidsWith(w.marker), [outBack.destination.pid], 'one live copy: on A again');
    await ferryCli(a!.store, ['stop', 'mc']);
  });

  // (Containers: runc moves only cold, crun like a process tree; tested once, in the cold suite.)
  if (strategy === 'cold') it('a crun container and a runc container each move A → B under their id and keep their state', async () => {
    const rootA = join(dir, 'crun-a');
    const rootB = join(dir, 'crun-b');
    const id = `ferry-mig-${process.pid}`;
    const data = join(dir, 'c-data');
    const loop = ['/bin/sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /data/c.tmp; mv /data/c.tmp /data/counter; sleep 0.05; done'];
    const bundle = await makeBundle('busybox', join(dir, 'c-bundle'), data, loop);
    const counter = async () => Number((await readFile(join(data, 'counter'), 'utf8').catch(() => '0')).trim() || 0);
    try {
      await startContainer('crun', id, bundle, join(dir, 'c-logs'), rootA);
      while (await counter() < 5) await new Promise((r) => setTimeout(r, 50));
      const r = await ferryCli(a!.store, ['migrate', '--strategy', strategy, `container:${id}`, '--to', b!.url, '--to-token-file', tokenFile, '--json'], { FERRY_CRUN_ROOT: rootA });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const out = JSON.parse(r.stdout) as { destination: { pid: number; name: string } };
      assert.equal(out.destination.name, id);
      assert.equal(await stateOrUndefined('crun', id, rootA), undefined, 'gone from the source runtime');
      const st = await state('crun', id, rootB);
      assert.equal(st.status, 'running');
      assert.equal(st.pid, out.destination.pid);
      const at = await counter();
      while (await counter() < at + 3) await new Promise((r) => setTimeout(r, 50));
      assert.ok(at > 5, 'it went on counting from where it was, not from 0');
      assert.deepEqual((JSON.parse(await ferryOk(b!.store, ['snapshots', 'ls', '--json'])) as { snapshots: unknown[] }).snapshots, []);
    } finally {
      await removeContainer('crun', id, rootA);
      await removeContainer('crun', id, rootB);
    }
    // runc runs CRIU itself: its commit point is the container's freezer (pause, checkpoint, delete).
    const rid = `ferry-migr-${process.pid}`;
    const rdata = join(dir, 'r-data');
    const rbundle = await makeBundle('busybox', join(dir, 'r-bundle'), rdata, loop);
    const runcA = join(dir, 'runc-a');
    const runcB = join(dir, 'runc-b');
    const rcounter = async () => Number((await readFile(join(rdata, 'counter'), 'utf8').catch(() => '0')).trim() || 0);
    try {
      await startContainer('runc', rid, rbundle, join(dir, 'r-logs'), runcA);
      while (await rcounter() < 5) await new Promise((r) => setTimeout(r, 50));
      const r = await ferryCli(a!.store, ['migrate', '--strategy', strategy, `container:${rid}`, '--to', b!.url, '--to-token-file', tokenFile, '--json'], { FERRY_RUNC_ROOT: runcA });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const out = JSON.parse(r.stdout) as { destination: { pid: number; name: string }; phases: Record<string, number> };
      assert.equal(out.destination.name, rid);
      for (const p of ['freeze', 'transfer', 'restore', 'handoff', 'commit']) assert.ok(p in out.phases, `phase ${p}`);
      assert.equal(await stateOrUndefined('runc', rid, runcA), undefined, 'gone from the source runtime');
      const st = await state('runc', rid, runcB);
      assert.equal(st.status, 'running');
      const at = await rcounter();
      while (await rcounter() < at + 3) await new Promise((r) => setTimeout(r, 50));
      assert.ok(at > 5, 'it went on counting from where it was');
      assert.deepEqual((JSON.parse(await ferryOk(b!.store, ['snapshots', 'ls', '--json'])) as { snapshots: unknown[] }).snapshots, []);
      assert.deepEqual((JSON.parse(await ferryOk(a!.store, ['snapshots', 'ls', '--json'])) as { snapshots: unknown[] }).snapshots, []);
    } finally {
      await removeContainer('runc', rid, runcA);
      await removeContainer('runc', rid, runcB);
    }
  });

  // Strategy choice, once (it does not depend on the suite's strategy).
  if (strategy === CONFORMANCE_STRATEGIES[0]) {
    it('auto (the default) picks a strategy this build has, from a sample of the workload\'s memory, and says why', async () => {
      const w = await launch(a!.store, 'f-auto');
      const r = await ferryCli(a!.store, ['migrate', 'f-auto', '--to', b!.url, '--to-token-file', tokenFile, '--json']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const out = JSON.parse(r.stdout) as { strategy: string; chosen: { strategy: string; because: string; facts: { dirtyBytesPerSec?: number; compressRatio?: number } }; destination: { pid: number } };
      assert.ok((availableStrategies() as string[]).includes(out.chosen.strategy), JSON.stringify(out.chosen));
      assert.equal(out.strategy, out.chosen.strategy);
      assert.ok(out.chosen.because.length > 20, out.chosen.because);
      assert.ok((out.chosen.facts.dirtyBytesPerSec ?? 0) > 0, `memcheck rewrites pages: ${JSON.stringify(out.chosen.facts)}`);
      assert.ok((out.chosen.facts.compressRatio ?? 0) >= 1, JSON.stringify(out.chosen.facts));
      await w.inst.verify(out.destination.pid);
      await ferryCli(b!.store, ['stop', 'f-auto']);
    });

    it('precopy on a kernel without soft-dirty is refused before anything is frozen, naming what is missing and what to use', async () => {
      const w = await launch(a!.store, 'f-precopy');
      const r = await ferryCli(a!.store, ['migrate', 'f-precopy', '--strategy', 'precopy', '--to', b!.url, '--to-token-file', tokenFile, '--json']);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      const e = JSON.parse(r.stdout) as { error: { code: string; phase: string; message: string; hint: string }; workload: string };
      assert.equal(e.error.code, 'ERR_CRIU_FEATURE');
      assert.equal(e.error.phase, 'preflight');
      assert.match(e.error.message, /soft-dirty/);
      assert.match(e.error.hint, /--strategy incremental/);
      assert.equal(e.workload, 'running on source');
      await assertRolledBack(w, b!);
      await ferryCli(a!.store, ['stop', 'f-precopy']);
    });
  }

  it('a wrong token is refused at preflight, before anything is frozen', na('wrong-token'), async () => {
    const w = await launch(a!.store, 'f-token');
    await writeFile(join(dir, 'bad-token'), 'not-the-token\n');
    const r = await ferryCli(a!.store, ['migrate', '--strategy', strategy, 'f-token', '--to', b!.url, '--to-token-file', join(dir, 'bad-token'), '--json']);
    assert.equal(r.code, 1);
    const e = JSON.parse(r.stdout) as { ok: boolean; error: { code: string; phase: string }; workload: string };
    assert.equal(e.ok, false);
    assert.equal(e.error.code, 'ERR_UNAUTHORIZED');
    assert.equal(e.error.phase, 'preflight');
    assert.equal(e.workload, 'running on source');
    await assertRolledBack(w, b!);
    await ferryCli(a!.store, ['stop', 'f-token']);
  });

  it('a destination store without room refuses at preflight', na('full-store'), async () => {
    const small = join(dir, 'small');
    await mkdir(small);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', small]);
    let c: AgentProc | undefined;
    try {
      c = await startAgentProc('c', join(small, 'store'));
      const w = await launch(a!.store, 'f-full');
      const r = await ferryCli(a!.store, ['migrate', '--strategy', strategy, 'f-full', '--to', c.url, '--to-token-file', tokenFile, '--tier', 'disk', '--json']);
      assert.equal(r.code, 1, r.stdout);
      const e = JSON.parse(r.stdout) as { error: { code: string; phase: string; message: string }; workload: string };
      assert.equal(e.error.code, 'ERR_MIGRATE_REFUSED');
      assert.equal(e.error.phase, 'preflight');
      assert.match(e.error.message, /MiB free/);
      await assertRolledBack(w, c);
      await ferryCli(a!.store, ['stop', 'f-full']);
    } finally {
      await stopAgent(c);
      const storeId = (JSON.parse(await readFile(join(small, 'store', 'store.json'), 'utf8').catch(() => '{}')) as { id?: string }).id;
      if (storeId) await rm(join('/dev/shm/ferry', storeId), { recursive: true, force: true });
      execFileSync('umount', ['-l', small]);
    }
  });

  it('a destination whose CRIU is of another line refuses at preflight, before anything is frozen', na('old-criu'), async () => {
    // A stand-in for CRIU 3.17.1 speaking the real swrk protocol (it answers VERSION only).
    const old = await startAgentProc('old', undefined, { FERRY_CRIU: join(PROJECT_ROOT, 'test', 'fixtures', 'fake-criu-old.py') });
    try {
      const w = await launch(a!.store, 'f-criu');
      const r = await ferryCli(a!.store, ['migrate', '--strategy', strategy, 'f-criu', '--to', old.url, '--to-token-file', tokenFile, '--json']);
      assert.equal(r.code, 1, r.stdout);
      const e = JSON.parse(r.stdout) as { error: { code: string; phase: string; message: string }; workload: string };
      assert.equal(e.error.code, 'ERR_MIGRATE_REFUSED');
      assert.equal(e.error.phase, 'preflight');
      assert.match(e.error.message, /CRIU 3\.17\.1/);
      assert.equal(e.workload, 'running on source');
      await assertRolledBack(w, old);
      await ferryCli(a!.store, ['stop', 'f-criu']);
    } finally {
      await stopAgent(old);
    }
  });

  it('the source ferry SIGKILLed during the transfer: CRIU resumes the workload; the destination drops what it got; the next command cleans the source store', na('source-killed'), async () => {
    const w = await launch(a!.store, 'f-source-killed');
    const proxy = await startProxy(Number(new URL(b!.url).port));
    const cli = spawn(FERRY, ['--store', a!.store, 'migrate', '--strategy', strategy, 'f-source-killed', '--to', `http://127.0.0.1:${proxy.port}`, '--to-token-file', tokenFile, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<NodeJS.Signals | null>((r) => cli.once('exit', (_c, sig) => r(sig)));
    proxy.fault = { ...faultStream(strategy), action: () => { cli.kill('SIGKILL'); } };
    try {
      assert.equal(await exited, 'SIGKILL');
      assert.ok(proxy.fired);
    } finally {
      await proxy.close();
    }
    // CRIU notices its ferry is gone (the post-dump answer never comes) and resumes the tree.
    const deadline = Date.now() + 15_000;
    for (;;) {
      try { await w.inst.verify(w.pid); break; } catch (e) { if (Date.now() > deadline) throw e; }
      await new Promise((r) => setTimeout(r, 200));
    }
    // The destination saw the stream break: nothing kept (its record goes once it aborts).
    const until = Date.now() + 10_000;
    while ((await readdir(join(b!.store, 'migrations')).catch(() => [] as string[])).length && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    await assertRolledBack(w, b!);
    // The source's next command finds the interrupted checkpoint and removes its partial images.
    const ls = JSON.parse(await ferryOk(a!.store, ['snapshots', 'ls', '--json'])) as { snapshots: unknown[]; leftovers: unknown[] };
    assert.deepEqual(ls.snapshots, []);
    await ferryCli(a!.store, ['stop', 'f-source-killed']);
  });

  for (const fault of ['flip', 'cut', 'kill-during-transfer', 'kill-during-restore'] as const) {
    it(`a fault in flight (${fault}): the source resumes and verifies; the destination keeps nothing`, na(fault), async () => {
      const name = `f-${fault}`;
      const w = await launch(a!.store, name);
      let proxy: Proxy | undefined;
      let to = b!.url;
      let watcher: NodeJS.Timeout | undefined;
      const killB = () => { b!.child.kill('SIGKILL'); };
      if (fault !== 'kill-during-restore') {
        proxy = await startProxy(Number(new URL(b!.url).port));
        proxy.fault = { ...faultStream(strategy), action: fault === 'kill-during-transfer' ? killB : fault };
        to = `http://127.0.0.1:${proxy.port}`;
      } else {
        // The destination's record says 'restoring' from the moment it starts CRIU.
        watcher = setInterval(() => {
          void (async () => {
            for (const f of await readdir(join(b!.store, 'migrations')).catch(() => [] as string[])) {
              const rec = parseOr(await readFile(join(b!.store, 'migrations', f), 'utf8').catch(() => '{}')) as { state?: string };
              if (rec.state === 'restoring') { clearInterval(watcher); killB(); }
            }
          })();
        }, 2);
      }
      try {
        const r = await ferryCli(a!.store, ['migrate', '--strategy', strategy, name, '--to', to, '--to-token-file', tokenFile, '--json']);
        assert.equal(r.code, 1, r.stdout + r.stderr);
        const e = JSON.parse(r.stdout) as { ok: boolean; error: { code: string; phase: string }; workload: string };
        assert.equal(e.workload, 'running on source');
        assert.equal(e.error.phase, faultPhase(strategy, fault), JSON.stringify(e));
        if (proxy) assert.ok(proxy.fired, 'the fault happened');
      } finally {
        clearInterval(watcher);
        await proxy?.close();
      }
      if (b!.child.exitCode !== null || b!.child.signalCode !== null) {
        // A restarted destination undoes what its predecessor had received.
        b = await startAgentProc('b', b!.store, { FERRY_CRUN_ROOT: join(dir, 'crun-b'), FERRY_RUNC_ROOT: join(dir, 'runc-b'), FERRY_CGROUP_PARENT: '/ferry-test-b' });
        await ferryOk(b.store, ['snapshots', 'ls']);
      }
      await assertRolledBack(w, b!);
      await ferryCli(a!.store, ['stop', name]);
    });
  }
});
}
