import { checkServiceAddress } from './ipv4.js';
import { netCommandOk, type NetnsOption } from './net-command.js';

/**
 * Announces that `address` is now at `dev`'s MAC address: one gratuitous ARP (`arping -U`), so
 * the neighbours (clients, the router) update the entries that still name the old host's MAC and
 * the next packet comes here instead of waiting for their entries to expire.
 *
 * The ARP leaves at once; arping itself returns about 1 s later (it waits its interval even for
 * one unsolicited packet), so a caller on a latency path need not await it before going on.
 */
export async function announce(address: string, dev: string, opts: NetnsOption = {}): Promise<void> {
  checkServiceAddress(address);
  await netCommandOk('arping', ['-q', '-U', '-c', '1', '-I', dev, address], `announcing ${address} on ${dev}`,
    `the address must be configured on ${dev} first (ip addr show dev ${dev}); arping comes with iputils-arping`, opts);
}
