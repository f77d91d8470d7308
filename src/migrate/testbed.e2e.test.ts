// Live migration on the testbed (root, real CRIU, network namespaces on a 1 Gbit/s bridge):
// redis-server started with `ferry run --ip` on h1, holding data, under a client's load from h3
// on one established connection, migrates to h2 with `--tcp-established` through h1's agent.
// The client's connection survives (no INCR lost, no reconnect), every key verifies on h2, the
// service address moved, and neither host keeps a snapshot, a hold or a CRIU lock rule.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PROJECT_ROOT } from '../criu/binary.js';
import { FERRY } from '../testing/ferry-cli.js';
import { testbedDown, testbedUp, type UpResult } from '../testbed/testbed.js';

const CLIENT = join(PROJECT_ROOT, 'test', 'workloads', 'redis-client.py');
const KEYS = 20_000;
const SIZE = 100;

interface Ran { code: number; stdout: string; stderr: string }

describe('live migration on the testbed: redis under load, h1 → h2 (cold, --tcp-established)', { timeout: 300_000 }, () => {
  let dir = '';
  let tb: UpResult | undefined;
  const env = () => ({ ...process.env, FERRY_TESTBED_DIR: dir, FERRY_TESTBED_PREFIX: 'ferry-tbm-' });
  /** `ferry testbed exec HOST -- CMD…`, captured. */
  const on = (host: string, cmd: string[]): Promise<Ran> => new Promise((resolve) => {
    execFile(FERRY, ['testbed', 'exec', host, '--', ...cmd], { env: env(), timeout: 120_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
  const ok = async (host: string, cmd: string[], mode: 'agent' | 'local' = 'agent'): Promise<string> => {
    // (exec sets the host's FERRY_AGENT; a command meant to run here, not through it, clears it)
    const r = await on(host, mode === 'local' ? ['env', 'FERRY_AGENT=', ...cmd] : cmd);
    assert.equal(r.code, 0, `${host}: ${cmd.join(' ')}\n${r.stdout}${r.stderr}`);
    return r.stdout;
  };
  const local = 'local' as const;
  const iptables = async (host: string) => (await ok(host, ['iptables', '-S'])).split('\n').filter((l) => l.startsWith('-A '));
  const addresses = async (host: string) => ok(host, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-tbm-'));
    tb = await testbedUp({ dir, prefix: 'ferry-tbm-', hosts: 3, rate: '1gbit' });
  });

  after(async () => {
    if (tb) await testbedDown({ dir, prefix: 'ferry-tbm-' });
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps the client connected, every key, the address; leaves nothing behind', async (t) => {
    const service = tb!.subnet.replace(/\.0\/\d+$/, '.100');
    const run = JSON.parse(await ok('h1', [FERRY, 'run', '--name', 'redis', '--ip', service, '--json', '--',
      '/usr/bin/redis-server', '--port', '6379', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], local)) as { pid: number; address: { address: string } };
    assert.equal(run.address.address, service);
    // Ready when it answers; then the data, from another host.
    const deadline = Date.now() + 15_000;
    let filled: Ran;
    do {
      filled = await on('h3', ['python3', CLIENT, service, '6379', 'fill', String(KEYS), String(SIZE)]);
      if (filled.code === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    } while (Date.now() < deadline);
    assert.equal(filled.code, 0, filled.stderr);

    const stop = join(dir, 'stop-load');
    const load = new Promise<Ran>((resolve) => {
      const c = spawn(FERRY, ['testbed', 'exec', 'h3', '--', 'python3', CLIENT, service, '6379', 'load', stop], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      c.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
      c.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
      c.once('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    });
    await new Promise((r) => setTimeout(r, 1000));

    // Through h1's agent (testbed exec sets FERRY_AGENT): the migration is a job there.
    const m = await on('h1', [FERRY, 'migrate', 'redis', '--to', 'h2', '--tcp-established', '--json']);
    await new Promise((r) => setTimeout(r, 1000));
    await writeFile(stop, '');
    const client = await load;
    assert.equal(m.code, 0, m.stdout + m.stderr);
    const r = JSON.parse(m.stdout) as { ok: boolean; downtimeMs: number; bytesMoved: number; phases: Record<string, number>; destination: { pid: number; name: string } };
    assert.equal(r.ok, true);
    const seen = JSON.parse(client.stdout) as { ops: number; counter: number; longestWaitMs: number; error: string | null };
    assert.equal(seen.error, null, `the client's connection broke: ${client.stdout}${client.stderr}`);
    assert.equal(seen.counter, seen.ops, 'every INCR of the one connection counted: the same connection, no reply lost');
    assert.ok(seen.longestWaitMs >= r.downtimeMs * 0.5, `the client saw the pause (${seen.longestWaitMs} ms for ${r.downtimeMs} ms of downtime)`);
    t.diagnostic(`redis ${KEYS} keys: downtime ${r.downtimeMs} ms, client-observed pause ${seen.longestWaitMs} ms, ${(r.bytesMoved / 2 ** 20).toFixed(1)} MiB moved; phases ${JSON.stringify(r.phases)}`);

    const verified = JSON.parse(await ok('h3', ['python3', CLIENT, service, '6379', 'verify', String(KEYS), String(SIZE)])) as { verified: number };
    assert.equal(verified.verified, KEYS);

    // The address moved; the source keeps no copy of it, no hold, no CRIU lock; the destination no hold.
    assert.doesNotMatch(await addresses('h1'), new RegExp(`${service.replace(/\./g, '\\.')}/`));
    assert.match(await addresses('h2'), new RegExp(`${service.replace(/\./g, '\\.')}/`));
    assert.deepEqual(await iptables('h1'), [], 'no rule left on the source');
    assert.deepEqual(await iptables('h2'), [], 'no rule left on the destination');
    const ps2 = JSON.parse(await ok('h2', [FERRY, 'ps', '--json'], local)) as { workloads: { name: string; state: string; pid: number; address?: { address: string } }[] };
    const w = ps2.workloads.find((x) => x.name === 'redis');
    assert.equal(w?.state, 'running');
    assert.equal(w?.pid, r.destination.pid);
    assert.equal(w?.address?.address, service, 'the restored workload owns its address on h2');
    for (const h of ['h1', 'h2']) {
      const ls = JSON.parse(await ok(h, [FERRY, 'snapshots', 'ls', '--json'], local)) as { snapshots: unknown[] };
      assert.deepEqual(ls.snapshots, [], `no snapshot left on ${h}`);
    }
    await ok('h2', [FERRY, 'stop', 'redis'], local);
    assert.doesNotMatch(await addresses('h2'), new RegExp(`${service.replace(/\./g, '\\.')}/`), 'stop removes the address');
  });
});
