// `ferry migrate --strategy incremental` end to end on loopback (root, real CRIU), beyond the
// conformance suite's faults (which strike its frozen part): a memcheck workload that keeps
// rewriting pages moves with rounds and a frozen part holding only the changed pages, and
// verifies on B; a migration that starts from a replica builds on it (and B drops the replica
// once the workload runs there); a connection cut in a round leaves the workload running and
// nothing on either side.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { agentListening } from '../../testing/agent-process.js';
import { FERRY, ferryCli, ferryOk } from '../../testing/ferry-cli.js';
import { startProxy } from '../../testing/tcp-proxy.js';
import { memcheckWorkload, type WorkloadInstance } from '../../testing/workloads.js';
import type { MigrateResult } from '../migrate-types.js';

const MIB = 64;

interface Details {
  startedFrom?: { replica: string; snapshot: string };
  rounds: { snapshot: string; parent?: string; bytes: number; flatBytes: number; pagesHeld: number; pages: number }[];
  stoppedBecause: string;
  final: { bytes: number; flatBytes: number; pages: number; inParent: number };
}

describe('ferry migrate --strategy incremental (loopback)', { timeout: 300_000 }, () => {
  let dir = '';
  let tokenFile = '';
  let src = '';
  let agent: { child: ChildProcess; url: string; store: string } | undefined;
  const instances: WorkloadInstance[] = [];
  const running: { store: string; name: string }[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-incremental-e2e-'));
    tokenFile = join(dir, 'token');
    await writeFile(tokenFile, `${randomBytes(24).toString('hex')}\n`, { mode: 0o600 });
    src = join(dir, 'a');
    const store = join(dir, 'b');
    const child = spawn(FERRY, ['--store', store, 'agent', '--listen', '127.0.0.1:0', '--token-file', tokenFile, '--log-file', join(dir, 'b.log'), '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    agent = { child, url: await agentListening(child), store };
    await mkdir(join(dir, 'w'));
  });

  after(async () => {
    for (const w of running) await ferryCli(w.store, ['stop', w.name]);
    if (agent && agent.child.exitCode === null) {
      const exited = new Promise((r) => agent!.child.once('exit', r));
      agent.child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    }
    for (const s of [src, agent?.store].filter((x): x is string => x !== undefined)) {
      for (const snap of await snapshots(s).catch(() => [])) await ferryCli(s, ['snapshots', 'rm', snap.id]);
      const id = (JSON.parse(await readFile(join(s, 'store.json'), 'utf8').catch(() => '{}')) as { id?: string }).id;
      if (id) await rm(join('/dev/shm/ferry', id), { recursive: true, force: true });
    }
    for (const i of instances) await i.cleanup().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  const snapshots = async (store: string): Promise<{ id: string; parent: string | null }[]> =>
    (JSON.parse(await ferryOk(store, ['snapshots', 'ls', '--json'])) as { snapshots: { id: string; parent: string | null }[] }).snapshots;

  /** B removes a migration's rounds just after its commit answer: wait for it. */
  const settledEmpty = async (store: string): Promise<void> => {
    const deadline = Date.now() + 15_000;
    while ((await snapshots(store)).length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(await snapshots(store), [], `nothing left in ${store}`);
  };

  const launch = async (name: string) => {
    // Rewrites 2000 pages a second (≈ 8 MB/s) all along: the rounds and the frozen part chase it.
    const inst = await memcheckWorkload({ mib: MIB, rate: 2000, seed: 9 }).prepare(join(dir, 'w'));
    instances.push(inst);
    const pid = (JSON.parse(await ferryOk(src, ['run', '--name', name, '--json', '--', ...inst.command])) as { pid: number }).pid;
    running.push({ store: src, name });
    await inst.waitReady(60_000);
    return { inst, pid };
  };

  const migrate = async (name: string, to = agent!.url) => ferryCli(src, ['migrate', name, '--strategy', 'incremental', '--to', to, '--to-token-file', tokenFile, '--json']);

  it('moves a workload that keeps writing: rounds while it runs, then only the changed pages; it verifies on B, nothing is left', async () => {
    const w = await launch('inc');
    const r = await migrate('inc');
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const out = JSON.parse(r.stdout) as MigrateResult & { details: Details };
    assert.equal(out.strategy, 'incremental');
    running.push({ store: agent!.store, name: 'inc' });
    const d = out.details;
    assert.ok(d.rounds.length >= 1, JSON.stringify(d));
    assert.equal(d.rounds[0]!.parent, undefined, 'the first round is whole (no replica)');
    assert.ok(d.rounds[0]!.bytes > MIB * 2 ** 20 * 0.9);
    for (const p of ['preflight', 'rounds', 'delta', 'transfer', 'restore', 'commit']) assert.ok(p in out.phases, `phase ${p}`);
    // The frozen part: most pages were on B already, only the rewritten ones travelled.
    assert.ok(d.final.inParent > d.final.pages * 0.5, `${d.final.inParent} of ${d.final.pages} pages held`);
    assert.ok(d.final.bytes < d.final.flatBytes * 0.5, `final ${d.final.bytes} of ${d.final.flatBytes} bytes`);
    assert.equal(out.bytesMoved, d.final.bytes + d.rounds.reduce((a, x) => a + x.bytes, 0));
    await w.inst.verify(out.destination.pid);
    assert.equal(out.source.snapshot, undefined);
    await settledEmpty(agent!.store);
    assert.deepEqual(await snapshots(src), []);
    await ferryOk(agent!.store, ['stop', 'inc']);
  });

  it('starts from the replica B keeps; once the workload runs on B, the replica goes', async () => {
    const w = await launch('rep');
    const rep = await ferryCli(src, ['replicate', 'rep', '--to', agent!.url, '--to-token-file', tokenFile, '--tier', 'memory', '--json']);
    assert.equal(rep.code, 0, rep.stderr);
    const replica = (JSON.parse(rep.stdout) as { destination: { snapshot: string } }).destination.snapshot;
    const r = await migrate('rep');
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const out = JSON.parse(r.stdout) as MigrateResult & { details: Details };
    running.push({ store: agent!.store, name: 'rep' });
    assert.deepEqual(out.details.startedFrom, { replica: 'w.rep', snapshot: replica });
    assert.equal(out.details.rounds[0]!.parent, replica, 'the first round builds on the replica');
    assert.ok(out.details.rounds[0]!.bytes < out.details.rounds[0]!.flatBytes * 0.7, JSON.stringify(out.details.rounds[0]));
    await w.inst.verify(out.destination.pid);
    await settledEmpty(agent!.store);
    const gone = JSON.parse(await ferryOk(agent!.store, ['snapshots', 'ls', '--json'])) as { snapshots: unknown[] };
    assert.deepEqual(gone.snapshots, []);
    await ferryOk(agent!.store, ['stop', 'rep']);
  });

  it('a connection cut in a round: the workload runs on, verified; neither side keeps anything', async () => {
    const w = await launch('cut');
    const proxy = await startProxy(Number(new URL(agent!.url).port));
    proxy.fault = { only: /^PUT \/v1\/migrations\/m-[0-9a-f]+\/rounds/, afterBytes: 8 * 2 ** 20, action: 'cut' };
    try {
      const r = await migrate('cut', `http://127.0.0.1:${proxy.port}`);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      const e = JSON.parse(r.stdout) as { error: { code: string; phase: string }; workload: string };
      assert.equal(e.workload, 'running on source');
      assert.equal(e.error.phase, 'rounds', JSON.stringify(e));
      assert.ok(proxy.fired);
    } finally {
      await proxy.close();
    }
    await w.inst.verify(w.pid);
    await settledEmpty(agent!.store);
    assert.deepEqual(await snapshots(src), []);
    assert.deepEqual(await readdir(join(agent!.store, 'migrations')).catch(() => []), []);
  });
});
