import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { acquireLock } from './locks.js';

describe('per-target locks', () => {
  let root: string;
  before(async () => { root = await mkdtemp(join(tmpdir(), 'ferry-locks-')); });
  after(async () => { await rm(root, { recursive: true, force: true }); });

  it('a second operation on the same target fails fast, naming the first; after release it can go', async () => {
    const first = await acquireLock(root, 'pid-42', 'a checkpoint of pid 42');
    await assert.rejects(acquireLock(root, 'pid-42', 'a checkpoint of pid 42'), (e: Error & { code?: string }) =>
      e.code === 'ERR_ALREADY_RUNNING' && new RegExp(`a checkpoint of pid 42 is already running \\(pid ${process.pid}`).test(e.message));
    const other = await acquireLock(root, 'pid-43', 'a checkpoint of pid 43');
    await first.release();
    const again = await acquireLock(root, 'pid-42', 'a checkpoint of pid 42');
    await again.release();
    await other.release();
  });

  it('a lock left by a process that is gone is taken over', async () => {
    const dead = spawnSync('true').pid;
    await writeFile(join(root, 'locks', 'pid-44.lock'), JSON.stringify({ pid: dead, startTime: 1, what: 'a checkpoint of pid 44', at: 'then' }));
    const l = await acquireLock(root, 'pid-44', 'a checkpoint of pid 44');
    await l.release();
  });

  it('a lock name cannot leave the lock directory', async () => {
    await assert.rejects(acquireLock(root, '../x', 'x'), /invalid lock name/);
  });
});
