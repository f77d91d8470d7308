import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError, errnoCode } from '../util/errors.js';
import { readFileSync } from 'node:fs';

/**
 * One operation per workload at a time: a lock file per target (and per snapshot for rewrites)
 * under `<store>/locks/`, created with O_EXCL and holding its owner's pid and start time. A lock
 * whose owner is gone (or whose pid now names another process) is stale and taken over; a live
 * one makes the second operation fail fast, naming the owner.
 */
export interface Lock {
  release(): Promise<void>;
}

interface Owner { pid: number; startTime: number | undefined; what: string; at: string }

function startTimeOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (f[0] === 'Z' || f[0] === 'X') return undefined;
    return Number(f[19]);
  } catch {
    return undefined;
  }
}

function ownerAlive(o: Owner): boolean {
  const now = startTimeOf(o.pid);
  return now !== undefined && (o.startTime === undefined || now === o.startTime);
}

/** Takes the lock `key` in `root`'s lock directory, or fails with ERR_ALREADY_RUNNING. */
export async function acquireLock(root: string, key: string, what: string): Promise<Lock> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$/.test(key)) throw new FerryError('ERR_USAGE', `invalid lock name '${key}'`);
  const dir = join(root, 'locks');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, `${key}.lock`);
  const me: Owner = { pid: process.pid, startTime: startTimeOf(process.pid), what, at: new Date().toISOString() };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o600);
      await fh.writeFile(JSON.stringify(me) + '\n');
      await fh.close();
      return { release: () => rm(path, { force: true }) };
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
    }
    let owner: Owner | undefined;
    try {
      owner = JSON.parse(await readFile(path, 'utf8')) as Owner;
    } catch {
      owner = undefined; // being written right now, or garbage: look again
    }
    if (owner && ownerAlive(owner)) {
      throw new FerryError('ERR_ALREADY_RUNNING', `${owner.what} is already running (pid ${owner.pid}, since ${owner.at})`, {
        hint: 'wait for it to finish, then try again',
      });
    }
    if (owner || attempt > 0) await rm(path, { force: true }); // stale: its owner is gone
    else await new Promise((r) => setTimeout(r, 20));
  }
  throw new FerryError('ERR_ALREADY_RUNNING', `could not take the lock ${key}: another ferry keeps taking it`, { hint: 'try again' });
}

/** Runs `fn` holding the snapshot's lock (restores and rewrites of one snapshot never overlap). */
export async function withSnapshotLock<T>(root: string, id: string, what: string, fn: () => Promise<T>): Promise<T> {
  const lock = await acquireLock(root, `snapshot-${id}`, what);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}
