import { netCommand, type NetnsOption } from './net-command.js';

/**
 * CRIU's network lock for established TCP connections (`--tcp-established`): per connection, an
 * iptables rule in INPUT and OUTPUT dropping its packets unless they carry CRIU's mark 0xC114.
 * CRIU leaves them in place when it ends a dumped tree — on purpose: without them this kernel
 * would answer the peer with a RST — so once the workload runs elsewhere (a migration's commit)
 * the source's rules are stale and are removed here.
 */
const CRIU_MARK = /-m mark ! --mark 0xc114\b/;

/** CRIU's lock rules in the namespace, as `iptables -S` prints them. */
export async function listCriuLocks(opts: NetnsOption = {}): Promise<string[]> {
  const r = await netCommand('iptables', ['-w', '5', '-S'], opts);
  if (r.code !== 0) return [];
  return r.stdout.split('\n').filter((l) => l.startsWith('-A ') && CRIU_MARK.test(l));
}

/** Removes the given rules (lines of `iptables -S`); a rule already gone is not an error. */
export async function dropCriuLocks(rules: readonly string[], opts: NetnsOption = {}): Promise<number> {
  let dropped = 0;
  for (const rule of rules) {
    const args = rule.split(/\s+/);
    args[0] = '-D';
    const r = await netCommand('iptables', ['-w', '5', ...args], opts);
    if (r.code === 0) dropped++;
  }
  return dropped;
}
