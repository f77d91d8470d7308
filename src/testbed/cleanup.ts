/**
 * Taking a testbed apart: every process in its namespaces (agents first, with SIGTERM; the rest,
 * e.g. workloads a test started there, with SIGKILL), the namespaces (their links, qdiscs and
 * firewall rules go with them), the stores and their memory tiers, the token and the record.
 * It works from the record when there is one and from what it finds by name when there is not
 * (after a crash, or a half-finished `up`), and is idempotent.
 */
import { execFile } from 'node:child_process';
import { access, readFile, readdir, rm, rmdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DEFAULT_MEMORY_BASE, readBackPointer } from '../store/layout.js';
import { Store } from '../store/store.js';
import { FerryError, errnoCode } from '../util/errors.js';
import { endProcesses } from './agents.js';
import { isSameProcess } from './proc.js';
import { deleteNetns, listNetns, netnsInode, processesIn } from './netns.js';
import { isTestbedNetns, switchNetnsOf } from './plan.js';
import { hostsDir, readState, removeStaleUpLock, statePath, tokenPath, type TestbedState } from './state.js';

/** What to take apart. */
export interface TeardownTarget {
  dir: string;
  /** Network namespaces, by name. */
  namespaces: string[];
  /** Agents known by pid and start time (from the record, or just started). */
  agents: { pid: number; startTime: number }[];
  /** Store roots whose memory tiers go too. */
  stores: string[];
}

export interface TeardownResult {
  namespaces: string[];
  /** Agents that ended on SIGTERM. */
  agentsStopped: number;
  /** Processes ended with SIGKILL (agents that overran their grace, and anything else in the namespaces). */
  processesKilled: number;
  stores: string[];
  memoryTiers: string[];
}

export interface DownResult extends TeardownResult {
  /** False when there was nothing to remove. */
  wasUp: boolean;
}

/** True for a process whose command line is a ferry agent (found in a namespace without a record). */
async function isAgent(pid: number): Promise<boolean> {
  const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
  return argv.includes('agent') && argv.includes('--token-file');
}

/** Memory-tier directories of the given stores: each store's own, and any under the bases whose back-pointer names one of them. */
async function memoryTiersOf(stores: readonly string[]): Promise<string[]> {
  const found = new Set<string>();
  const roots = new Set(stores.map((s) => resolve(s)));
  const bases = new Set<string>([DEFAULT_MEMORY_BASE]);
  for (const root of stores) {
    try {
      const store = new Store({ root });
      bases.add(store.memoryBase);
      const own = store.existingMemoryDir();
      if (own !== undefined) found.add(own);
    } catch { /* a damaged store identity: the back-pointer scan below still finds its tier */ }
  }
  for (const base of bases) {
    for (const e of await readdir(base).catch(() => [] as string[])) {
      const bp = readBackPointer(join(base, e));
      if (bp && roots.has(resolve(bp.root))) found.add(join(base, e));
    }
  }
  const existing = await Promise.all([...found].map((d) => access(d).then(() => d, () => undefined)));
  return existing.filter((d): d is string => d !== undefined);
}

/**
 * Removes what `target` names. Every step runs even when one fails; the failures are reported
 * together at the end (ERR_TESTBED_CLEANUP) with what is left.
 */
export async function teardown(target: TeardownTarget): Promise<TeardownResult> {
  const problems: string[] = [];
  const result: TeardownResult = { namespaces: [], agentsStopped: 0, processesKilled: 0, stores: [], memoryTiers: [] };
  const inodes = new Set<bigint>();
  for (const ns of target.namespaces) {
    const ino = await netnsInode(ns);
    if (ino !== undefined) inodes.add(ino);
  }
  // Processes: agents gently, then everything left in the namespaces. A second and third pass
  // catch anything forked while the first ran.
  const agents = new Set<number>();
  for (const a of target.agents) if (await isSameProcess(a.pid, a.startTime)) agents.add(a.pid);
  for (let pass = 0; pass < 3; pass++) {
    const inside = await processesIn(inodes);
    if (pass === 0) for (const pid of inside) if (await isAgent(pid)) agents.add(pid);
    const gentle = pass === 0 ? [...agents] : [];
    const others = inside.filter((p) => !gentle.includes(p));
    if (gentle.length === 0 && others.length === 0) break;
    const r = await endProcesses(gentle, others);
    result.agentsStopped += r.terminated;
    result.processesKilled += r.killed;
    if (r.stuck.length && pass === 2) problems.push(`processes ${r.stuck.join(', ')} did not end after SIGKILL`);
  }
  // Containers a host's runtimes run live in namespaces of their own: end them by their runtime.
  for (const root of await runtimeRootsUnder(target.dir)) {
    const rt = root.endsWith('runc') ? 'runc' : 'crun';
    for (const id of await listContainers(rt, root)) {
      const r = await runQuiet(rt, ['--root', root, 'delete', '--force', id]);
      if (r !== 0) problems.push(`${rt} could not delete container ${id} (${root})`);
    }
  }
  // The cgroups the hosts restored containers under (FERRY_CGROUP_PARENT), empty once they ended.
  for (const c of await readdir('/sys/fs/cgroup').catch(() => [] as string[])) {
    for (const h of await readdir(hostsDir(target.dir)).catch(() => [] as string[])) {
      const parent = join('/sys/fs/cgroup', c, `ferry-testbed-${h}`);
      for (const leaf of await readdir(parent, { withFileTypes: true }).catch(() => [])) if (leaf.isDirectory()) await rmdir(join(parent, leaf.name)).catch(() => undefined);
      await rmdir(parent).catch(() => undefined);
    }
  }
  // Hosts before the switch: each host's veth goes with its namespace.
  const ordered = [...target.namespaces].sort((a, b) => Number(a.endsWith('sw')) - Number(b.endsWith('sw')));
  for (const ns of ordered) {
    try {
      await deleteNetns(ns);
      result.namespaces.push(ns);
    } catch (err) {
      if ((await listNetns()).includes(ns)) problems.push((err as Error).message);
    }
  }
  // Stores: their memory tiers (RAM) first, then the directories.
  for (const dir of await memoryTiersOf(target.stores)) {
    try {
      await rm(dir, { recursive: true, force: true });
      result.memoryTiers.push(dir);
    } catch (err) { problems.push(`cannot remove memory tier ${dir}: ${(err as Error).message}`); }
  }
  for (const store of target.stores) {
    try {
      await rm(store, { recursive: true, force: true });
      result.stores.push(store);
    } catch (err) { problems.push(`cannot remove store ${store}: ${(err as Error).message}`); }
  }
  for (const p of [hostsDir(target.dir), tokenPath(target.dir), statePath(target.dir)]) {
    await rm(p, { recursive: true, force: true }).catch((err: unknown) => { problems.push(`cannot remove ${p}: ${(err as Error).message}`); });
  }
  // The directory itself when nothing else is in it (FERRY_TESTBED_DIR may be shared).
  await rmdir(target.dir).catch((err: unknown) => {
    const code = errnoCode(err);
    if (code !== 'ENOENT' && code !== 'ENOTEMPTY' && code !== 'EEXIST') problems.push(`cannot remove ${target.dir}: ${(err as Error).message}`);
  });
  if (problems.length) {
    throw new FerryError('ERR_TESTBED_CLEANUP', `testbed: could not remove everything: ${problems.join('; ')}`, {
      hint: 'see what is left with `ip netns list` and `ps`; run `ferry testbed down` again once it is gone',
    });
  }
  return result;
}

/** The hosts' runtime state directories (testbed exec's $FERRY_RUNC_ROOT / $FERRY_CRUN_ROOT). */
async function runtimeRootsUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const h of await readdir(hostsDir(dir)).catch(() => [] as string[])) {
    for (const rt of ['runc', 'crun']) {
      const root = join(hostsDir(dir), h, 'runtime', rt);
      if (await access(root).then(() => true, () => false)) out.push(root);
    }
  }
  return out;
}

function runQuiet(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 20_000 }, (err) => resolve(err ? 1 : 0));
  });
}

async function listContainers(rt: string, root: string): Promise<string[]> {
  return new Promise((resolve) => {
    execFile(rt, ['--root', root, 'list', '-q'], { timeout: 20_000 }, (err, stdout) => resolve(err ? [] : stdout.split('\n').map((l) => l.trim()).filter(Boolean)));
  });
}

/** The host stores under the testbed directory (found without the record). */
async function storesUnder(dir: string): Promise<string[]> {
  const hosts = await readdir(hostsDir(dir)).catch(() => [] as string[]);
  return hosts.map((h) => join(hostsDir(dir), h, 'store'));
}

/** `ferry testbed down`: everything of the testbed in `dir` and every namespace named with `prefix`. */
export async function downTestbed(o: { dir: string; prefix: string }): Promise<DownResult> {
  let state: TestbedState | undefined;
  try {
    state = await readState(o.dir);
  } catch (err) {
    if (!(err instanceof FerryError && err.code === 'ERR_TESTBED_STATE')) throw err;
    state = undefined; // a damaged record: everything is found by name instead
  }
  const prefixes = new Set([o.prefix, ...(state ? [state.prefix] : [])]);
  const namespaces = new Set<string>();
  for (const ns of await listNetns()) for (const p of prefixes) if (isTestbedNetns(p, ns)) namespaces.add(ns);
  for (const h of state?.hosts ?? []) if ((await listNetns()).includes(h.netns)) namespaces.add(h.netns);
  if (state && (await listNetns()).includes(state.switchNetns)) namespaces.add(state.switchNetns);
  const stores = new Set([...(state?.hosts.map((h) => h.store) ?? []), ...(await storesUnder(o.dir))]);
  const exists = (p: string) => access(p).then(() => true, () => false);
  const leftoverFiles = (await Promise.all([statePath(o.dir), tokenPath(o.dir), hostsDir(o.dir)].map(exists))).some(Boolean);
  const wasUp = state !== undefined || namespaces.size > 0 || stores.size > 0 || leftoverFiles;
  await removeStaleUpLock(o.dir);
  const r = await teardown({
    dir: o.dir,
    namespaces: [...namespaces],
    agents: state?.hosts.map((h) => ({ pid: h.agentPid, startTime: h.agentStartTime })) ?? [],
    stores: [...stores],
  });
  return { wasUp, ...r };
}

/** Namespaces of a testbed with this prefix that exist now (a running testbed or leftovers). */
export async function testbedNamespaces(prefix: string): Promise<string[]> {
  return (await listNetns()).filter((ns) => isTestbedNetns(prefix, ns) || ns === switchNetnsOf(prefix));
}
