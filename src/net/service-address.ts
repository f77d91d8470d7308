import { FerryError } from '../util/errors.js';
import { defaultRouteDev, listInterfaces, subnetHolding } from './interfaces.js';
import { checkHostPart, checkPrefix, checkServiceAddress } from './ipv4.js';
import { netCommand, type NetnsOption } from './net-command.js';

/**
 * Service addresses: an IPv4 address that belongs to a workload rather than to the host. ferry
 * adds it on the host when the workload starts (so the program can bind it), removes it when the
 * workload ends, and a migration moves it: removed on the source, added on the destination with
 * its inbound traffic held (inbound-hold.ts) until CRIU has restored the sockets, then released
 * and announced (announce.ts). Everything here acts on the calling process's network namespace,
 * or on the named one (`{ netns }`, entered with nsenter).
 */

export type { NetnsOption } from './net-command.js';
export { holdInbound, releaseInbound, listHolds, clearHolds, holdComment, type InboundHold } from './inbound-hold.js';
export { announce } from './announce.js';
export { parseAddressSpec, type AddressSpec } from './ipv4.js';

/** A service address as configured: what a workload record keeps. */
export interface ServiceAddress {
  address: string;
  prefix: number;
  dev: string;
}

export interface AddServiceAddressOptions extends NetnsOption {
  /** The interface; by default the one whose subnet holds the address, else the default route's. */
  dev?: string;
  /** The prefix length; by default the subnet's when the interface's subnet holds it, else 32. */
  prefix?: number;
}

/**
 * Adds `address` on an interface of the host and answers what it did. Refuses an address the
 * host already has (ERR_ADDRESS_IN_USE, on any interface: two workloads must not share one), an
 * unknown `dev`, and a host with no interface to put it on (ERR_ADDRESS).
 */
export async function addServiceAddress(address: string, opts: AddServiceAddressOptions = {}): Promise<ServiceAddress> {
  checkServiceAddress(address);
  if (opts.prefix !== undefined) checkPrefix(opts.prefix);
  const ns = netnsOf(opts);
  const where = opts.netns !== undefined ? ` in network namespace '${opts.netns}'` : '';
  const { devs, addresses } = await listInterfaces(ns);
  const taken = addresses.find((a) => a.address === address);
  if (taken) throw inUse({ address, prefix: taken.prefix, dev: taken.dev }, where);
  let dev = opts.dev;
  if (dev !== undefined) {
    if (!devs.has(dev)) {
      throw new FerryError('ERR_ADDRESS', `no interface '${dev}'${where} to put ${address} on`, { hint: `\`ip link\` lists the interfaces: ${[...devs].sort().join(', ') || 'none'}` });
    }
  } else {
    dev = subnetHolding(address, addresses)?.dev ?? await defaultRouteDev(ns);
    if (dev === undefined) {
      throw new FerryError('ERR_ADDRESS', `no interface${where} for ${address}: no subnet of this host holds it and there is no default route`, {
        hint: 'name the interface (ferry run --ip-dev DEV), or pick an address in one of the subnets `ip -4 addr` shows',
      });
    }
  }
  const prefix = opts.prefix ?? subnetHolding(address, addresses, dev)?.prefix ?? 32;
  checkHostPart(address, prefix);
  const r = await netCommand('ip', ['addr', 'add', `${address}/${prefix}`, 'dev', dev], ns);
  if (r.code !== 0) {
    // Someone added it between the listing and now.
    if (/File exists/i.test(r.stderr)) throw inUse({ address, prefix, dev }, where);
    throw new FerryError('ERR_NET_COMMAND', `could not add ${address}/${prefix} to ${dev}${where}: ${r.stderr.trim() || `ip exited with status ${r.code}`}`, {
      hint: 'ferry must run as root (CAP_NET_ADMIN); check the interface with `ip addr show dev ' + dev + '`',
    });
  }
  return { address, prefix, dev };
}

/**
 * Removes a service address. Idempotent: an address (or interface) that is already gone is not
 * an error; `removed` says whether there was something to remove. Without `dev`, it is removed
 * from whichever interface has it.
 */
export async function removeServiceAddress(a: { address: string; dev?: string }, opts: NetnsOption = {}): Promise<{ removed: boolean }> {
  checkServiceAddress(a.address);
  const ns = netnsOf(opts);
  const { addresses } = await listInterfaces(ns);
  const present = addresses.filter((x) => x.address === a.address && (a.dev === undefined || x.dev === a.dev));
  let removed = false;
  for (const p of present) {
    const r = await netCommand('ip', ['addr', 'del', `${p.address}/${p.prefix}`, 'dev', p.dev], ns);
    // "Cannot assign requested address": someone removed it since the listing.
    if (r.code !== 0 && !/Cannot assign requested address|Cannot find device/i.test(r.stderr)) {
      throw new FerryError('ERR_NET_COMMAND', `could not remove ${p.address}/${p.prefix} from ${p.dev}: ${r.stderr.trim() || `ip exited with status ${r.code}`}`, {
        hint: `remove it by hand: ip addr del ${p.address}/${p.prefix} dev ${p.dev}`,
      });
    }
    removed ||= r.code === 0;
  }
  return { removed };
}

/** True when the host (namespace) has `address` on some interface. */
export async function hasAddress(address: string, opts: NetnsOption = {}): Promise<boolean> {
  const { addresses } = await listInterfaces(netnsOf(opts));
  return addresses.some((a) => a.address === address);
}

function netnsOf(opts: NetnsOption): NetnsOption {
  return opts.netns !== undefined ? { netns: opts.netns } : {};
}

function inUse(a: ServiceAddress, where: string): FerryError {
  return new FerryError('ERR_ADDRESS_IN_USE', `${a.address} is already an address of this host${where} (on ${a.dev})`, {
    hint: `another workload may have it (\`ferry ps\`); pick another address, or if it is a leftover remove it: ip addr del ${a.address}/${a.prefix} dev ${a.dev}`,
  });
}
