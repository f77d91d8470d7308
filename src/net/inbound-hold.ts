import { FerryError } from '../util/errors.js';
import { checkServiceAddress } from './ipv4.js';
import { netCommand, netCommandOk, type NetnsOption } from './net-command.js';

/**
 * Holding back a service address's inbound traffic while it moves. On the destination the
 * address must go up before CRIU restores the sockets bound to it, but while no socket exists
 * the kernel answers a client's retransmissions with a RST and the connection dies. An iptables
 * DROP for the address, inserted before the address goes up and deleted once CRIU has restored
 * the sockets, makes the client retransmit instead. Each rule carries the comment
 * `ferry-hold:<addr>`, so leftovers (a crash between hold and release) can be found and cleared.
 */

const PREFIX = 'ferry-hold:';
const CHAIN = 'INPUT';
const IPTABLES_HINT = 'ferry must run as root with iptables installed (apt-get install iptables); `iptables -S INPUT` shows the rules';
/** iptables waits this long for the xtables lock another iptables holds (within the watchdog). */
const LOCK_WAIT_S = '5';

export function holdComment(address: string): string {
  return `${PREFIX}${address}`;
}

function ruleSpec(address: string): string[] {
  return ['-d', `${address}/32`, '-m', 'comment', '--comment', holdComment(address), '-j', 'DROP'];
}

async function iptables(args: string[], opts: NetnsOption): Promise<{ code: number; stderr: string }> {
  return netCommand('iptables', ['-w', LOCK_WAIT_S, ...args], opts);
}

/** True when the hold rule for `address` is in place. */
async function isHeld(address: string, opts: NetnsOption): Promise<boolean> {
  const r = await iptables(['-C', CHAIN, ...ruleSpec(address)], opts);
  if (r.code === 0) return true;
  // -C answers 1 with "Bad rule" / "does a matching rule exist" when there is none.
  if (r.code === 1) return false;
  throw new FerryError('ERR_NET_COMMAND', `could not check the hold on ${address}: ${r.stderr.trim() || `iptables exited with status ${r.code}`}`, { hint: IPTABLES_HINT });
}

/**
 * Drops inbound traffic to `address` (first rule of INPUT) until releaseInbound. Idempotent: an
 * address already held keeps its one rule.
 */
export async function holdInbound(address: string, opts: NetnsOption = {}): Promise<void> {
  checkServiceAddress(address);
  if (await isHeld(address, opts)) return;
  await netCommandOk('iptables', ['-w', LOCK_WAIT_S, '-I', CHAIN, '1', ...ruleSpec(address)], `holding inbound traffic to ${address}`, IPTABLES_HINT, opts);
}

/** Deletes the hold on `address` (every copy of it). Idempotent; answers how many rules went. */
export async function releaseInbound(address: string, opts: NetnsOption = {}): Promise<{ released: number }> {
  checkServiceAddress(address);
  let released = 0;
  // Bounded: a rule that cannot be deleted must not loop forever.
  while (released < 64 && (await isHeld(address, opts))) {
    await netCommandOk('iptables', ['-w', LOCK_WAIT_S, '-D', CHAIN, ...ruleSpec(address)], `releasing the hold on ${address}`, IPTABLES_HINT, opts);
    released++;
  }
  return { released };
}

/** A hold rule found in the namespace: the address it holds and the rule as `iptables -S` prints it. */
export interface InboundHold {
  address: string;
  rule: string;
}

/** Every ferry hold rule in the namespace (leftovers after a crash, or holds in progress). */
export async function listHolds(opts: NetnsOption = {}): Promise<InboundHold[]> {
  const out = await netCommandOk('iptables', ['-w', LOCK_WAIT_S, '-S', CHAIN], 'listing the inbound holds', IPTABLES_HINT, opts);
  const holds: InboundHold[] = [];
  for (const line of out.split('\n')) {
    const m = /--comment "?ferry-hold:([0-9.]+)"?/.exec(line);
    if (m?.[1]) holds.push({ address: m[1], rule: line.trim() });
  }
  return holds;
}

/** Deletes every ferry hold rule in the namespace; answers how many went. */
export async function clearHolds(opts: NetnsOption = {}): Promise<{ cleared: number }> {
  let cleared = 0;
  for (const h of await listHolds(opts)) {
    // Deleted by the rule exactly as listed, so a hold whose form differs from ruleSpec (an
    // older ferry's) goes too. `-S` prints no quotes around a comment without spaces.
    const args = h.rule.replace(/^-A\s+/, '').split(/\s+/).map((a) => a.replace(/^"(.*)"$/, '$1'));
    const r = await iptables(['-D', ...args], opts);
    if (r.code === 0) cleared++;
    else if (r.code !== 1) throw new FerryError('ERR_NET_COMMAND', `could not delete the hold rule '${h.rule}': ${r.stderr.trim()}`, { hint: IPTABLES_HINT });
  }
  return { cleared };
}
