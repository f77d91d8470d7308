import { FerryError } from '../util/errors.js';

/**
 * IPv4 addresses as numbers, and what makes one usable as a service address. Service addresses
 * are IPv4 only: the announcement is ARP (gratuitous ARP, arping) and the hold an iptables rule;
 * IPv6 would need NDP and ip6tables.
 */

/** The address as an unsigned 32-bit number, or undefined when it is not dotted-quad IPv4. */
export function ipv4ToNumber(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  let n = 0;
  for (const part of m.slice(1)) {
    // No leading zeros: "010" reads as octal to some tools and as decimal to others.
    if (part.length > 1 && part.startsWith('0')) return undefined;
    const v = Number(part);
    if (v > 255) return undefined;
    n = n * 256 + v;
  }
  return n;
}

export function numberToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** True when `address` lies in `network/prefix` (both dotted quads). */
export function inSubnet(address: string, network: string, prefix: number): boolean {
  const a = ipv4ToNumber(address);
  const n = ipv4ToNumber(network);
  if (a === undefined || n === undefined) return false;
  const m = mask(prefix);
  return ((a & m) >>> 0) === ((n & m) >>> 0);
}

/** A service address as given on the command line: `ADDR` or `ADDR/PREFIX`. */
export interface AddressSpec {
  address: string;
  prefix?: number;
}

function badAddress(message: string, hint = 'give an IPv4 address of this host\'s network, e.g. --ip 10.0.0.50 or --ip 10.0.0.50/24'): FerryError {
  return new FerryError('ERR_ADDRESS', message, { hint });
}

export function checkPrefix(prefix: number, from = String(prefix)): number {
  if (!Number.isInteger(prefix) || prefix < 1 || prefix > 32) throw badAddress(`prefix '${from}' is not a prefix length from 1 to 32`);
  return prefix;
}

/**
 * Checks that `address` can be a host's service address: dotted-quad IPv4, not unspecified,
 * loopback, link-local, multicast or broadcast (nothing else on the segment could reach it, or
 * it is not one host's).
 */
export function checkServiceAddress(address: string): string {
  const n = ipv4ToNumber(address);
  if (n === undefined) {
    throw badAddress(`'${address}' is not an IPv4 address`, /:/.test(address) ? 'service addresses are IPv4 only (they are announced with ARP); give a dotted quad such as 10.0.0.50' : undefined);
  }
  const first = n >>> 24;
  const why = n === 0 ? 'the unspecified address'
    : first === 127 ? 'a loopback address'
    : first === 169 && ((n >>> 16) & 255) === 254 ? 'a link-local address'
    : first >= 224 && first <= 239 ? 'a multicast address'
    : first >= 240 ? (n === 0xffffffff ? 'the broadcast address' : 'a reserved address')
    : undefined;
  if (why) throw badAddress(`${address} is ${why}: a service address must be reachable from other hosts`);
  return address;
}

/** Parses `ADDR[/PREFIX]` (the value of `ferry run --ip`). */
export function parseAddressSpec(spec: string): AddressSpec {
  const [address = '', prefix, ...rest] = spec.trim().split('/');
  if (rest.length) throw badAddress(`'${spec}' is not ADDR or ADDR/PREFIX`);
  checkServiceAddress(address);
  if (prefix === undefined) return { address };
  if (!/^\d{1,2}$/.test(prefix)) throw badAddress(`'${spec}': prefix '${prefix}' is not a prefix length from 1 to 32`);
  return { address, prefix: checkPrefix(Number(prefix), prefix) };
}

/**
 * Refuses the network and broadcast addresses of `address/prefix` (prefixes up to /30): the
 * kernel would accept them, but hosts treat them as the subnet's, not one host's.
 */
export function checkHostPart(address: string, prefix: number): void {
  if (prefix > 30) return;
  const n = ipv4ToNumber(address);
  if (n === undefined) return;
  const host = (n & ~mask(prefix)) >>> 0;
  if (host === 0) throw badAddress(`${address}/${prefix} is the network address of its subnet`, 'pick an address inside the subnet, or give a longer prefix');
  if (host === (~mask(prefix) >>> 0)) throw badAddress(`${address}/${prefix} is the broadcast address of its subnet`, 'pick an address inside the subnet, or give a longer prefix');
}
