// Service addresses, inbound holds and announcements on real network namespaces (root): two
// namespaces of the test's own, joined by a veth pair on a private /24.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { isFerryError } from '../util/errors.js';
import { listInterfaces } from './interfaces.js';
import { dropHeld, giveUp, reclaim, releaseAndAnnounce, takeHeld } from './address-moves.js';
import { addServiceAddress, announce, clearHolds, hasAddress, holdInbound, listHolds, releaseInbound, removeServiceAddress } from './service-address.js';
import { connectOnce, inNetns, makeNetnsPair, sh, startEchoServer, type NetnsPair } from './testing-netns.js';

let pair: NetnsPair;
const servers: ChildProcess[] = [];
before(async () => { pair = await makeNetnsPair('sa'); });
after(async () => {
  for (const s of servers) s.kill('SIGKILL');
  await pair.cleanup();
});

/** The namespace's IPv4 addresses as `addr/prefix dev`. */
async function addressesOf(ns: string): Promise<string[]> {
  return (await listInterfaces({ netns: ns })).addresses.map((a) => `${a.address}/${a.prefix} ${a.dev}`);
}

describe('service addresses (real network namespaces)', () => {
  it('adds on the interface whose subnet holds the address, with its prefix; removes idempotently', async () => {
    const addr = pair.at(50);
    const a = await addServiceAddress(addr, { netns: pair.a });
    assert.deepEqual(a, { address: addr, prefix: 24, dev: pair.devA });
    assert.ok((await addressesOf(pair.a)).includes(`${addr}/24 ${pair.devA}`));
    assert.ok(!(await addressesOf(pair.b)).some((l) => l.startsWith(`${addr}/`)), 'only the namespace asked for has it');
    // The other namespace finds it (an ARP request for it gets an answer; arping exits 0).
    await inNetns(pair.b, 'arping', ['-q', '-f', '-c', '3', '-w', '3', '-I', pair.devB, addr]);
    assert.deepEqual(await removeServiceAddress(a, { netns: pair.a }), { removed: true });
    assert.equal(await hasAddress(addr, { netns: pair.a }), false);
    assert.deepEqual(await removeServiceAddress(a, { netns: pair.a }), { removed: false }, 'a second removal is no error');
    assert.deepEqual(await removeServiceAddress({ address: addr, dev: 'no-such-dev' }, { netns: pair.a }), { removed: false });
  });

  it('an address outside every subnet goes on the default route\'s interface as /32; an explicit dev and prefix are kept', async () => {
    await assert.rejects(addServiceAddress('192.168.254.77', { netns: pair.a }), (e) => isFerryError(e, 'ERR_ADDRESS') && /no subnet of this host holds it and there is no default route/.test(e.message) && /--ip-dev/.test(e.hint ?? ''));
    await sh('ip', ['-n', pair.a, 'route', 'add', 'default', 'via', pair.addrB]);
    try {
      const a = await addServiceAddress('192.168.254.77', { netns: pair.a });
      assert.deepEqual(a, { address: '192.168.254.77', prefix: 32, dev: pair.devA });
      await removeServiceAddress(a, { netns: pair.a });
    } finally {
      await sh('ip', ['-n', pair.a, 'route', 'del', 'default']);
    }
    const lo = await addServiceAddress(pair.at(51), { netns: pair.a, dev: 'lo', prefix: 32 });
    assert.deepEqual(lo, { address: pair.at(51), prefix: 32, dev: 'lo' });
    await removeServiceAddress(lo, { netns: pair.a });
    await assert.rejects(addServiceAddress(pair.at(52), { netns: pair.a, dev: 'nope0' }), (e) => isFerryError(e, 'ERR_ADDRESS') && /no interface 'nope0'/.test(e.message));
  });

  it('refuses an address the host already has, bad addresses and an unknown namespace', async () => {
    await assert.rejects(addServiceAddress(pair.addrA, { netns: pair.a }), (e) => isFerryError(e, 'ERR_ADDRESS_IN_USE') && e.message.includes(pair.devA) && /ip addr del/.test(e.hint ?? ''));
    const a = await addServiceAddress(pair.at(53), { netns: pair.a });
    await assert.rejects(addServiceAddress(pair.at(53), { netns: pair.a, dev: 'lo' }), (e) => isFerryError(e, 'ERR_ADDRESS_IN_USE'));
    await removeServiceAddress(a, { netns: pair.a });
    for (const bad of ['10.253.1', '::1', '127.0.0.5', '224.0.0.1', '0.0.0.0', '10.1.2.300', '010.1.2.3']) {
      await assert.rejects(addServiceAddress(bad, { netns: pair.a }), (e) => isFerryError(e, 'ERR_ADDRESS'), bad);
    }
    await assert.rejects(addServiceAddress(pair.at(255), { netns: pair.a }), (e) => isFerryError(e, 'ERR_ADDRESS') && /broadcast address/.test(e.message));
    await assert.rejects(addServiceAddress(pair.at(54), { netns: pair.a, prefix: 0 }), (e) => isFerryError(e, 'ERR_ADDRESS'));
    await assert.rejects(addServiceAddress(pair.at(54), { netns: 'no-such-netns-xyz' }), (e) => isFerryError(e, 'ERR_NO_NETNS'));
    await assert.rejects(addServiceAddress(pair.at(54), { netns: '../etc' }), (e) => isFerryError(e, 'ERR_NO_NETNS'));
    assert.equal(await hasAddress(pair.at(54), { netns: pair.a }), false, 'nothing was added by the refusals');
  });

  it('a hold drops inbound traffic to the address (connect times out), and after release it connects', async () => {
    const addr = pair.at(60);
    const port = 7070;
    await holdInbound(addr, { netns: pair.a });
    await holdInbound(addr, { netns: pair.a });
    assert.equal((await listHolds({ netns: pair.a })).length, 1, 'holding twice keeps one rule');
    const a = await addServiceAddress(addr, { netns: pair.a });
    try {
      servers.push(await startEchoServer(pair.a, addr, port));
      assert.equal(await connectOnce(pair.b, addr, port, 700), 'timeout', 'held: the SYN is dropped');
      // Only that address is held: the namespace's own address still answers.
      assert.equal(await connectOnce(pair.b, pair.addrA, port, 700), 'refused');
      assert.deepEqual(await releaseInbound(addr, { netns: pair.a }), { released: 1 });
      assert.equal(await connectOnce(pair.b, addr, port, 3000), 'echoed', 'released: it connects');
      assert.deepEqual(await releaseInbound(addr, { netns: pair.a }), { released: 0 }, 'a second release is no error');
      assert.deepEqual(await listHolds({ netns: pair.a }), []);
    } finally {
      await releaseInbound(addr, { netns: pair.a });
      await removeServiceAddress(a, { netns: pair.a });
    }
  });

  it('announce sends a gratuitous ARP: the neighbour\'s stale entry gets the new MAC', async () => {
    const addr = pair.at(70);
    const a = await addServiceAddress(addr, { netns: pair.a });
    try {
      const mac = /link\/ether ([0-9a-f:]+)/.exec(await inNetns(pair.a, 'ip', ['link', 'show', pair.devA]))?.[1];
      assert.ok(mac);
      // The neighbour believes the address is elsewhere (as after a move).
      await inNetns(pair.b, 'ip', ['neigh', 'replace', addr, 'lladdr', '02:00:00:00:00:01', 'dev', pair.devB, 'nud', 'stale']);
      await announce(addr, pair.devA, { netns: pair.a });
      const neigh = await inNetns(pair.b, 'ip', ['neigh', 'show', addr, 'dev', pair.devB]);
      assert.match(neigh, new RegExp(`lladdr ${mac}`), neigh);
      await assert.rejects(announce(addr, 'nope0', { netns: pair.a }), (e) => isFerryError(e, 'ERR_NET_COMMAND') && /arping/.test(e.message));
    } finally {
      await removeServiceAddress(a, { netns: pair.a });
    }
  });

  it('clearHolds removes every ferry hold and leaves other rules alone', async () => {
    await holdInbound(pair.at(80), { netns: pair.b });
    await holdInbound(pair.at(81), { netns: pair.b });
    await inNetns(pair.b, 'iptables', ['-w', '5', '-A', 'INPUT', '-d', `${pair.at(82)}/32`, '-m', 'comment', '--comment', 'not-ferry', '-j', 'DROP']);
    assert.deepEqual((await listHolds({ netns: pair.b })).map((h) => h.address).sort(), [pair.at(80), pair.at(81)]);
    assert.deepEqual(await listHolds({ netns: pair.a }), [], 'holds are per namespace');
    assert.deepEqual(await clearHolds({ netns: pair.b }), { cleared: 2 });
    assert.deepEqual(await listHolds({ netns: pair.b }), []);
    assert.match(await inNetns(pair.b, 'iptables', ['-w', '5', '-S', 'INPUT']), /not-ferry/, 'the other rule stays');
    assert.deepEqual(await clearHolds({ netns: pair.b }), { cleared: 0 });
  });

  it('a move: given up on A, taken held on B (clients time out, no RST), released and announced (they connect); abort and reclaim', async () => {
    const addr = pair.at(90);
    const port = 7090;
    servers.push(await startEchoServer(pair.b, '0.0.0.0', port));
    const a = await addServiceAddress(addr, { netns: pair.a });
    await giveUp(a, { netns: pair.a });
    assert.equal(await hasAddress(addr, { netns: pair.a }), false);
    // The source's interface name means nothing on the destination: B picks its own.
    const taken = await takeHeld(a, { netns: pair.b });
    assert.deepEqual(taken, { address: addr, prefix: 24, dev: pair.devB });
    assert.equal(await connectOnce(pair.a, addr, port, 700), 'timeout', 'held');
    await releaseAndAnnounce(a, { netns: pair.b });
    assert.equal(await connectOnce(pair.a, addr, port, 3000), 'echoed');
    assert.deepEqual(await listHolds({ netns: pair.b }), []);
    // An aborted move: the destination drops hold and address; the source takes it back.
    await holdInbound(addr, { netns: pair.b });
    await dropHeld(a, { netns: pair.b });
    assert.equal(await hasAddress(addr, { netns: pair.b }), false);
    assert.deepEqual(await listHolds({ netns: pair.b }), []);
    await reclaim(a, { netns: pair.a });
    await reclaim(a, { netns: pair.a });
    assert.deepEqual((await addressesOf(pair.a)).filter((l) => l.startsWith(`${addr}/`)), [`${addr}/24 ${pair.devA}`], 'reclaimed once');
    await assert.rejects(takeHeld(a, { netns: pair.a }), (e) => isFerryError(e, 'ERR_ADDRESS_IN_USE'));
    assert.deepEqual(await listHolds({ netns: pair.a }), [], 'a refused take leaves no hold');
    await removeServiceAddress(a, { netns: pair.a });
  });
});
