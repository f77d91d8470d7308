/**
 * A testbed of hosts on one machine (the typed API behind `ferry testbed`): hosts h1…hN are
 * network namespaces on one bridge (in a switch namespace of its own), every link shaped with tc,
 * each host with its own store and its own agent listening on the host's address with a token.
 * Traffic stays between the testbed's namespaces: the machine's own namespace gets no interface,
 * address or route of it.
 */
import { spawn } from 'node:child_process';
import { rmdir } from 'node:fs/promises';
import { constants } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../criu/binary.js';
import { FerryError } from '../util/errors.js';
import { probeHealth, startAgent, waitHealthy, type StartedAgent } from './agents.js';
import { isSameProcess } from './proc.js';
import { downTestbed, teardown, testbedNamespaces, type DownResult } from './cleanup.js';
import { HOST_IF, DEFAULT_RATE, chooseSubnet, planTestbed, parseRate, type TestbedPlan } from './plan.js';
import { addBridge, addHostLink, addNetns, listNetns, machineNetwork, netnsPath, readQdiscs, shape, type Qdisc } from './netns.js';
import { hostLog, hostRuntimeEnv, hostStore, makeToken, readState, readToken, takeUpLock, testbedDir, testbedPrefix, tokenPath, writeState, type HostState, type TestbedState } from './state.js';

export type { DownResult } from './cleanup.js';

export interface TestbedOptions {
  /** Where the testbed keeps its files (default $FERRY_TESTBED_DIR or /run/ferry-testbed). */
  dir?: string;
  /** Its namespaces' name prefix (default $FERRY_TESTBED_PREFIX or ferry-tb-). */
  prefix?: string;
}

export interface UpOptions extends TestbedOptions {
  /** Number of hosts (default 2). */
  hosts?: number;
  /** tc rate of every link, both ways (default 1gbit). */
  rate?: string;
  /** One-way delay between two hosts, ms (netem on each host's egress; default 0). */
  delayMs?: number;
  /** The ferry command line the agents run (default: this checkout's bin/ferry). */
  cli?: string;
  /** How long each agent may take to answer /v1/health (default 15 s). */
  healthTimeoutMs?: number;
}

export interface UpResult {
  hosts: { name: string; address: string; agent: string; agentPid: number; store: string }[];
  subnet: string;
  rate: string;
  delayMs: number;
  /** The token file's path. */
  token: string;
}

const resolveDir = (o: TestbedOptions) => o.dir ?? testbedDir();
const resolvePrefix = (o: TestbedOptions) => o.prefix ?? testbedPrefix();

function upResult(state: TestbedState): UpResult {
  return {
    hosts: state.hosts.map((h) => ({ name: h.name, address: h.address, agent: h.agent, agentPid: h.agentPid, store: h.store })),
    subnet: state.subnet,
    rate: state.rate,
    delayMs: state.delayMs,
    token: state.token,
  };
}

/** Refuses when a testbed (or leftovers of one) is there. */
async function refuseIfUp(dir: string, prefix: string): Promise<void> {
  const state = await readState(dir).catch(() => 'damaged' as const);
  const leftovers = await testbedNamespaces(prefix);
  if (state !== undefined || leftovers.length) {
    const what = state === 'damaged' ? `its record ${dir}/state.json is damaged` : state ? `hosts ${state.hosts.map((h) => h.name).join(', ')} on ${state.subnet}` : `leftover namespaces ${leftovers.join(', ')}`;
    throw new FerryError('ERR_TESTBED_RUNNING', `testbed: a testbed is already up (${what})`, { hint: '`ferry testbed down` removes it first' });
  }
}

/**
 * `ferry testbed up`: makes the network, starts the agents and waits for each to answer
 * /v1/health, then writes the record. A failure at any step removes what this call made.
 */
export async function testbedUp(o: UpOptions = {}): Promise<UpResult> {
  const dir = resolveDir(o);
  const prefix = resolvePrefix(o);
  const rate = o.rate ?? DEFAULT_RATE;
  parseRate(rate);
  const release = await takeUpLock(dir);
  try {
    return await upLocked(o, dir, prefix, rate);
  } finally {
    await release();
    // A failed up leaves its directory as it found it (empty: gone).
    await rmdir(dir).catch(() => undefined);
  }
}

async function upLocked(o: UpOptions, dir: string, prefix: string, rate: string): Promise<UpResult> {
  await refuseIfUp(dir, prefix);
  const plan: TestbedPlan = planTestbed({ prefix, hosts: o.hosts ?? 2, rate, delayMs: o.delayMs ?? 0, subnet: chooseSubnet(await machineNetwork()) });
  const made: string[] = [];
  const agents: (StartedAgent & { host: string })[] = [];
  const stores = plan.hosts.map((h) => hostStore(dir, h.name));
  try {
    const token = await makeToken(dir);
    // Each namespace is counted as made only once its own `ip netns add` succeeded: one that
    // already existed (another testbed's) is never taken down here.
    await addNetns(plan.switchNetns);
    made.push(plan.switchNetns);
    await addBridge(plan);
    for (const host of plan.hosts) {
      await addNetns(host.netns);
      made.push(host.netns);
      await addHostLink(plan, host);
      await shape(plan, host.netns, HOST_IF, true);
      await shape(plan, plan.switchNetns, host.switchIf, false);
    }
    for (const host of plan.hosts) {
      // Each agent knows the others (the dashboard's hosts view and its migration destinations).
      const peers = plan.hosts.filter((p) => p !== host).map((p) => `${p.name}=${p.agentUrl}`).join(',');
      const env = { ...hostRuntimeEnv(dir, host.name), FERRY_AGENT_NAME: host.name, FERRY_PEERS: peers };
      const a = await startAgent({ host, store: hostStore(dir, host.name), log: hostLog(dir, host.name), tokenFile: tokenPath(dir), cli: o.cli ?? join(PROJECT_ROOT, 'bin', 'ferry'), env });
      agents.push({ ...a, host: host.name });
    }
    await Promise.all(plan.hosts.map((host, i) => waitHealthy({
      host, store: hostStore(dir, host.name), log: hostLog(dir, host.name), token, agent: agents[i]!, timeoutMs: o.healthTimeoutMs ?? 15_000,
    })));
    const state: TestbedState = {
      format: 1, prefix, switchNetns: plan.switchNetns, subnet: plan.subnet, rate, delayMs: plan.delayMs, token: tokenPath(dir), createdAt: new Date().toISOString(),
      hosts: plan.hosts.map((h, i) => ({
        name: h.name, netns: h.netns, address: h.address, agent: h.agentUrl, agentPid: agents[i]!.pid, agentStartTime: agents[i]!.startTime,
        store: hostStore(dir, h.name), log: hostLog(dir, h.name),
      })),
    };
    await writeState(dir, state);
    return upResult(state);
  } catch (err) {
    // Only what this call made (never another testbed's namespaces of the same name that appeared meanwhile).
    const existing = new Set(await listNetns());
    await teardown({ dir, namespaces: made.filter((n) => existing.has(n)), agents, stores }).catch((e: unknown) => {
      if (err instanceof FerryError) err.addCleanupError(e);
    });
    throw err;
  }
}

/**
 * `ferry testbed down`: removes everything of the testbed (found from its record, and by name
 * without one); succeeds, with wasUp false, when nothing is there.
 */
export function testbedDown(o: TestbedOptions = {}): Promise<DownResult> {
  return downTestbed({ dir: resolveDir(o), prefix: resolvePrefix(o) });
}

/** The record of the running testbed, or a clear error when there is none. */
export async function requireState(o: TestbedOptions = {}): Promise<TestbedState> {
  const dir = resolveDir(o);
  const state = await readState(dir);
  if (!state) throw new FerryError('ERR_NO_TESTBED', `testbed: no testbed is up (no ${dir}/state.json)`, { hint: '`ferry testbed up` starts one' });
  return state;
}

function findHost(state: TestbedState, name: string): HostState {
  const host = state.hosts.find((h) => h.name === name);
  if (!host) {
    throw new FerryError('ERR_NO_TESTBED_HOST', `testbed: no host '${name}'; the hosts are ${state.hosts.map((h) => h.name).join(', ')}`, { hint: 'e.g. ferry testbed exec h1 -- CMD' });
  }
  return host;
}

export interface ExecEnv {
  netns: string;
  /** The namespace's file, for `nsenter --net=`. */
  netnsPath: string;
  /** FERRY_STORE, FERRY_AGENT, FERRY_TOKEN and the runtimes' state directories for that host. */
  env: { FERRY_STORE: string; FERRY_AGENT: string; FERRY_TOKEN: string; FERRY_RUNC_ROOT: string; FERRY_CRUN_ROOT: string; FERRY_CGROUP_PARENT: string };
}

/** What a command run "on" a host needs: its namespace and its ferry environment. */
export async function testbedExecEnv(hostName: string, o: TestbedOptions = {}): Promise<ExecEnv> {
  const state = await requireState(o);
  const host = findHost(state, hostName);
  if (!(await listNetns()).includes(host.netns)) {
    throw new FerryError('ERR_TESTBED_STATE', `testbed: ${host.name}'s namespace ${host.netns} is gone`, { hint: 'the testbed is broken: `ferry testbed down`, then `ferry testbed up`' });
  }
  const token = await readToken(resolveDir(o));
  return { netns: host.netns, netnsPath: netnsPath(host.netns), env: { FERRY_STORE: host.store, FERRY_AGENT: host.agent, FERRY_TOKEN: token, ...hostRuntimeEnv(resolveDir(o), host.name) } };
}

/** The signals `ferry testbed exec` hands on to its command (SIGINT only without a terminal: on one, it reaches both). */
const FORWARDED: NodeJS.Signals[] = ['SIGTERM', 'SIGHUP', 'SIGINT'];

/**
 * Runs `command` in a host's network namespace (nsenter --net: only the network namespace, so
 * CRIU sees the same mounts as everywhere else), in the current directory, with the host's ferry
 * environment and this process's stdio. Resolves to its exit code (128 + the signal when killed).
 */
export async function testbedExec(hostName: string, command: readonly string[], o: TestbedOptions & { stdio?: 'inherit' | 'ignore' } = {}): Promise<number> {
  if (command.length === 0) throw new FerryError('ERR_USAGE', 'testbed exec: give a command to run', { hint: 'ferry testbed exec h1 -- CMD ARGS…' });
  const e = await testbedExecEnv(hostName, o);
  const child = spawn('nsenter', [`--net=${e.netnsPath}`, '--', ...command], { stdio: o.stdio ?? 'inherit', env: { ...process.env, ...e.env } });
  const forward = (s: NodeJS.Signals) => {
    if (s === 'SIGINT' && process.stdin.isTTY) return;
    child.kill(s);
  };
  for (const s of FORWARDED) process.on(s, forward);
  try {
    return await new Promise<number>((resolve, reject) => {
      child.once('error', (err) => reject(new FerryError('ERR_TESTBED_SETUP', `testbed exec: cannot start nsenter: ${err.message}`, { hint: 'nsenter (util-linux) is needed' })));
      child.once('close', (code, signal) => {
        if (code !== null) return resolve(code);
        resolve(128 + (signal ? (SIGNALS[signal] ?? 0) : 0));
      });
    });
  } finally {
    for (const s of FORWARDED) process.off(s, forward);
  }
}

const SIGNALS = constants.signals as Record<string, number>;

export interface HostStatus {
  name: string;
  netns: string;
  netnsExists: boolean;
  address: string;
  agent: string;
  agentPid: number;
  agentAlive: boolean;
  /** /v1/health answered 200 for this host's store, from inside the host. */
  agentHealthy: boolean;
  agentError?: string;
  store: string;
  log: string;
  /** The qdiscs on the host's side (its egress) and the switch's side (its ingress). */
  shaping: { host: Qdisc[]; switch: Qdisc[] };
}

export interface StatusResult {
  up: boolean;
  /** Everything in order: each namespace there, each agent alive and answering, each link shaped at the rate. */
  healthy: boolean;
  dir: string;
  subnet?: string;
  rate?: string;
  delayMs?: number;
  token?: string;
  hosts: HostStatus[];
  /** Namespaces of a testbed without a record (a crash or a half-finished up). */
  leftovers: string[];
}

const shapedAt = (qs: Qdisc[], bits: number) => qs.some((q) => q.kind === 'tbf' && q.rateBitsPerSec !== undefined && Math.abs(q.rateBitsPerSec - bits) <= bits * 0.01);

/** `ferry testbed status`: what is there and whether it works. */
export async function testbedStatus(o: TestbedOptions = {}): Promise<StatusResult> {
  const dir = resolveDir(o);
  const prefix = resolvePrefix(o);
  const state = await readState(dir);
  if (!state) {
    const leftovers = await testbedNamespaces(prefix);
    return { up: false, healthy: leftovers.length === 0, dir, hosts: [], leftovers };
  }
  const token = await readToken(dir).catch(() => '');
  const namespaces = new Set(await listNetns());
  const bits = parseRate(state.rate);
  const hosts = await Promise.all(state.hosts.map(async (h): Promise<HostStatus> => {
    const netnsExists = namespaces.has(h.netns);
    const agentAlive = await isSameProcess(h.agentPid, h.agentStartTime);
    const health = netnsExists && agentAlive && token ? await probeHealth({ netns: h.netns, url: h.agent, token, waitMs: 0 }) : { ok: false, error: !netnsExists ? 'namespace gone' : !agentAlive ? 'agent not running' : 'no token' };
    const agentHealthy = health.ok && health.store === h.store;
    const s: HostStatus = {
      name: h.name, netns: h.netns, netnsExists, address: h.address, agent: h.agent, agentPid: h.agentPid, agentAlive, agentHealthy,
      store: h.store, log: h.log,
      shaping: { host: await readQdiscs(h.netns, HOST_IF), switch: await readQdiscs(state.switchNetns, h.name) },
    };
    if (!agentHealthy) s.agentError = health.error ?? `answered for store ${health.store ?? '?'}`;
    return s;
  }));
  const healthy = namespaces.has(state.switchNetns) && hosts.every((h) => h.netnsExists && h.agentHealthy && shapedAt(h.shaping.host, bits) && shapedAt(h.shaping.switch, bits));
  return { up: true, healthy, dir, subnet: state.subnet, rate: state.rate, delayMs: state.delayMs, token: state.token, hosts, leftovers: [] };
}
