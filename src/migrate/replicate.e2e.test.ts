// `ferry replicate` end to end on loopback (root, real CRIU): a memcheck workload replicated to
// another agent twice; the second time only the pages it rewrote travel, the destination keeps one
// whole replica, and that replica — restored there — verifies every byte. A destination that has
// lost its replica gets a whole one; a wrong token leaves the workload running and nothing there.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { agentListening } from '../testing/agent-process.js';
import { FERRY, ferryCli, ferryOk } from '../testing/ferry-cli.js';
import { memcheckWorkload, type WorkloadInstance } from '../testing/workloads.js';
import type { ReplicateResult } from './replicate.js';

const MIB = 64;
const PAGES = MIB * 256;

interface Snap { id: string; parent: string | null; name: string | null; bytes: number }
const ls = async (store: string): Promise<Snap[]> => (JSON.parse(await ferryOk(store, ['snapshots', 'ls', '--json'])) as { snapshots: Snap[] }).snapshots;

describe('ferry replicate (incremental, to another agent on loopback)', { timeout: 300_000 }, () => {
  let dir = '';
  let tokenFile = '';
  let src = '';
  let agent: { child: ChildProcess; url: string; store: string } | undefined;
  let inst: WorkloadInstance | undefined;
  let pid = 0;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-replicate-e2e-'));
    tokenFile = join(dir, 'token');
    await writeFile(tokenFile, `${randomBytes(24).toString('hex')}\n`, { mode: 0o600 });
    src = join(dir, 'a');
    const store = join(dir, 'b');
    const child = spawn(FERRY, ['--store', store, 'agent', '--listen', '127.0.0.1:0', '--token-file', tokenFile, '--log-file', join(dir, 'b.log'), '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    agent = { child, url: await agentListening(child), store };
    await mkdir(join(dir, 'w'));
    inst = await memcheckWorkload({ mib: MIB, dirtyPercent: 5, dirtyEveryMs: 0, seed: 3 }).prepare(join(dir, 'w'));
    pid = (JSON.parse(await ferryOk(src, ['run', '--name', 'mc', '--json', '--', ...inst.command])) as { pid: number }).pid;
    await inst.waitReady(60_000);
  });

  after(async () => {
    await ferryCli(src, ['stop', 'mc']);
    if (agent) await ferryCli(agent.store, ['stop', 'mc']);
    if (agent && agent.child.exitCode === null) {
      const exited = new Promise((r) => agent!.child.once('exit', r));
      agent.child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    }
    for (const s of [src, agent?.store].filter((x): x is string => x !== undefined)) {
      for (const snap of await ls(s).catch(() => [])) await ferryCli(s, ['snapshots', 'rm', snap.id]);
      const id = (JSON.parse(await readFile(join(s, 'store.json'), 'utf8').catch(() => '{}')) as { id?: string }).id;
      if (id) await rm(join('/dev/shm/ferry', id), { recursive: true, force: true });
    }
    await inst?.cleanup().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  const replicate = async (extra: string[] = []): Promise<ReplicateResult> => {
    const r = await ferryCli(src, ['replicate', 'mc', '--to', agent!.url, '--to-token-file', tokenFile, '--json', ...extra]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    return JSON.parse(r.stdout) as ReplicateResult;
  };

  /** One 5 % burst of rewritten pages (memcheck counts them in DIR/dirtied). */
  const dirty = async (bursts: number): Promise<void> => {
    process.kill(pid, 'SIGUSR2');
    const deadline = Date.now() + 20_000;
    while (Number((await readFile(join(inst!.statusDir!, 'dirtied'), 'utf8').catch(() => '0')).trim()) < bursts) {
      assert.ok(Date.now() < deadline, 'memcheck did its burst');
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  it('sends the whole workload first, then only what changed; one whole replica is kept, and it restores and verifies', async () => {
    const first = await replicate();
    assert.equal(first.key, 'w.mc');
    assert.equal(first.parent, undefined, 'the first replica is whole');
    assert.ok(first.bytesSent > MIB * 2 ** 20 * 0.9, `first: ${first.bytesSent} bytes`);
    assert.ok(first.pages >= PAGES, `${first.pages} pages dumped`);

    await dirty(1);
    const second = await replicate();
    assert.equal(second.parent, first.destination.snapshot, 'the second builds on the first');
    assert.equal(second.replaced, first.destination.snapshot);
    // 5 % of the pages changed: the rest were there already.
    assert.ok(second.pagesHeld >= PAGES * 0.9, `${second.pagesHeld} of ${second.pages} pages held`);
    assert.ok(second.bytesSent < second.flatBytes * 0.15, `second: ${second.bytesSent} of ${second.flatBytes} bytes`);
    assert.ok(second.bytesSent >= PAGES * 0.05 * 4096 * 0.9, `the rewritten pages travel (${second.bytesSent} bytes)`);
    await inst!.verify(pid);

    // The destination keeps one replica, whole (the first folded into it when it was removed).
    const snaps = await ls(agent!.store);
    assert.deepEqual(snaps.map((s) => [s.id, s.parent]), [[second.destination.snapshot, null]]);

    // The replica is the workload as it was: restored on B (the original stopped first), it verifies.
    await ferryOk(src, ['stop', 'mc']);
    const restored = JSON.parse(await ferryOk(agent!.store, ['restore', second.destination.snapshot, '--json'])) as { pid: number };
    await inst!.verify(restored.pid);
    await ferryOk(agent!.store, ['stop', 'mc']);
  });

  it('a destination without the replica (removed there) gets a whole one; a wrong token changes nothing', async () => {
    // Another instance under the same name.
    await inst!.cleanup().catch(() => undefined);
    inst = await memcheckWorkload({ mib: MIB, seed: 4 }).prepare(join(dir, 'w'));
    pid = (JSON.parse(await ferryOk(src, ['run', '--name', 'mc', '--json', '--', ...inst.command])) as { pid: number }).pid;
    await inst.waitReady(60_000);
    const before = await ls(agent!.store);
    const bad = join(dir, 'bad-token');
    await writeFile(bad, 'not-the-token\n', { mode: 0o600 });
    const r = await ferryCli(src, ['replicate', 'mc', '--to', agent!.url, '--to-token-file', bad, '--json']);
    assert.notEqual(r.code, 0);
    assert.match(r.stdout + r.stderr, /ERR_UNAUTHORIZED/);
    assert.deepEqual(await ls(agent!.store), before, 'nothing changed on the destination');
    assert.deepEqual(await ls(src), [], 'nothing left on the source');
    await inst.verify(pid);

    for (const s of before) await ferryOk(agent!.store, ['snapshots', 'rm', s.id]);
    const again = await replicate(['--tier', 'memory']);
    assert.equal(again.parent, undefined, 'the replica was gone: sent whole');
    assert.ok(again.bytesSent > MIB * 2 ** 20 * 0.9);
    assert.deepEqual((await ls(agent!.store)).map((s) => s.id), [again.destination.snapshot]);
    assert.deepEqual(await ls(src), [], 'nothing left on the source');
  });
});
