// `ferry run --ip`: a TCP echo server with a service address, inside a network namespace of the
// test's own (the CLI runs under `nsenter --net=`), reached by a client in a second namespace;
// stop, a failed start and a workload that ended remove the address. One real-CRIU check: the
// service address is taken down and put back held around a --tcp-established checkpoint and
// restore, and the client's connection survives.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { addServiceAddress, hasAddress, holdInbound, listHolds, releaseInbound, removeServiceAddress, announce } from '../net/service-address.js';
import { connectOnce, ECHO_SERVER, inNetns, makeNetnsPair, type NetnsPair } from '../net/testing-netns.js';
import { FERRY, type Ran } from '../testing/ferry-cli.js';
import { OwnedPids, waitFor } from '../testing/processes.js';
import { PROJECT_ROOT } from '../criu/binary.js';
import { attachWorkloadAddress } from '../targets/workload-address.js';

let pair: NetnsPair;
const pids = new OwnedPids();
const children: ChildProcess[] = [];
const cleanups: (() => Promise<void>)[] = [];
before(async () => { pair = await makeNetnsPair('ip'); });
after(async () => {
  pids.killAll();
  for (const c of children) c.kill('SIGKILL');
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await pair.cleanup();
});

async function tempStore(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'ferry-runip-'));
  cleanups.push(() => rm(d, { recursive: true, force: true }));
  return d;
}

/** bin/ferry in namespace A. */
function ferryIn(store: string, args: string[]): Promise<Ran> {
  return new Promise((resolve) => {
    execFile('nsenter', [`--net=/run/netns/${pair.a}`, '--', FERRY, '--store', store, ...args], { cwd: PROJECT_ROOT, timeout: 120_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

async function ferryInOk(store: string, args: string[]): Promise<string> {
  const r = await ferryIn(store, args);
  assert.equal(r.code, 0, `ferry ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

interface PsAddress { address: string; prefix: number; dev: string; state: string; removedAt: string | null }
async function psAddress(store: string, name: string): Promise<PsAddress | null | undefined> {
  const rows = (JSON.parse(await ferryInOk(store, ['ps', '--json'])) as { workloads: { name: string; address: PsAddress | null }[] }).workloads;
  return rows.find((r) => r.name === name)?.address;
}

async function runEcho(store: string, name: string, ip: string, port: number, extra: string[] = []): Promise<{ pid: number; address: { address: string; prefix: number; dev: string } }> {
  const r = JSON.parse(await ferryInOk(store, ['run', '--name', name, '--ip', ip, ...extra, '--json', '--', process.execPath, '-e', ECHO_SERVER, ip.split('/')[0] ?? '', String(port)])) as { pid: number; address: { address: string; prefix: number; dev: string } };
  pids.add(r.pid);
  return r;
}

/** Until a client from namespace B gets its line echoed by host:port (the server is up). */
async function reachable(host: string, port: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  let last = '';
  while (Date.now() < deadline) {
    last = await connectOnce(pair.b, host, port, 1000);
    if (last === 'echoed') return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`${host}:${port} never echoed from namespace B (last: ${last})`);
}

describe('ferry run --ip (real namespaces)', () => {
  it('the service address is up while the workload runs, a client elsewhere reaches it, and stop removes it', async () => {
    const store = await tempStore();
    const ip = pair.at(100);
    const r = await runEcho(store, 'echo', ip, 7001);
    assert.deepEqual(r.address, { address: ip, prefix: 24, dev: pair.devA });
    assert.ok(await hasAddress(ip, { netns: pair.a }));
    await reachable(ip, 7001);
    assert.deepEqual(await psAddress(store, 'echo'), { address: ip, prefix: 24, dev: pair.devA, state: 'up', removedAt: null });
    // A second workload may not take the same address.
    const dup = await ferryIn(store, ['run', '--name', 'dup', '--ip', ip, '--', 'sleep', '10']);
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /already an address of this host/);
    assert.equal(await psAddress(store, 'dup'), undefined, 'no record for the refused one');

    const stop = JSON.parse(await ferryInOk(store, ['stop', 'echo', '--json'])) as { address: { address: string; removed: boolean } };
    assert.deepEqual(stop.address, { address: ip, removed: true });
    assert.equal(await hasAddress(ip, { netns: pair.a }), false);
    assert.equal((await psAddress(store, 'echo'))?.state, 'removed');
    assert.notEqual(await connectOnce(pair.b, ip, 7001, 700), 'echoed');
  });

  it('a start that fails leaves no address; --ip-dev and /PREFIX are honoured', async () => {
    const store = await tempStore();
    const dir = await tempStore();
    const bad = join(dir, 'bad-interp.sh');
    await writeFile(bad, '#!/no/such/interpreter\n');
    await chmod(bad, 0o755);
    const ip = pair.at(101);
    const r = await ferryIn(store, ['run', '--name', 'bad', '--ip', ip, '--', bad]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /failed to execute/);
    assert.equal(await hasAddress(ip, { netns: pair.a }), false, 'the address went with the failed start');
    const bogus = await ferryIn(store, ['run', '--name', 'bad2', '--ip', ip, '--ip-dev', 'nope0', '--', 'sleep', '5']);
    assert.equal(bogus.code, 1);
    assert.match(bogus.stderr, /no interface 'nope0'/);

    const ok = await runEcho(store, 'lo32', `${ip}/32`, 7002, ['--ip-dev', pair.devA]);
    assert.deepEqual(ok.address, { address: ip, prefix: 32, dev: pair.devA });
    await reachable(ip, 7002);
    await ferryInOk(store, ['stop', 'lo32']);
    assert.equal(await hasAddress(ip, { netns: pair.a }), false);
  });

  it('a workload that ended on its own keeps its address until ferry looks (ps), then it goes', async () => {
    const store = await tempStore();
    const ip = pair.at(102);
    const r = JSON.parse(await ferryInOk(store, ['run', '--name', 'brief', '--ip', ip, '--json', '--', 'sleep', '0.3'])) as { pid: number };
    pids.add(r.pid);
    await waitFor(() => { try { process.kill(r.pid, 0); return false; } catch { return true; } }, 5000, 'the workload to end');
    assert.ok(await hasAddress(ip, { netns: pair.a }), 'nobody looked yet');
    const a = await psAddress(store, 'brief');
    assert.equal(a?.state, 'removed');
    assert.equal(await hasAddress(ip, { netns: pair.a }), false);
  });

  it('CRIU: checkpoint --tcp-established, address down, held up again, restore, release: the client\'s connection lives on', async () => {
    const store = await tempStore();
    const ip = pair.at(103);
    const port = 7003;
    await runEcho(store, 'svc', ip, port);
    await reachable(ip, port);
    // One connection for the whole test: a line every 50 ms, every echo printed.
    const client = spawn('nsenter', [`--net=/run/netns/${pair.b}`, '--', process.execPath, '-e', `
      const s = require('net').connect({ host: '${ip}', port: ${port} });
      let n = 0;
      s.on('connect', () => setInterval(() => s.write('line ' + (n++) + '\\n'), 50));
      s.setEncoding('utf8');
      s.on('data', (d) => process.stdout.write(d));
      s.on('error', (e) => { console.log('ERROR ' + e.code); process.exit(1); });
      s.on('close', () => { console.log('CLOSED'); process.exit(1); });
    `], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(client);
    let got = '';
    client.stdout.setEncoding('utf8');
    client.stdout.on('data', (d: string) => { got += d; });
    const echoes = (): number => (got.match(/^line \d+$/gm) ?? []).length;
    await waitFor(() => echoes() >= 5, 5000, 'echoes before the checkpoint');

    const snap = (JSON.parse(await ferryInOk(store, ['checkpoint', 'svc', '--tcp-established', '--tier', 'disk', '--json'])) as { snapshot: string }).snapshot;
    const before = echoes();
    // CRIU's dump left its own per-connection lock (iptables DROPs in this namespace) for the
    // restore to lift. A destination host never saw those: flush them (this namespace holds no
    // other rules), so only ferry's hold stands between the client and a RST.
    const locks = await inNetns(pair.a, 'iptables', ['-w', '5', '-S']);
    assert.match(locks, /-j DROP/, 'CRIU locked the connection at dump');
    for (const chain of ['INPUT', 'OUTPUT']) await inNetns(pair.a, 'iptables', ['-w', '5', '-F', chain]);
    // As a migration does: the address leaves (source) and comes back held (destination).
    await removeServiceAddress({ address: ip }, { netns: pair.a });
    await holdInbound(ip, { netns: pair.a });
    const a = await addServiceAddress(ip, { netns: pair.a });
    await new Promise((r) => setTimeout(r, 300)); // the client retransmits into the hold meanwhile
    try {
      const restored = JSON.parse(await ferryInOk(store, ['restore', snap, '--json'])) as { pid: number };
      pids.add(restored.pid);
    } finally {
      await releaseInbound(ip, { netns: pair.a });
    }
    await announce(ip, a.dev, { netns: pair.a });
    await waitFor(() => echoes() >= before + 5 || /ERROR|CLOSED/.test(got), 15_000, 'echoes after the restore');
    assert.doesNotMatch(got, /ERROR|CLOSED/, 'the connection was not reset');
    assert.ok(echoes() >= before + 5, `echoes went on after the restore (${before} → ${echoes()})`);
    assert.deepEqual(await listHolds({ netns: pair.a }), [], 'no hold rule left');
    client.kill('SIGKILL');
    // The restore wrote the record without the address (as a destination's does): attached
    // afterwards, the workload's stop removes it.
    assert.equal(await psAddress(store, 'svc'), null, 'the restore recorded no address');
    await attachWorkloadAddress(join(store, 'workloads'), 'svc', a, { netnsPath: `/run/netns/${pair.a}` });
    assert.equal((await psAddress(store, 'svc'))?.state, 'up');
    const stop = JSON.parse(await ferryInOk(store, ['stop', 'svc', '--json'])) as { address: unknown };
    assert.deepEqual(stop.address, { address: ip, removed: true });
    assert.equal(await hasAddress(ip, { netns: pair.a }), false);
  });
});
