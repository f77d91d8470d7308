/**
 * Where a testbed keeps its files, and its record (state.json):
 *
 *   <dir>/state.json          what `up` made (written once everything runs)
 *   <dir>/up.lock             held by the `up` that is making the testbed: {pid, startTime}
 *   <dir>/token               the agents' bearer token, mode 0600
 *   <dir>/hosts/<h>/store/    the host's snapshot store
 *   <dir>/hosts/<h>/agent.log the host's agent's stdout and stderr
 *
 * <dir> is $FERRY_TESTBED_DIR, else /run/ferry-testbed (tmpfs: a reboot, which also ends every
 * namespace, leaves nothing stale behind).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { FerryError, errnoCode } from '../util/errors.js';
import { DEFAULT_PREFIX, checkPrefix } from './plan.js';
import { isSameProcess, processStartTime } from './proc.js';

export const DEFAULT_TESTBED_DIR = '/run/ferry-testbed';

export function testbedDir(env: NodeJS.ProcessEnv = process.env): string {
  return env['FERRY_TESTBED_DIR'] || DEFAULT_TESTBED_DIR;
}

/** The namespaces' name prefix: $FERRY_TESTBED_PREFIX (tests keep theirs apart from a user's testbed), else ferry-tb-. */
export function testbedPrefix(env: NodeJS.ProcessEnv = process.env): string {
  return checkPrefix(env['FERRY_TESTBED_PREFIX'] || DEFAULT_PREFIX);
}

export const statePath = (dir: string): string => join(dir, 'state.json');
export const tokenPath = (dir: string): string => join(dir, 'token');
export const upLockPath = (dir: string): string => join(dir, 'up.lock');
export const hostsDir = (dir: string): string => join(dir, 'hosts');
export const hostStore = (dir: string, host: string): string => join(hostsDir(dir), host, 'store');
/**
 * A host's container runtimes' state directories ($FERRY_RUNC_ROOT, $FERRY_CRUN_ROOT for its
 * agent and its `exec`): hosts on one machine must not share them, or a container restored on
 * one would collide with its original on another.
 */
export const hostRuntimeEnv = (dir: string, host: string): { FERRY_RUNC_ROOT: string; FERRY_CRUN_ROOT: string; FERRY_CGROUP_PARENT: string } => ({
  FERRY_RUNC_ROOT: join(hostsDir(dir), host, 'runtime', 'runc'),
  FERRY_CRUN_ROOT: join(hostsDir(dir), host, 'runtime', 'crun'),
  // Restored containers' cgroups: one kernel, so each host keeps its own subtree.
  FERRY_CGROUP_PARENT: `/ferry-testbed-${host}`,
});
export const hostLog = (dir: string, host: string): string => join(hostsDir(dir), host, 'agent.log');

const HostStateSchema = z.object({
  name: z.string(),
  netns: z.string(),
  address: z.string(),
  agent: z.string(),
  agentPid: z.number().int().positive(),
  /** /proc/PID/stat's start time of the agent, so a reused pid is never taken for it. */
  agentStartTime: z.number().int().nonnegative(),
  store: z.string(),
  log: z.string(),
});
export type HostState = z.infer<typeof HostStateSchema>;

const StateSchema = z.object({
  format: z.literal(1),
  prefix: z.string(),
  switchNetns: z.string(),
  subnet: z.string(),
  rate: z.string(),
  delayMs: z.number(),
  token: z.string(),
  createdAt: z.string(),
  hosts: z.array(HostStateSchema),
});
export type TestbedState = z.infer<typeof StateSchema>;

/** The record, undefined when there is none; a damaged one is an error that says `down` fixes it. */
export async function readState(dir: string): Promise<TestbedState | undefined> {
  let text: string;
  try {
    text = await readFile(statePath(dir), 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw new FerryError('ERR_TESTBED_STATE', `testbed: cannot read ${statePath(dir)}: ${(err as Error).message}`, { hint: '`ferry testbed down` removes the testbed without it' });
  }
  let raw: unknown;
  try { raw = JSON.parse(text); } catch { raw = undefined; }
  const r = StateSchema.safeParse(raw);
  if (!r.success) {
    throw new FerryError('ERR_TESTBED_STATE', `testbed: ${statePath(dir)} is damaged (not a testbed record)`, { hint: '`ferry testbed down` removes the testbed without it' });
  }
  return r.data;
}

/** Writes the record atomically (a reader sees all of it or none). */
export async function writeState(dir: string, state: TestbedState): Promise<void> {
  const tmp = `${statePath(dir)}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  await rename(tmp, statePath(dir));
}

/** A fresh random token, in a file only root can read; returns the token. */
export async function makeToken(dir: string): Promise<string> {
  const token = randomBytes(32).toString('base64url');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // A new file (mode 0600 from its first byte), renamed over any old one.
  const tmp = `${tokenPath(dir)}.${process.pid}.tmp`;
  await writeFile(tmp, token + '\n', { mode: 0o600, flag: 'wx' });
  await rename(tmp, tokenPath(dir));
  return token;
}

/** Reads the token `up` made. */
export async function readToken(dir: string): Promise<string> {
  const text = await readFile(tokenPath(dir), 'utf8').catch((err: unknown) => {
    throw new FerryError('ERR_TESTBED_STATE', `testbed: cannot read its token ${tokenPath(dir)}: ${(err as Error).message}`, { hint: 'the testbed is broken: `ferry testbed down`, then `ferry testbed up`' });
  });
  return text.split('\n')[0]?.trim() ?? '';
}

/** The owner of `<dir>/up.lock` when that process still runs. */
async function lockOwner(dir: string): Promise<number | undefined> {
  try {
    const o = JSON.parse(await readFile(upLockPath(dir), 'utf8')) as { pid?: unknown; startTime?: unknown };
    if (typeof o.pid === 'number' && typeof o.startTime === 'number' && (await isSameProcess(o.pid, o.startTime))) return o.pid;
  } catch { /* none, or unreadable: not held */ }
  return undefined;
}

/**
 * Makes one `up` at a time per directory: a second one is refused while the first runs (it would
 * overwrite the token and, failing, remove the first's stores). A lock whose owner is gone is taken over.
 * Returns its release.
 */
export async function takeUpLock(dir: string): Promise<() => Promise<void>> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const mine = JSON.stringify({ pid: process.pid, startTime: (await processStartTime(process.pid)) ?? 0 });
  for (let attempt = 0; ; attempt++) {
    try {
      await writeFile(upLockPath(dir), mine, { flag: 'wx', mode: 0o600 });
      return () => unlink(upLockPath(dir)).catch(() => undefined);
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST' || attempt > 0) throw err;
    }
    const owner = await lockOwner(dir);
    if (owner !== undefined) {
      throw new FerryError('ERR_TESTBED_RUNNING', `testbed: another \`ferry testbed up\` (pid ${owner}) is making a testbed in ${dir}`, { hint: 'wait for it, or `ferry testbed down` after it' });
    }
    await unlink(upLockPath(dir)).catch(() => undefined);
  }
}

/** Removes `<dir>/up.lock` when its owner is gone (a crashed `up`); a live one's stays. */
export async function removeStaleUpLock(dir: string): Promise<void> {
  if ((await lockOwner(dir)) === undefined) await unlink(upLockPath(dir)).catch(() => undefined);
}
