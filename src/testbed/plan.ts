/**
 * What a testbed will be, decided before anything is created: its names, its subnet, the
 * hosts' addresses and the link's shaping. Pure functions (unit-tested) over facts read elsewhere.
 */
import { FerryError } from '../util/errors.js';

/** Network-namespace names start with this, so nothing else on the machine clashes with them. */
export const DEFAULT_PREFIX = 'ferry-tb-';
export const DEFAULT_RATE = '1gbit';
export const MAX_HOSTS = 32;
/** The port every host's agent listens on (ferry agent's default). */
export const AGENT_PORT = 7387;
/** Inside each host namespace, the host's one interface. */
export const HOST_IF = 'eth0';
/** Inside the switch namespace, the bridge. */
export const BRIDGE_IF = 'br0';

/**
 * The subnets tried, in order: private /24s that home and office networks rarely use. The first
 * that overlaps no route and no address of the machine is taken.
 */
export const SUBNET_CANDIDATES: readonly string[] = [
  '10.251.0.0/24', '10.252.0.0/24', '10.253.0.0/24', '10.254.0.0/24',
  '172.31.251.0/24', '172.31.252.0/24', '192.168.251.0/24', '192.168.252.0/24',
];

export interface HostPlan {
  /** h1, h2, … */
  name: string;
  /** The host's network namespace. */
  netns: string;
  /** The switch-side end of the host's link (an interface of the switch namespace). */
  switchIf: string;
  address: string;
  agentUrl: string;
}

export interface TestbedPlan {
  prefix: string;
  switchNetns: string;
  subnet: string;
  prefixLength: number;
  rate: string;
  rateBitsPerSec: number;
  delayMs: number;
  hosts: HostPlan[];
}

/** A name prefix of the testbed's namespaces: `ferry-<letters/digits>-`. */
export function checkPrefix(prefix: string): string {
  if (!/^ferry-[a-z0-9]{1,12}-$/.test(prefix)) {
    throw new FerryError('ERR_USAGE', `testbed: the name prefix '${prefix}' is not of the form ferry-<letters or digits>-`, { hint: `unset FERRY_TESTBED_PREFIX to use ${DEFAULT_PREFIX}` });
  }
  return prefix;
}

export const switchNetnsOf = (prefix: string): string => `${prefix}sw`;
export const hostNetnsOf = (prefix: string, name: string): string => `${prefix}${name}`;

/** True when `netns` is one of a testbed's namespaces (its switch or a host), by name alone. */
export function isTestbedNetns(prefix: string, netns: string): boolean {
  if (!netns.startsWith(prefix)) return false;
  const rest = netns.slice(prefix.length);
  return rest === 'sw' || /^h[1-9]\d*$/.test(rest);
}

const RATE_UNITS: Record<string, number> = {
  bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9, tbit: 1e12,
  bps: 8, kbps: 8e3, mbps: 8e6, gbps: 8e9, tbps: 8e12,
};

/** A tc rate (`1gbit`, `100mbit`, `500kbit`, `10mbps`) → bits per second; refused when malformed. */
export function parseRate(rate: string): number {
  const m = /^(\d+(?:\.\d+)?)([a-z]+)$/.exec(rate.trim().toLowerCase());
  const unit = m ? RATE_UNITS[m[2] ?? ''] : undefined;
  const bits = m && unit !== undefined ? Number(m[1]) * unit : NaN;
  if (!(bits >= 8e3 && bits <= 1e12)) {
    throw new FerryError('ERR_USAGE', `testbed: --rate '${rate}' is not a rate between 8kbit and 1tbit`, {
      hint: 'give a tc rate such as 1gbit, 100mbit or 500kbit (bps units are bytes per second)',
    });
  }
  return bits;
}

/**
 * tbf's bucket: about 2 ms of traffic at the rate, at least 16 KiB. (1gbit → 250 kB, which is the
 * 256kb measured to give ≈ 119 MB/s here; a bucket smaller than rate/HZ would cap the rate lower.)
 */
export function burstBytes(rateBitsPerSec: number): number {
  return Math.max(16_384, Math.ceil(rateBitsPerSec / 8 * 0.002));
}

export function parseDelay(ms: string | undefined): number {
  if (ms === undefined) return 0;
  const n = Number(ms);
  if (ms.trim() === '' || !Number.isFinite(n) || n < 0 || n > 10_000) {
    throw new FerryError('ERR_USAGE', `testbed: --delay '${ms}' is not a number of milliseconds between 0 and 10000`, { hint: 'e.g. --delay 5 (one-way delay between two hosts)' });
  }
  return n;
}

export function parseHostCount(n: string | undefined): number {
  if (n === undefined) return 2;
  const v = Number(n);
  if (!Number.isInteger(v) || v < 1 || v > MAX_HOSTS) {
    throw new FerryError('ERR_USAGE', `testbed: --hosts must be an integer from 1 to ${MAX_HOSTS}, got '${n}'`, { hint: 'e.g. --hosts 3' });
  }
  return v;
}

function ipToInt(ip: string): number | undefined {
  const parts = ip.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return undefined;
    v = v * 256 + Number(p);
  }
  return v;
}

function intToIp(v: number): string {
  return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');
}

/** An IPv4 CIDR as [first, last] address numbers; undefined for anything else (IPv6, names). */
export function cidrRange(cidr: string): [number, number] | undefined {
  const [ip = '', len = '32'] = cidr.split('/');
  const base = ipToInt(ip);
  const bits = Number(len);
  if (base === undefined || !Number.isInteger(bits) || bits < 0 || bits > 32) return undefined;
  const size = 2 ** (32 - bits);
  const first = Math.floor(base / size) * size;
  return [first, first + size - 1];
}

/** What of the machine's own network a subnet must not overlap: `ip -j route` and `ip -j addr` of the root namespace. */
export interface MachineNetwork {
  /** Route destinations (`dst`: "default", "10.0.0.0/8", "192.0.2.1"). */
  routes: string[];
  /** Addresses with their prefix length ("192.0.2.2/24"). */
  addresses: string[];
}

/**
 * The first candidate that overlaps no route and no address of the machine. A default route
 * covers everything and is ignored: what matters is that no network the machine is attached to
 * or routes to specifically uses these addresses.
 */
export function chooseSubnet(net: MachineNetwork, candidates: readonly string[] = SUBNET_CANDIDATES): string {
  const taken = [...net.routes.filter((r) => r !== 'default' && !r.startsWith('0.0.0.0/0')), ...net.addresses]
    .map(cidrRange)
    .filter((r): r is [number, number] => r !== undefined);
  for (const c of candidates) {
    const [lo, hi] = cidrRange(c) ?? [0, -1];
    if (!taken.some(([a, b]) => a <= hi && lo <= b)) return c;
  }
  throw new FerryError('ERR_TESTBED_SETUP', `testbed: every candidate subnet (${candidates.join(', ')}) overlaps a route or address of this machine`, {
    hint: 'look at `ip route` and `ip addr`; the testbed needs one private /24 the machine does not use',
  });
}

/** The whole plan: hosts take the low addresses (.1, .2, …); the rest of the subnet is for service addresses. */
export function planTestbed(o: { prefix: string; hosts: number; rate: string; delayMs: number; subnet: string }): TestbedPlan {
  const range = cidrRange(o.subnet);
  const prefixLength = Number(o.subnet.split('/')[1]);
  if (!range || prefixLength > 30 || range[1] - range[0] - 1 < o.hosts) {
    throw new FerryError('ERR_USAGE', `testbed: subnet ${o.subnet} cannot hold ${o.hosts} hosts`, { hint: 'use a /24 or larger' });
  }
  const hosts: HostPlan[] = [];
  for (let i = 1; i <= o.hosts; i++) {
    const name = `h${i}`;
    const address = intToIp(range[0] + i);
    hosts.push({ name, netns: hostNetnsOf(o.prefix, name), switchIf: name, address, agentUrl: `http://${address}:${AGENT_PORT}` });
  }
  return {
    prefix: o.prefix,
    switchNetns: switchNetnsOf(o.prefix),
    subnet: o.subnet,
    prefixLength,
    rate: o.rate,
    rateBitsPerSec: parseRate(o.rate),
    delayMs: o.delayMs,
    hosts,
  };
}
