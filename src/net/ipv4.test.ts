import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isFerryError } from '../util/errors.js';
import { subnetHolding } from './interfaces.js';
import { checkHostPart, inSubnet, ipv4ToNumber, numberToIpv4, parseAddressSpec } from './ipv4.js';

test('dotted quads round-trip through numbers; malformed ones are refused', () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), (n) => ipv4ToNumber(numberToIpv4(n)) === n));
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.-1', ' 1.2.3.4', 'a.b.c.d']) assert.equal(ipv4ToNumber(bad), undefined, bad);
});

test('inSubnet and the longest matching subnet', () => {
  assert.ok(inSubnet('10.0.5.9', '10.0.5.1', 24));
  assert.ok(!inSubnet('10.0.6.9', '10.0.5.1', 24));
  assert.ok(inSubnet('10.0.6.9', '10.0.5.1', 16));
  const addrs = [
    { dev: 'lo', address: '127.0.0.1', prefix: 8, up: true },
    { dev: 'eth0', address: '10.0.5.1', prefix: 16, up: true },
    { dev: 'eth1', address: '10.0.5.2', prefix: 24, up: true },
    { dev: 'eth2', address: '10.0.5.3', prefix: 32, up: true },
  ];
  assert.equal(subnetHolding('10.0.5.9', addrs)?.dev, 'eth1');
  assert.equal(subnetHolding('10.0.9.9', addrs)?.dev, 'eth0');
  assert.equal(subnetHolding('10.0.5.9', addrs, 'eth0')?.prefix, 16);
  assert.equal(subnetHolding('192.168.1.1', addrs), undefined);
  assert.equal(subnetHolding('127.0.0.9', addrs), undefined, 'loopback never counts');
});

test('--ip values: ADDR or ADDR/PREFIX, IPv4 host addresses only', () => {
  assert.deepEqual(parseAddressSpec('10.1.2.3'), { address: '10.1.2.3' });
  assert.deepEqual(parseAddressSpec('10.1.2.3/24'), { address: '10.1.2.3', prefix: 24 });
  for (const bad of ['10.1.2.3/0', '10.1.2.3/33', '10.1.2.3/x', '10.1.2.3/24/1', 'fe80::1', '127.0.0.2', '169.254.1.1', '239.1.1.1', '255.255.255.255', '0.0.0.0']) {
    assert.throws(() => parseAddressSpec(bad), (e) => isFerryError(e, 'ERR_ADDRESS') && !!e.hint, bad);
  }
  assert.throws(() => checkHostPart('10.1.2.0', 24), /network address/);
  assert.throws(() => checkHostPart('10.1.2.255', 24), /broadcast address/);
  checkHostPart('10.1.2.255', 31);
  checkHostPart('10.1.2.0', 32);
});
