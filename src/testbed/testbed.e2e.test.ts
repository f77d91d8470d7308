// The testbed end to end (root): `ferry testbed up` makes real namespaces, veths, a bridge, tbf
// qdiscs and agents; the agents answer from inside their hosts and across the bridge; a transfer
// h1 → h2 runs at the shaped rate; `exec` keeps cwd and exit codes; `down` leaves nothing behind,
// also after a crash (agents SIGKILLed, record deleted) and after a half-finished `up`.
// Its namespaces carry their own prefix (ferry-tbt-), so a user's testbed is never touched.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { access, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FERRY, ferryOk, ferryRefused } from '../testing/ferry-cli.js';
import { cidrRange } from './plan.js';
import { statePath } from './state.js';
import { testbedDown, testbedUp, type UpResult } from './testbed.js';

const PREFIX = 'ferry-tbt-';
const NAMES = ['h1', 'h2', 'sw'].map((n) => PREFIX + n);

interface Ran { code: number; stdout: string; stderr: string }

function run(file: string, args: string[], o: { env?: Record<string, string>; cwd?: string } = {}): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(file, args, { env: { ...process.env, ...o.env }, cwd: o.cwd ?? process.cwd(), timeout: 60_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

const ourNamespaces = async () => (await run('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith(PREFIX));
const rootLinks = async () => (JSON.parse((await run('ip', ['-j', 'link', 'show'])).stdout) as { ifname: string }[]).map((l) => l.ifname).sort();
const rootQdiscs = async () => (await run('tc', ['qdisc', 'show'])).stdout;
/** The process's state letter ('S', 'R', …), or '' once it is gone (a zombie is gone). */
const alive = async (pid: number) => {
  const state = (await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')).replace(/^.*\) /s, '').split(' ')[0] ?? '';
  return state === 'Z' ? '' : state;
};
const gone = async (p: string) => access(p).then(() => false, () => true);

describe('ferry testbed', { timeout: 120_000 }, () => {
  let dir = '';
  let scratch = '';
  let env: Record<string, string> = {};
  let up: UpResult | undefined;
  let linksBefore: string[] = [];
  let qdiscsBefore = '';
  const ferry = (args: string[], cwd?: string) => run(FERRY, args, { env, ...(cwd !== undefined ? { cwd } : {}) });
  const exec = (host: string, cmd: string[], cwd?: string) => ferry(['testbed', 'exec', host, '--', ...cmd], cwd);
  /** Node's fetch of an agent's /v1/health, run inside a host; prints status and body. */
  const healthFrom = (host: string, url: string, withToken = true) => exec(host, [process.execPath, '-e',
    `fetch(process.argv[1] + '/v1/health', { headers: ${withToken ? "{ authorization: 'Bearer ' + process.env.FERRY_TOKEN }" : '{}'}, signal: AbortSignal.timeout(5000) })` +
    '.then(async (r) => console.log(r.status, await r.text()), (e) => { console.log(0, String(e.cause?.code ?? e)); })', url]);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-testbed-e2e-'));
    scratch = await mkdtemp(join(tmpdir(), 'ferry-testbed-cwd-'));
    env = { FERRY_TESTBED_DIR: dir, FERRY_TESTBED_PREFIX: PREFIX, FERRY_AGENT: '' };
    // Leftovers of an earlier run of this test that was killed (the prefix is this test's own).
    await testbedDown({ dir, prefix: PREFIX });
    assert.deepEqual(await ourNamespaces(), []);
    linksBefore = await rootLinks();
    qdiscsBefore = await rootQdiscs();
  });

  after(async () => {
    // Whatever happened above, nothing of the testbed stays.
    await testbedDown({ dir, prefix: PREFIX }).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    await rm(scratch, { recursive: true, force: true });
  });

  it('refuses bad input clearly, and `down` with nothing up succeeds', async () => {
    for (const args of [['up', '--hosts', '0'], ['up', '--rate', 'fast'], ['up', '--delay', '-3'], ['frob'], ['up', 'extra']]) {
      const r = await ferry(['testbed', ...args]);
      assert.equal(r.code, 2, `testbed ${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^ferry: error: testbed/);
      assert.match(r.stderr, /\nhint: /);
    }
    await ferryRefused(scratch, ['testbed', 'exec', 'h1', '--', 'true'], /no testbed is up/, env);
    const down = await ferry(['testbed', 'down']);
    assert.equal(down.code, 0, down.stderr);
    assert.match(down.stdout, /no testbed was up/);
    assert.deepEqual(await ourNamespaces(), []);
  });

  it('up: hosts on a bridge in their own namespaces; each agent answers inside its host; h1 reaches h2; the root namespace is untouched', async () => {
    up = JSON.parse(await ferryOk(scratch, ['testbed', 'up', '--rate', '100mbit', '--json'], env)) as UpResult;
    const [lo] = cidrRange(up.subnet)!;
    assert.equal(up.hosts.length, 2);
    assert.equal(up.rate, '100mbit');
    assert.deepEqual(up.hosts.map((h) => h.name), ['h1', 'h2']);
    up.hosts.forEach((h, i) => {
      assert.equal(cidrRange(h.address)![0], lo + i + 1, 'hosts take the low addresses');
      assert.equal(h.agent, `http://${h.address}:7387`);
    });
    assert.equal((await stat(up.token)).mode & 0o777, 0o600);
    assert.deepEqual((await ourNamespaces()).sort(), [...NAMES].sort());
    // Each agent answers from inside its own host, for its own store; h1 reaches h2's agent too.
    for (const [from, to] of [[0, 0], [1, 1], [0, 1]] as const) {
      const r = await healthFrom(`h${from + 1}`, up.hosts[to]!.agent);
      assert.equal(r.code, 0, r.stderr);
      const [status, ...body] = r.stdout.trim().split(' ');
      assert.equal(status, '200', r.stdout);
      assert.equal((JSON.parse(body.join(' ')) as { store: string }).store, up.hosts[to]!.store);
    }
    // The token is required.
    assert.match((await healthFrom('h1', up.hosts[1]!.agent, false)).stdout, /^401 /);
    // The machine's namespace has no link, address or specific route of the testbed.
    assert.deepEqual(await rootLinks(), linksBefore);
    const [subLo, subHi] = cidrRange(up.subnet)!;
    const routes = (JSON.parse((await run('ip', ['-j', '-4', 'route', 'show', 'table', 'all'])).stdout) as { dst: string }[]).map((r) => r.dst).filter((d) => d !== 'default');
    for (const r of routes) {
      const range = cidrRange(r);
      if (range) assert.ok(range[1] < subLo || range[0] > subHi, `root route ${r} overlaps ${up.subnet}`);
    }
    assert.doesNotMatch((await run('ip', ['-4', 'addr', 'show'])).stdout, new RegExp(`inet ${up.hosts[0]!.address.replace(/\.\d+$/, '').replaceAll('.', '\\.')}\\.`));
  });

  it('every link is shaped with tbf at the rate on both ends, and status says so', async () => {
    for (const h of ['h1', 'h2']) {
      for (const [ns, dev] of [[PREFIX + h, 'eth0'], [PREFIX + 'sw', h]] as const) {
        const q = JSON.parse((await run('tc', ['-n', ns, '-j', 'qdisc', 'show', 'dev', dev])).stdout) as { kind: string; options?: { rate?: number } }[];
        assert.equal(q[0]?.kind, 'tbf', `${ns} ${dev}: ${JSON.stringify(q)}`);
        assert.equal(q[0]?.options?.rate, 100e6 / 8, `${ns} ${dev} at 100mbit`);
      }
    }
    const s = JSON.parse((await ferry(['testbed', 'status', '--json'])).stdout) as { up: boolean; healthy: boolean; hosts: { agentAlive: boolean; agentHealthy: boolean }[] };
    assert.equal(s.up, true);
    assert.equal(s.healthy, true, JSON.stringify(s));
    assert.ok(s.hosts.every((h) => h.agentAlive && h.agentHealthy));
  });

  it('shaping works: 20 MB from h1 to h2 at 100mbit goes at about 12 MB/s, not at veth speed (GB/s)', async () => {
    const h2 = up!.hosts[1]!.address;
    const bytes = 20e6;
    // The receiver times from its first byte to the end, so start-up costs are not counted.
    const server = spawn(FERRY, ['testbed', 'exec', 'h2', '--', process.execPath, '-e', `
      const s = require('net').createServer((c) => { let n = 0, t0 = 0;
        c.on('data', (b) => { if (!t0) t0 = performance.now(); n += b.length; });
        c.on('end', () => { console.log(JSON.stringify({ n, ms: performance.now() - t0 })); s.close(); }); });
      s.listen(9100, '${h2}', () => console.log('ready'));
      setTimeout(() => process.exit(3), 20000).unref();`], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    const ready = new Promise<void>((resolve) => server.stdout.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('ready')) resolve(); }));
    const done = new Promise<number | null>((resolve) => server.once('close', resolve));
    await Promise.race([ready, done]);
    const send = await exec('h1', [process.execPath, '-e', `
      const c = require('net').connect(9100, '${h2}', () => { c.end(Buffer.alloc(${bytes}, 7)); });`]);
    assert.equal(send.code, 0, send.stderr);
    assert.equal(await done, 0, out);
    const r = JSON.parse(out.split('\n').find((l) => l.startsWith('{')) ?? '{}') as { n: number; ms: number };
    assert.equal(r.n, bytes);
    const mbPerSec = r.n / 1e6 / (r.ms / 1000);
    // 100 Mbit/s is 12.5 MB/s on the wire; an unshaped veth carries over 1 GB/s here.
    assert.ok(mbPerSec < 20 && mbPerSec > 5, `${mbPerSec.toFixed(1)} MB/s`);
  });

  it('exec: the host\'s namespace and ferry environment, the caller\'s cwd, exit codes and signals passed through', async () => {
    const h1 = up!.hosts[0]!;
    const r = await exec('h1', ['sh', '-c', 'pwd; echo "$FERRY_STORE|$FERRY_AGENT|${#FERRY_TOKEN}"; ip -4 -br addr show dev eth0'], scratch);
    assert.equal(r.code, 0, r.stderr);
    const [cwd, vars, addr] = r.stdout.trim().split('\n');
    assert.equal(cwd, scratch);
    assert.equal(vars, `${h1.store}|${h1.agent}|${(await readFile(up!.token, 'utf8')).trim().length}`);
    assert.match(addr ?? '', new RegExp(`${h1.address.replaceAll('.', '\\.')}/24`));
    assert.equal((await exec('h2', ['sh', '-c', 'exit 7'])).code, 7);
    assert.equal((await exec('h2', ['sh', '-c', 'kill -TERM $$'])).code, 128 + 15);
    // A command's own --help is its own.
    assert.equal((await exec('h2', ['sh', '-c', 'echo "$1"', 'sh', '--help'])).stdout, '--help\n');
    await ferryRefused(scratch, ['testbed', 'exec', 'h9', '--', 'true'], /no host 'h9'; the hosts are h1, h2/, env);
  });

  it('up on a running testbed refuses and changes nothing', async () => {
    await ferryRefused(scratch, ['testbed', 'up'], /a testbed is already up/, env);
    const s = JSON.parse((await ferry(['testbed', 'status', '--json'])).stdout) as { healthy: boolean };
    assert.equal(s.healthy, true);
  });

  it('down removes namespaces, links, qdiscs, agents, a workload running in a host, stores and a memory-tier snapshot', async () => {
    // A workload in h1 (ferry run, local) and a memory-tier snapshot of it taken through h1's agent.
    const w = await exec('h1', ['env', 'FERRY_AGENT=', FERRY, 'run', '--name', 'sleeper', '--json', '--', 'sleep', '1000']);
    assert.equal(w.code, 0, w.stderr);
    const workloadPid = (JSON.parse(w.stdout) as { pid: number }).pid;
    const c = await exec('h1', [FERRY, 'checkpoint', 'sleeper', '--tier', 'memory', '--leave-running', '--json']);
    assert.equal(c.code, 0, c.stderr);
    const snapshot = (JSON.parse(c.stdout) as { snapshot: string }).snapshot;
    const storeId = (JSON.parse(await readFile(join(up!.hosts[0]!.store, 'store.json'), 'utf8')) as { id: string }).id;
    const tier = join(process.env['FERRY_MEMORY_TIER'] || '/dev/shm/ferry', storeId);
    assert.equal(await gone(join(tier, snapshot)), false, 'the snapshot is in the memory tier');
    assert.equal(await alive(workloadPid), 'S');

    const r = await ferry(['testbed', 'down', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const d = JSON.parse(r.stdout) as { wasUp: boolean; namespaces: string[]; agentsStopped: number; processesKilled: number; memoryTiers: string[] };
    assert.equal(d.wasUp, true);
    assert.deepEqual(d.namespaces.sort(), [...NAMES].sort());
    assert.equal(d.agentsStopped, 2, 'both agents ended on SIGTERM');
    assert.ok(d.processesKilled >= 1, 'the workload was killed');
    assert.deepEqual(d.memoryTiers, [tier]);
    assert.equal(await alive(workloadPid), '', 'the workload is gone');
    assert.equal(await gone(tier), true, 'the memory tier is gone');
    await assertNothingLeft(up!);
  });

  it('down after a crash (agents SIGKILLed, record gone, a stray process in h2) still removes everything', async () => {
    const crashed = await testbedUp({ dir, prefix: PREFIX, hosts: 2 });
    assert.equal(crashed.rate, '1gbit');
    for (const h of crashed.hosts) process.kill(h.agentPid, 'SIGKILL');
    await rm(statePath(dir));
    const stray = spawn('nsenter', [`--net=/run/netns/${PREFIX}h2`, 'sleep', '1000'], { detached: true, stdio: 'ignore' });
    stray.unref();
    await new Promise((r) => stray.once('spawn', r));
    const d = await testbedDown({ dir, prefix: PREFIX });
    assert.equal(d.wasUp, true);
    assert.deepEqual(d.namespaces.sort(), [...NAMES].sort());
    assert.ok(d.processesKilled >= 1, 'the stray process was killed');
    assert.equal(await alive(stray.pid!), '');
    await assertNothingLeft(crashed);
  });

  it('a half-finished up removes what it made (here: --delay, which needs netem)', async () => {
    const r = await ferry(['testbed', 'up', '--delay', '5', '--json']);
    if (r.code === 0) {
      // A kernel with netem: the delay is on each host's egress.
      const q = (await run('tc', ['-n', `${PREFIX}h1`, 'qdisc', 'show', 'dev', 'eth0'])).stdout;
      assert.match(q, /netem .*delay 5ms/);
      assert.match(q, /tbf /);
      const d = await testbedDown({ dir, prefix: PREFIX });
      await assertNothingLeft({ hosts: d.stores.map((store) => ({ store, agentPid: 0 })) });
    } else {
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^ferry: error: testbed: adding a 5 ms delay on eth0 failed/);
      assert.match(r.stderr, /netem/);
      assert.deepEqual(await ourNamespaces(), [], 'the namespaces made before the failure are gone');
      assert.equal(await gone(join(dir, 'hosts')), true);
      assert.equal(await gone(join(dir, 'token')), true);
    }
  });

  async function assertNothingLeft(t: { hosts: { store: string; agentPid: number }[] }) {
    assert.deepEqual(await ourNamespaces(), [], 'no namespace');
    assert.deepEqual(await rootLinks(), linksBefore, 'no link in the root namespace');
    assert.equal(await rootQdiscs(), qdiscsBefore, 'no qdisc in the root namespace');
    assert.doesNotMatch(await readFile('/proc/self/mountinfo', 'utf8'), new RegExp(`/run/netns/${PREFIX}`), 'no namespace mount');
    for (const h of t.hosts) {
      if (h.agentPid) assert.equal(await alive(h.agentPid), '', `agent ${h.agentPid} is gone`);
      assert.equal(await gone(h.store), true, `store ${h.store} is gone`);
    }
    // No memory tier whose back-pointer names a store of this testbed.
    const base = process.env['FERRY_MEMORY_TIER'] || '/dev/shm/ferry';
    const tiers = (await run('sh', ['-c', `cat ${base}/*/.ferry-store.json 2>/dev/null || true`])).stdout;
    assert.ok(!tiers.includes(dir), `a memory tier of ${dir} is left: ${tiers}`);
    assert.equal(await gone(statePath(dir)), true);
    // No process of ours is left in any network namespace of the testbed (they are all gone), and no agent of this dir runs.
    const agents = (await run('pgrep', ['-f', `${dir}/hosts/`])).stdout.trim();
    assert.equal(agents, '', `processes of the testbed left: ${agents}`);
  }
});
