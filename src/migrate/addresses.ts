import { announce } from '../net/announce.js';
import { releaseInbound } from '../net/inbound-hold.js';
import { listInterfaces } from '../net/interfaces.js';
import { dropHeld, giveUp, reclaim, takeHeld, type MovingAddress } from '../net/address-moves.js';
import { attachWorkloadAddress } from '../targets/workload-address.js';
import type { AddressOps } from './incoming.js';
import type { ServiceAddress } from './protocol.js';

/** The address as net/address-moves.ts takes it (no `dev` key when there is none). */
const moving = (a: ServiceAddress): MovingAddress => ({ address: a.address, prefix: a.prefix, ...(a.dev !== undefined ? { dev: a.dev } : {}) });

/**
 * How a migration moves a workload's service address, on this host's network namespace
 * (net/address-moves.ts): the destination adds it with inbound traffic held back before the
 * restore (so the kernel does not answer the client with a RST before the sockets exist), lets
 * traffic in after the commit and announces it; the source removes its copy once its tree ended.
 */
export const destinationAddressOps = (workloadsDir: string): AddressOps & { attach(name: string, a: ServiceAddress): Promise<void> } => ({
  async prepare(a) { await takeHeld(moving(a)); },
  async release(a) {
    await releaseInbound(a.address);
    // The gratuitous ARP leaves at once; arping itself exits a second later: not on the downtime path.
    const dev = (await listInterfaces()).addresses.find((x) => x.address === a.address)?.dev;
    if (dev !== undefined) void announce(a.address, dev).catch(() => undefined);
  },
  remove: (a) => dropHeld(moving(a)),
  async attach(name, a) {
    const dev = (await listInterfaces()).addresses.find((x) => x.address === a.address)?.dev ?? a.dev ?? '';
    await attachWorkloadAddress(workloadsDir, name, { address: a.address, prefix: a.prefix, dev });
  },
});

/** The source: its copy of the address goes when its tree has ended … */
export const releaseAddress = (a: ServiceAddress): Promise<void> => giveUp(moving(a));
/** … and comes back if the workload is restored here after a failed commit. */
export const reclaimAddress = (a: ServiceAddress): Promise<void> => reclaim(moving(a));
