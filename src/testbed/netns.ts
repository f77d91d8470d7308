/**
 * The testbed's network: a switch namespace holding a bridge, and per host a namespace with one
 * veth into that bridge. Every link is made directly between testbed namespaces (`ip -n SW link
 * add … peer … netns HOST`), so nothing is ever created in, or routed through, the machine's own
 * namespace.
 */
import { readdir, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode } from '../util/errors.js';
import { BRIDGE_IF, HOST_IF, burstBytes, type HostPlan, type MachineNetwork, type TestbedPlan } from './plan.js';
import { ip, parseJsonList, runTool, tc } from './sys.js';

export const NETNS_DIR = '/run/netns';
export const netnsPath = (netns: string): string => join(NETNS_DIR, netns);

/** The named network namespaces (`ip netns add` puts one file per namespace in /run/netns). */
export async function listNetns(): Promise<string[]> {
  try {
    return (await readdir(NETNS_DIR)).sort();
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
}

/** The namespace's inode (what /proc/PID/ns/net links to as `net:[INODE]`); undefined when it is not mounted. */
export async function netnsInode(netns: string): Promise<bigint | undefined> {
  try {
    const st = await stat(netnsPath(netns), { bigint: true });
    // An unmounted leftover file (a crash between creating and mounting it) is a plain file on /run's fs.
    return st.dev === (await stat(NETNS_DIR, { bigint: true })).dev ? undefined : st.ino;
  } catch {
    return undefined;
  }
}

/** Pids of every process whose network namespace is one of `inodes` (not this process). */
export async function processesIn(inodes: ReadonlySet<bigint>): Promise<number[]> {
  if (inodes.size === 0) return [];
  const pids: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    const link = await readlink(`/proc/${e}/ns/net`).catch(() => '');
    const m = /^net:\[(\d+)\]$/.exec(link);
    if (m && inodes.has(BigInt(m[1] ?? '0'))) pids.push(Number(e));
  }
  return pids;
}

/** The root namespace's routes and IPv4 addresses, which the testbed's subnet must not overlap. */
export async function machineNetwork(): Promise<MachineNetwork> {
  const routes = parseJsonList(await ip(undefined, ['-j', '-4', 'route', 'show', 'table', 'all'], 'reading the routes'), 'ip route')
    .map((r) => (r as { dst?: unknown }).dst)
    .filter((d): d is string => typeof d === 'string');
  const addresses: string[] = [];
  for (const link of parseJsonList(await ip(undefined, ['-j', '-4', 'addr', 'show'], 'reading the addresses'), 'ip addr')) {
    for (const a of (link as { addr_info?: { local?: unknown; prefixlen?: unknown }[] }).addr_info ?? []) {
      if (typeof a.local === 'string' && typeof a.prefixlen === 'number') addresses.push(`${a.local}/${a.prefixlen}`);
    }
  }
  return { routes, addresses };
}

/** A namespace with its loopback up. */
export async function addNetns(netns: string): Promise<void> {
  await ip(undefined, ['netns', 'add', netns], `creating network namespace ${netns}`);
  await ip(netns, ['link', 'set', 'lo', 'up'], `bringing lo up in ${netns}`);
}

/** The switch's bridge, in the switch's namespace (made with addNetns), so the machine's namespace is never touched. */
export async function addBridge(plan: TestbedPlan): Promise<void> {
  await ip(plan.switchNetns, ['link', 'add', 'name', BRIDGE_IF, 'type', 'bridge'], 'creating the bridge');
  await ip(plan.switchNetns, ['link', 'set', BRIDGE_IF, 'up'], 'bringing the bridge up');
}

/** A host's link (its namespace made with addNetns): a veth pair from the switch's bridge to its eth0, and its address. */
export async function addHostLink(plan: TestbedPlan, host: HostPlan): Promise<void> {
  const sw = plan.switchNetns;
  await ip(sw, ['link', 'add', 'name', host.switchIf, 'type', 'veth', 'peer', 'name', HOST_IF, 'netns', host.netns], `creating ${host.name}'s link`);
  await ip(sw, ['link', 'set', host.switchIf, 'master', BRIDGE_IF], `attaching ${host.name}'s link to the bridge`);
  await ip(sw, ['link', 'set', host.switchIf, 'up'], `bringing ${host.name}'s switch port up`);
  await ip(host.netns, ['addr', 'add', `${host.address}/${plan.prefixLength}`, 'dev', HOST_IF], `adding ${host.address} to ${host.name}`);
  await ip(host.netns, ['link', 'set', HOST_IF, 'up'], `bringing ${host.name}'s ${HOST_IF} up`);
}

/**
 * Shapes what leaves `dev` to the plan's rate (tbf), after a netem delay when the plan has one.
 * Called for both ends of every link, so each direction is shaped.
 */
export async function shape(plan: TestbedPlan, netns: string, dev: string, withDelay: boolean): Promise<void> {
  const tbf = ['tbf', 'rate', String(plan.rateBitsPerSec) + 'bit', 'burst', String(burstBytes(plan.rateBitsPerSec)), 'latency', '10ms'];
  if (withDelay && plan.delayMs > 0) {
    await tc(netns, ['qdisc', 'add', 'dev', dev, 'root', 'handle', '1:', 'netem', 'delay', `${plan.delayMs}ms`, 'limit', '100000'], `adding a ${plan.delayMs} ms delay on ${dev}`,
      'this kernel may lack netem (CONFIG_NET_SCH_NETEM): run without --delay; `ferry testbed down` removes what was made');
    await tc(netns, ['qdisc', 'add', 'dev', dev, 'parent', '1:', 'handle', '2:', ...tbf], `shaping ${dev} to ${plan.rate}`);
  } else {
    await tc(netns, ['qdisc', 'add', 'dev', dev, 'root', ...tbf], `shaping ${dev} to ${plan.rate}`);
  }
}

/** One queueing discipline on an interface, as `tc -j qdisc show` reports it. */
export interface Qdisc {
  kind: string;
  /** tbf's rate, bits per second. */
  rateBitsPerSec?: number;
  /** netem's delay, ms. */
  delayMs?: number;
}

/** The qdiscs on `dev` in `netns` (an empty list when the interface or namespace is gone). */
export async function readQdiscs(netns: string, dev: string): Promise<Qdisc[]> {
  const r = await runTool('tc', ['-n', netns, '-j', 'qdisc', 'show', 'dev', dev]);
  if (r.code !== 0) return [];
  return parseJsonList(r.stdout, 'tc qdisc').map((q) => {
    const o = q as { kind?: unknown; options?: { rate?: unknown; delay?: { delay?: unknown } } };
    const out: Qdisc = { kind: typeof o.kind === 'string' ? o.kind : '?' };
    // tc -j gives tbf's rate in bytes per second.
    if (typeof o.options?.rate === 'number') out.rateBitsPerSec = o.options.rate * 8;
    if (typeof o.options?.delay?.delay === 'number') out.delayMs = o.options.delay.delay * 1000;
    return out;
  });
}

/** Deletes a named namespace (its interfaces, qdiscs and firewall rules go with it once no process is left in it). */
export async function deleteNetns(netns: string): Promise<void> {
  await ip(undefined, ['netns', 'delete', netns], `deleting network namespace ${netns}`);
}
