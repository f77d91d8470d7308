import { announce } from './announce.js';
import { holdInbound, releaseInbound } from './inbound-hold.js';
import { listInterfaces } from './interfaces.js';
import type { NetnsOption } from './net-command.js';
import { addServiceAddress, removeServiceAddress } from './service-address.js';

/**
 * The steps of moving a service address between hosts, in the order a migration needs them
 * (see "Moving a service address" in the machine notes: the address must not answer before
 * the sockets are back, or the kernel RSTs the client). `dev` is the source's interface: the
 * destination picks its own (the interface whose subnet holds the address), keeping the prefix.
 */
export interface MovingAddress {
  address: string;
  prefix: number;
  dev?: string;
}

/** Destination, before the restore: hold inbound traffic, then add the address. */
export async function takeHeld(a: MovingAddress, opts: NetnsOption = {}): Promise<{ address: string; prefix: number; dev: string }> {
  await holdInbound(a.address, opts);
  try {
    return await addServiceAddress(a.address, { ...opts, prefix: a.prefix });
  } catch (err) {
    await releaseInbound(a.address, opts).catch(() => undefined);
    throw err;
  }
}

/**
 * Destination, once CRIU restored the sockets: lift the hold and announce the address on the
 * interface that has it. Answers once the ARP is out (arping itself lingers ≈ 1 s; that wait is
 * not on the client's path, the packet left at once).
 */
export async function releaseAndAnnounce(a: MovingAddress, opts: NetnsOption = {}): Promise<void> {
  await releaseInbound(a.address, opts);
  const dev = (await listInterfaces(opts)).addresses.find((x) => x.address === a.address)?.dev;
  if (dev !== undefined) await announce(a.address, dev, opts);
}

/** Destination, on abort: lift the hold and drop the address (both idempotent). */
export async function dropHeld(a: MovingAddress, opts: NetnsOption = {}): Promise<void> {
  await releaseInbound(a.address, opts);
  await removeServiceAddress({ address: a.address }, opts);
}

/** Source, when the destination takes over: the address leaves this host (idempotent). */
export async function giveUp(a: MovingAddress, opts: NetnsOption = {}): Promise<void> {
  await removeServiceAddress({ address: a.address }, opts);
}

/**
 * Source, when its copy comes back after a failed handoff: the address returns (on the
 * interface it had when it has one), and the neighbours hear of it. Present already: nothing to do.
 */
export async function reclaim(a: MovingAddress, opts: NetnsOption = {}): Promise<void> {
  const { addresses } = await listInterfaces(opts);
  let dev = addresses.find((x) => x.address === a.address)?.dev;
  dev ??= (await addServiceAddress(a.address, { ...opts, prefix: a.prefix, ...(a.dev !== undefined ? { dev: a.dev } : {}) })).dev;
  await announce(a.address, dev, opts);
}
