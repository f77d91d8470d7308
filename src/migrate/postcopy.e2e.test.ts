// Post-copy migration end to end on loopback (root, real CRIU, ferry-uffd): two agents with
// their own stores; a memcheck workload that rewrites its pages flat out moves with
// --strategy postcopy and verifies every page on the destination; then the page stream is cut
// in the post-copy window: the destination's copy is stopped, the error is
// ERR_POSTCOPY_SOURCE_LOST with the pages still remote, and --snapshot-first restores the
// workload on the source, where it verifies.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FERRY, ferryCli, ferryOk } from '../testing/ferry-cli.js';
import { agentListening } from '../testing/agent-process.js';
import { startProxy } from '../testing/tcp-proxy.js';
import { memcheckWorkload } from '../testing/workloads.js';

interface AgentProc { child: ChildProcess; url: string; store: string }

function pidsWith(marker: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    let cmd: string;
    try { cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8'); } catch { continue; }
    if (cmd.includes(marker) && !cmd.startsWith('unshare\0')) out.push(Number(p));
  }
  return out;
}

describe('ferry migrate --strategy postcopy between two agents on loopback', { timeout: 300_000 }, () => {
  let dir = '';
  let tokenFile = '';
  let a: AgentProc | undefined;
  let b: AgentProc | undefined;
  const instances: { cleanup(): Promise<void> }[] = [];
  const workloads: { store: string; name: string }[] = [];

  const startAgentProc = async (name: string): Promise<AgentProc> => {
    const store = join(dir, name);
    const child = spawn(FERRY, ['--store', store, 'agent', '--listen', '127.0.0.1:0', '--token-file', tokenFile, '--log-file', join(dir, `${name}.log`), '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    return { child, url: await agentListening(child), store };
  };
  const launch = async (store: string, name: string, mib: number) => {
    const inst = await memcheckWorkload({ mib, rate: 0 }).prepare(join(dir, 'w'));
    instances.push(inst);
    const pid = (JSON.parse(await ferryOk(store, ['run', '--name', name, '--json', '--', ...inst.command])) as { pid: number }).pid;
    workloads.push({ store, name });
    await inst.waitReady();
    return { inst, pid, marker: inst.statusDir ?? inst.dir };
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-postcopy-e2e-'));
    tokenFile = join(dir, 'token');
    await writeFile(tokenFile, `${randomBytes(24).toString('hex')}\n`, { mode: 0o600 });
    await mkdir(join(dir, 'w'));
    a = await startAgentProc('a');
    b = await startAgentProc('b');
  });

  after(async () => {
    for (const w of workloads) await ferryCli(w.store, ['stop', w.name]);
    for (const x of [a, b]) {
      if (!x) continue;
      x.child.kill('SIGTERM');
      await new Promise((r) => { x.child.once('exit', r); setTimeout(r, 10_000); });
    }
    for (const i of instances) await i.cleanup().catch(() => undefined);
    for (const s of [a?.store, b?.store].filter((x): x is string => x !== undefined)) {
      const ls = await ferryCli(s, ['snapshots', 'ls', '--json']);
      const ids = ls.code === 0 ? (JSON.parse(ls.stdout) as { snapshots: { id: string }[] }).snapshots.map((x) => x.id) : [];
      for (const id of ids) await ferryCli(s, ['snapshots', 'rm', id]);
      const storeId = (JSON.parse(await readFile(join(s, 'store.json'), 'utf8').catch(() => '{}')) as { id?: string }).id;
      if (storeId) await rm(join('/dev/shm/ferry', storeId), { recursive: true, force: true });
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('moves a workload that rewrites its memory flat out: it runs on B before its memory has moved, and every page verifies', { timeout: 120_000 }, async () => {
    const w = await launch(a!.store, 'pc', 128);
    const r = await ferryCli(a!.store, ['migrate', '--strategy', 'postcopy', 'pc', '--to', b!.url, '--to-token-file', tokenFile, '--json']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const out = JSON.parse(r.stdout) as { ok: boolean; strategy: string; downtimeMs: number; totalMs: number; bytesMoved: number; destination: { pid: number; name: string }; details?: { postcopy?: { windowMs?: number; pages?: number; remainingPages?: number; faults?: number; state?: string; bytes?: number } } };
    assert.equal(out.strategy, 'postcopy');
    const pc = out.details?.postcopy;
    assert.equal(pc?.state, 'done', JSON.stringify(out.details));
    assert.equal(pc?.remainingPages, 0);
    // The lazy part is the workload's memory: most of the 128 MiB moved after the commit, not in the images.
    assert.ok((pc?.pages ?? 0) * 4096 > 100 * 2 ** 20, `lazy pages: ${pc?.pages}`);
    const imageBytes = out.bytesMoved - (pc?.bytes ?? 0);
    assert.ok(imageBytes > 0 && imageBytes < 32 * 2 ** 20, `the images before the commit are small: ${imageBytes} bytes`);
    assert.ok((pc?.bytes ?? 0) >= (pc?.pages ?? 0) * 4096, 'every lazy page came over the page stream');
    assert.ok(out.downtimeMs > 0 && out.downtimeMs < out.totalMs);
    await w.inst.verify(out.destination.pid);
    assert.deepEqual(pidsWith(w.marker), [out.destination.pid], 'one live copy: on B');
    await ferryOk(b!.store, ['stop', 'pc']);
    // Reported for the record (node:test's diagnostics): the downtime and the post-copy window.
    console.log(`# postcopy 128 MiB memcheck (rate 0): downtime ${out.downtimeMs} ms, window ${pc?.windowMs} ms, ${pc?.faults} faults, total ${out.totalMs} ms`);
  });

  it('the page stream cut in the window: B stops its copy, ERR_POSTCOPY_SOURCE_LOST counts the pages still remote, --snapshot-first restores it on A', { timeout: 120_000 }, async () => {
    const w = await launch(a!.store, 'pcl', 128);
    const proxy = await startProxy(Number(new URL(b!.url).port));
    try {
      // Cut the page stream (the upgraded connection) once 16 MiB of pages went through it.
      proxy.fault = { only: /^GET \/v1\/migrations\/m-[0-9a-f]{16}\/pages /, afterBytes: 16 * 2 ** 20, action: 'cut' };
      const r = await ferryCli(a!.store, ['migrate', '--strategy', 'postcopy', '--snapshot-first', 'pcl', '--to', `http://127.0.0.1:${proxy.port}`, '--to-token-file', tokenFile, '--json']);
      assert.notEqual(r.code, 0, r.stdout);
      assert.ok(proxy.fired, 'the cut happened');
      const err = JSON.parse(r.stdout || r.stderr) as { error?: { code: string; message: string } };
      assert.equal(err.error?.code, 'ERR_POSTCOPY_SOURCE_LOST', r.stdout + r.stderr);
      const m = /with (\d+) of (\d+) pages still on the source/.exec(err.error?.message ?? '');
      assert.ok(m && Number(m[1]) > 0 && Number(m[1]) < Number(m[2]), err.error?.message);
      assert.match(err.error?.message ?? '', /restored on the source from snapshot/);
      // Exactly one live copy: the one restored on A, and it verifies.
      const live = pidsWith(w.marker);
      assert.equal(live.length, 1, `live copies: ${live.join(',')}`);
      const psA = JSON.parse(await ferryOk(a!.store, ['ps', '--json'])) as { workloads: { name: string; state: string; pid: number }[] };
      const rec = psA.workloads.find((x) => x.name === 'pcl');
      assert.equal(rec?.state, 'running');
      assert.equal(rec?.pid, live[0]);
      await w.inst.verify(live[0]!);
      const psB = JSON.parse(await ferryOk(b!.store, ['ps', '--json'])) as { workloads: { name: string; state: string }[] };
      assert.ok(!psB.workloads.some((x) => x.name === 'pcl' && x.state === 'running'), 'nothing runs on B');
    } finally {
      await proxy.close();
    }
  });
});
