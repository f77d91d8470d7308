import { FerryError } from '../util/errors.js';
import { inSubnet } from './ipv4.js';
import { netCommandOk, type NetnsOption } from './net-command.js';

/** One IPv4 address configured on an interface (from `ip -j addr show`). */
export interface InterfaceAddress {
  dev: string;
  address: string;
  prefix: number;
  /** The interface is administratively up. */
  up: boolean;
}

interface IpAddrJson {
  ifname?: string;
  flags?: string[];
  addr_info?: { family?: string; local?: string; prefixlen?: number }[];
}

function parseJson<T>(text: string, what: string): T {
  try {
    return JSON.parse(text.trim() || '[]') as T;
  } catch (err) {
    throw new FerryError('ERR_NET_COMMAND', `${what} did not print JSON`, { cause: err, hint: 'ferry needs iproute2 with JSON output (`ip -j`), as in Debian 10 and later', detail: text.slice(0, 500) });
  }
}

/** The interfaces of the namespace, with their IPv4 addresses (interfaces without one too). */
export async function listInterfaces(opts: NetnsOption = {}): Promise<{ devs: Set<string>; addresses: InterfaceAddress[] }> {
  const out = await netCommandOk('ip', ['-j', 'addr', 'show'], 'listing the interfaces', 'check that iproute2 works here: `ip addr show`', opts);
  const devs = new Set<string>();
  const addresses: InterfaceAddress[] = [];
  for (const l of parseJson<IpAddrJson[]>(out, '`ip -j addr show`')) {
    if (!l.ifname) continue;
    devs.add(l.ifname);
    const up = (l.flags ?? []).includes('UP');
    for (const a of l.addr_info ?? []) {
      if (a.family === 'inet' && a.local && typeof a.prefixlen === 'number') addresses.push({ dev: l.ifname, address: a.local, prefix: a.prefixlen, up });
    }
  }
  return { devs, addresses };
}

/** The interface of the IPv4 default route, if there is one. */
export async function defaultRouteDev(opts: NetnsOption = {}): Promise<string | undefined> {
  const out = await netCommandOk('ip', ['-j', '-4', 'route', 'show', 'default'], 'reading the default route', 'check that iproute2 works here: `ip route show default`', opts);
  return parseJson<{ dev?: string }[]>(out, '`ip -j route show default`').find((r) => r.dev)?.dev;
}

/**
 * The interface address whose subnet holds `address` (the longest prefix wins; loopback never
 * counts), or undefined when no subnet of the host does.
 */
export function subnetHolding(address: string, addresses: readonly InterfaceAddress[], dev?: string): InterfaceAddress | undefined {
  return addresses
    .filter((a) => a.dev !== 'lo' && (dev === undefined || a.dev === dev) && a.prefix < 32 && inSubnet(address, a.address, a.prefix))
    .sort((a, b) => b.prefix - a.prefix)[0];
}
