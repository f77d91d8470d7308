import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isFerryError } from '../util/errors.js';
import { SUBNET_CANDIDATES, burstBytes, checkPrefix, chooseSubnet, cidrRange, isTestbedNetns, parseDelay, parseHostCount, parseRate, planTestbed } from './plan.js';

test('the subnet avoids every specific route and address, ignoring the default route', () => {
  const machine = { routes: ['default', '192.0.2.0/24'], addresses: ['192.0.2.2/24', '127.0.0.1/8'] };
  assert.equal(chooseSubnet(machine), '10.251.0.0/24');
  // A /16 covering the first candidate, and an address in the second.
  assert.equal(chooseSubnet({ routes: ['default', '10.251.0.0/16'], addresses: ['10.252.0.9/32'] }), '10.253.0.0/24');
  // A host route (no prefix length) counts too; 10.0.0.0/8 takes all four 10.x candidates.
  assert.equal(chooseSubnet({ routes: ['10.0.0.0/8', '172.31.251.7'], addresses: [] }), '172.31.252.0/24');
  assert.throws(() => chooseSubnet({ routes: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'], addresses: [] }), (e) => isFerryError(e, 'ERR_TESTBED_SETUP'));
});

test('property: the chosen subnet never overlaps a given network', () => {
  const cidr = fc.tuple(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 1, max: 32 }))
    .map(([n, len]) => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}/${len}`);
  fc.assert(fc.property(fc.array(cidr, { maxLength: 6 }), (routes) => {
    let subnet: string;
    try { subnet = chooseSubnet({ routes, addresses: [] }); } catch (e) {
      assert.ok(isFerryError(e, 'ERR_TESTBED_SETUP'));
      return;
    }
    const [lo, hi] = cidrRange(subnet)!;
    for (const r of routes) {
      const [a, b] = cidrRange(r)!;
      assert.ok(b < lo || a > hi, `${subnet} overlaps ${r}`);
    }
  }));
});

test('hosts take the low addresses of the subnet; names carry the prefix', () => {
  const p = planTestbed({ prefix: 'ferry-tb-', hosts: 3, rate: '100mbit', delayMs: 0, subnet: SUBNET_CANDIDATES[0]! });
  assert.deepEqual(p.hosts.map((h) => [h.name, h.netns, h.address, h.agentUrl]), [
    ['h1', 'ferry-tb-h1', '10.251.0.1', 'http://10.251.0.1:7387'],
    ['h2', 'ferry-tb-h2', '10.251.0.2', 'http://10.251.0.2:7387'],
    ['h3', 'ferry-tb-h3', '10.251.0.3', 'http://10.251.0.3:7387'],
  ]);
  assert.equal(p.switchNetns, 'ferry-tb-sw');
  assert.equal(p.prefixLength, 24);
  assert.equal(p.rateBitsPerSec, 100e6);
});

test('namespace names are matched exactly, so prefixes never take each other\'s', () => {
  assert.ok(isTestbedNetns('ferry-tb-', 'ferry-tb-h1'));
  assert.ok(isTestbedNetns('ferry-tb-', 'ferry-tb-sw'));
  assert.ok(isTestbedNetns('ferry-tb-', 'ferry-tb-h12'));
  assert.ok(!isTestbedNetns('ferry-tb-', 'ferry-tbx-h1'));
  assert.ok(!isTestbedNetns('ferry-tb-', 'ferry-tb-x-h1'));
  assert.ok(!isTestbedNetns('ferry-tb-', 'ferry-tb-h0'));
  assert.ok(!isTestbedNetns('ferry-tb-', 'other'));
  assert.equal(checkPrefix('ferry-t1-'), 'ferry-t1-');
  for (const bad of ['tb-', 'ferry-', 'ferry-TB-', 'ferry-a-b-', 'ferry-tb']) assert.throws(() => checkPrefix(bad), (e) => isFerryError(e, 'ERR_USAGE'), bad);
});

test('rates, delays and host counts: tc units accepted, nonsense refused with ERR_USAGE', () => {
  assert.equal(parseRate('1gbit'), 1e9);
  assert.equal(parseRate('100mbit'), 1e8);
  assert.equal(parseRate('1.5Mbit'), 1.5e6);
  assert.equal(parseRate('10mbps'), 80e6);
  for (const bad of ['', 'fast', '1gb', '-1gbit', '0bit', '1', '2tbit']) assert.throws(() => parseRate(bad), (e) => isFerryError(e, 'ERR_USAGE'), bad);
  assert.equal(parseDelay(undefined), 0);
  assert.equal(parseDelay('2.5'), 2.5);
  for (const bad of ['', 'x', '-1', '20000']) assert.throws(() => parseDelay(bad), (e) => isFerryError(e, 'ERR_USAGE'), bad);
  assert.equal(parseHostCount(undefined), 2);
  assert.equal(parseHostCount('5'), 5);
  for (const bad of ['0', '33', '1.5', 'two']) assert.throws(() => parseHostCount(bad), (e) => isFerryError(e, 'ERR_USAGE'), bad);
});

test('tbf burst: about 2 ms of traffic (≈ 256 kB at 1gbit), never below 16 KiB', () => {
  assert.equal(burstBytes(1e9), 250_000);
  assert.equal(burstBytes(1e6), 16_384);
});
