import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isFerryError } from '../util/errors.js';
import { makeToken, readState, readToken, takeUpLock, tokenPath, upLockPath, writeState, type TestbedState } from './state.js';

test('one up at a time per directory; a lock whose owner is gone is taken over', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-testbed-lock-'));
  try {
    const release = await takeUpLock(dir);
    await assert.rejects(takeUpLock(dir), (e) => isFerryError(e, 'ERR_TESTBED_RUNNING') && /another `ferry testbed up` \(pid \d+\)/.test(e.message));
    await release();
    await (await takeUpLock(dir))();
    // A lock left by a process that has exited.
    const dead = spawnSync('true').pid;
    await writeFile(upLockPath(dir), JSON.stringify({ pid: dead, startTime: 1 }));
    const again = await takeUpLock(dir);
    assert.equal((JSON.parse(await readFile(upLockPath(dir), 'utf8')) as { pid: number }).pid, process.pid);
    await again();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the token is random, 0600, and read back; the record round-trips and a damaged one says so', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-testbed-state-'));
  try {
    const a = await makeToken(dir);
    assert.equal((await stat(tokenPath(dir))).mode & 0o777, 0o600);
    assert.equal(await readToken(dir), a);
    assert.notEqual(await makeToken(dir), a);
    assert.equal(await readState(dir), undefined);
    const state: TestbedState = {
      format: 1, prefix: 'ferry-tb-', switchNetns: 'ferry-tb-sw', subnet: '10.251.0.0/24', rate: '1gbit', delayMs: 0, token: tokenPath(dir), createdAt: 'now',
      hosts: [{ name: 'h1', netns: 'ferry-tb-h1', address: '10.251.0.1', agent: 'http://10.251.0.1:7387', agentPid: 1, agentStartTime: 1, store: '/s', log: '/l' }],
    };
    await writeState(dir, state);
    assert.deepEqual(await readState(dir), state);
    await writeFile(join(dir, 'state.json'), '{"format":1}');
    await assert.rejects(readState(dir), (e) => isFerryError(e, 'ERR_TESTBED_STATE') && /damaged/.test(e.message));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
