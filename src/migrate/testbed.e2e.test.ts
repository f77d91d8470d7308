// Live migration on the testbed (root, real CRIU, network namespaces on a 1 Gbit/s bridge):
// redis-server started with `ferry run --ip` on h1, holding data, under a client's load from h3
// on one established connection, migrates to h2 with `--tcp-established` through h1's agent, once per strategy of the conformance suite.
// The client's connection survives (no INCR lost, no reconnect), every key verifies on h2, the
// service address moved, and neither host keeps a snapshot, a hold or a CRIU lock rule.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PROJECT_ROOT } from '../criu/binary.js';
import { FERRY } from '../testing/ferry-cli.js';
import { testbedDown, testbedUp, type UpResult } from '../testbed/testbed.js';
import { hostRuntimeEnv } from '../testbed/state.js';
import { CONFORMANCE_STRATEGIES } from './conformance.js';

/** A record read while it may be half-written (a writer's temporary file, an empty one): {} then. */
function parseOr(text: string): unknown {
  try { return JSON.parse(text); } catch { return {}; }
}

const CLIENT = join(PROJECT_ROOT, 'test', 'workloads', 'redis-client.py');
const KEYS = 20_000;
const SIZE = 100;

interface Ran { code: number; stdout: string; stderr: string }

/** JSON out of a command's output, or an assertion naming the output. */
function parsed<T>(r: Ran, what: string): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    assert.fail(`${what} printed no JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
}

describe('live migration on the testbed: redis under load, h1 → h2 (every strategy, --tcp-established)', { timeout: 300_000 }, () => {
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

  // The conformance suite's redis case: the same move, with every strategy.
  for (const [i, strategy] of CONFORMANCE_STRATEGIES.entries()) it(`${strategy}: keeps the client connected, every key, the address; leaves nothing behind`, async (t) => {
    const service = tb!.subnet.replace(/\.0\/\d+$/, `.${120 + i}`);
    const name = `redis-${strategy}`;
    // One strategy's failure must not leave its redis (and port) to the next strategy's move.
    t.after(async () => { for (const h of ['h1', 'h2']) await on(h, ['env', 'FERRY_AGENT=', FERRY, 'stop', name]); });
    const run = JSON.parse(await ok('h1', [FERRY, 'run', '--name', name, '--ip', service, '--json', '--',
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

    const stop = join(dir, `stop-load-${strategy}`);
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
    const m = await on('h1', [FERRY, 'migrate', name, '--strategy', strategy, '--to', 'h2', '--tcp-established', '--json']);
    await new Promise((r) => setTimeout(r, 1000));
    await writeFile(stop, '');
    const client = await load;
    assert.equal(m.code, 0, m.stdout + m.stderr);
    const r = JSON.parse(m.stdout) as { ok: boolean; downtimeMs: number; bytesMoved: number; phases: Record<string, number>; destination: { pid: number; name: string }; details?: { postcopy?: { windowMs?: number; faults?: number } } };
    assert.equal(r.ok, true);
    const seen = JSON.parse(client.stdout) as { ops: number; counter: number; longestWaitMs: number; error: string | null };
    assert.equal(seen.error, null, `the client's connection broke: ${client.stdout}${client.stderr}`);
    assert.ok(seen.ops > 0, `the client ran its load: ${client.stdout}${client.stderr}`);
    assert.equal(seen.counter, seen.ops, 'every INCR of the one connection counted: the same connection, no reply lost');
    assert.ok(seen.longestWaitMs >= r.downtimeMs * 0.5, `the client saw the pause (${seen.longestWaitMs} ms for ${r.downtimeMs} ms of downtime)`);
    const pc = r.details?.postcopy;
    t.diagnostic(`${strategy}: redis ${KEYS} keys: downtime ${r.downtimeMs} ms, client-observed pause ${seen.longestWaitMs} ms, ${(r.bytesMoved / 2 ** 20).toFixed(1)} MiB moved${pc ? `, post-copy window ${pc.windowMs} ms (${pc.faults} faults)` : ''}; phases ${JSON.stringify(r.phases)}`);

    const verified = JSON.parse(await ok('h3', ['python3', CLIENT, service, '6379', 'verify', String(KEYS), String(SIZE)])) as { verified: number };
    assert.equal(verified.verified, KEYS);

    // The address moved; the source keeps no copy of it, no hold, no CRIU lock; the destination no hold.
    assert.doesNotMatch(await addresses('h1'), new RegExp(`${service.replace(/\./g, '\\.')}/`));
    assert.match(await addresses('h2'), new RegExp(`${service.replace(/\./g, '\\.')}/`));
    assert.deepEqual(await iptables('h1'), [], 'no rule left on the source');
    assert.deepEqual(await iptables('h2'), [], 'no rule left on the destination');
    const ps2 = JSON.parse(await ok('h2', [FERRY, 'ps', '--json'], local)) as { workloads: { name: string; state: string; pid: number; address?: { address: string } }[] };
    const w = ps2.workloads.find((x) => x.name === name);
    assert.equal(w?.state, 'running');
    assert.equal(w?.pid, r.destination.pid);
    assert.equal(w?.address?.address, service, 'the restored workload owns its address on h2');
    for (const h of ['h1', 'h2']) {
      const ls = JSON.parse(await ok(h, [FERRY, 'snapshots', 'ls', '--json'], local)) as { snapshots: unknown[] };
      assert.deepEqual(ls.snapshots, [], `no snapshot left on ${h}`);
    }
    await ok('h2', [FERRY, 'stop', name], local);
    assert.doesNotMatch(await addresses('h2'), new RegExp(`${service.replace(/\./g, '\\.')}/`), 'stop removes the address');
  });

  it('the destination agent killed during the restore: the client keeps its connection to the source; no address, hold or rule is left', async () => {
    const service = tb!.subnet.replace(/\.0\/\d+$/, '.101');
    await ok('h1', [FERRY, 'run', '--name', 'redis2', '--ip', service, '--json', '--',
      '/usr/bin/redis-server', '--port', '6380', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], local);
    const deadline = Date.now() + 15_000;
    while ((await on('h3', ['python3', CLIENT, service, '6380', 'fill', '2000', String(SIZE)])).code !== 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const stop = join(dir, 'stop-load-2');
    const load = new Promise<Ran>((resolve) => {
      const c = spawn(FERRY, ['testbed', 'exec', 'h3', '--', 'python3', CLIENT, service, '6380', 'load', stop], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      c.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
      c.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
      c.once('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    });
    await new Promise((r) => setTimeout(r, 500));
    const h2 = tb!.hosts.find((h) => h.name === 'h2')!;
    // Kill h2's agent the moment it starts restoring (its migration record says so).
    const watcher = setInterval(() => {
      void (async () => {
        for (const f of await readdir(join(h2.store, 'migrations')).catch(() => [] as string[])) {
          const rec = parseOr(await readFile(join(h2.store, 'migrations', f), 'utf8').catch(() => '{}')) as { state?: string };
          if (rec.state === 'restoring') { clearInterval(watcher); try { process.kill(h2.agentPid, 'SIGKILL'); } catch { /* gone */ } }
        }
      })();
    }, 2);
    const m = await on('h1', [FERRY, 'migrate', 'redis2', '--to', 'h2', '--tcp-established', '--json']);
    clearInterval(watcher);
    await new Promise((r) => setTimeout(r, 500));
    await writeFile(stop, '');
    const client = await load;
    assert.equal(m.code, 1, m.stdout + m.stderr);
    const e = parsed<{ error: { phase: string }; workload: string }>(m, 'migrate');
    assert.equal(e.workload, 'running on source');
    assert.equal(e.error.phase, 'restore');
    const seen = parsed<{ ops: number; counter: number; error: string | null }>(client, 'the load client');
    assert.equal(seen.error, null, 'the client kept its connection to the source');
    assert.equal(seen.counter, seen.ops);
    // h2's agent comes back, and removes what its predecessor had taken: the snapshot, the held address.
    const agent = spawn('nsenter', [`--net=/run/netns/ferry-tbm-h2`, '--', process.execPath, FERRY, '--store', h2.store, 'agent',
      '--listen', `${h2.address}:7387`, '--token-file', join(dir, 'token'), '--log-file', join(dir, 'h2-again.log')], { detached: true, stdio: 'ignore', env: { ...process.env, ...hostRuntimeEnv(dir, 'h2') } });
    agent.unref();
    const up = Date.now() + 15_000;
    while ((await on('h2', ['sh', '-c', `test -z "$(ls ${join(h2.store, 'migrations')} 2>/dev/null)"`])).code !== 0 && Date.now() < up) await new Promise((r) => setTimeout(r, 100));
    assert.doesNotMatch(await addresses('h2'), new RegExp(`${service.replace(/\./g, '\\.')}/`), 'no address left on h2');
    assert.deepEqual(await iptables('h2'), [], 'no hold or rule left on h2');
    assert.deepEqual(await iptables('h1'), [], 'CRIU unlocked the source when it resumed it');
    assert.match(await addresses('h1'), new RegExp(`${service.replace(/\./g, '\\.')}/`), 'the source keeps its address');
    const ls = JSON.parse(await ok('h2', [FERRY, 'snapshots', 'ls', '--json'], local)) as { snapshots: unknown[] };
    assert.deepEqual(ls.snapshots, []);
    await ok('h1', [FERRY, 'stop', 'redis2'], local);
  });
});
