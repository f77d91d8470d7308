import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { resolveExecutable } from './exec-path.js';
import { isWorkloadLog } from './workload-files.js';
import { listWorkloads, processIdentity, readWorkload, recordWorkload, workloadIsRunning } from './workload-record.js';
import { workloadStatus } from './workload-status.js';

const dirs: string[] = [];
after(async () => { for (const d of dirs) await rm(d, { recursive: true, force: true }); });
async function temp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'ferry-wl-unit-'));
  dirs.push(d);
  return d;
}

describe('resolveExecutable (what execvp would run)', () => {
  it('finds a name on PATH, refuses a missing one (ENOENT) and a non-executable one (EACCES)', async () => {
    const d = await temp();
    await writeFile(join(d, 'tool'), '#!/bin/sh\n');
    await chmod(join(d, 'tool'), 0o755);
    await writeFile(join(d, 'plain'), 'x');
    await chmod(join(d, 'plain'), 0o644);
    await mkdir(join(d, 'adir'));
    const env = { PATH: `/nonexistent:${d}` };
    assert.deepEqual(await resolveExecutable('tool', env), { ok: true, path: join(d, 'tool') });
    assert.equal((await resolveExecutable('nope', env)).ok, false);
    assert.deepEqual(await resolveExecutable('nope', env), { ok: false, errno: 'ENOENT', path: 'nope', why: 'nope was not found on PATH' });
    assert.equal((await resolveExecutable('plain', env) as { errno: string }).errno, 'EACCES');
    assert.equal((await resolveExecutable(join(d, 'plain'), env) as { errno: string }).errno, 'EACCES');
    assert.match((await resolveExecutable(join(d, 'adir'), env) as { why: string }).why, /is a directory/);
    assert.equal((await resolveExecutable('./tool', env, d)).ok, true, 'a name with a slash is a path, relative to cwd');
    assert.equal((await resolveExecutable('', env)).ok, false);
  });
});

describe('workload records: pid + start time', () => {
  it('recordWorkload stores this process\'s start time; workloadIsRunning tells it from a reused pid', async () => {
    const d = await temp();
    const rec = await recordWorkload(d, { name: 'me', pid: process.pid, command: ['node'], stdout: '/o', stderr: '/e', startedAt: new Date().toISOString() });
    assert.equal(rec.startTime, (await processIdentity(process.pid))?.startTime);
    assert.ok(rec.bootId && rec.bootId.length > 0);
    assert.deepEqual(await readWorkload(d, 'me'), rec);
    assert.equal(await workloadIsRunning(rec), true);
    assert.equal(await workloadIsRunning({ ...rec, startTime: (rec.startTime ?? 0) + 1 }), false, 'same pid, other start time');
    assert.equal(await workloadIsRunning({ ...rec, bootId: 'another-boot' }), false, 'same pid and ticks, other boot');
    assert.equal(await workloadIsRunning({ ...rec, startTime: -1 }), false, 'gone when recorded');
    assert.equal(await workloadIsRunning({ ...rec, pid: 0x3fffffff }), false, 'no such pid');
    assert.deepEqual((await listWorkloads(d)).map((r) => r.name), ['me']);
    assert.deepEqual(await listWorkloads(join(d, 'missing')), []);
  });

  it('workloadStatus: running, stopped, exited with the newest snapshot since this incarnation', async () => {
    const d = await temp();
    const rec = await recordWorkload(d, { name: 'w', pid: process.pid, command: ['x'], stdout: '/o', stderr: '/e', startedAt: '2026-01-01T00:00:00.000Z' });
    assert.equal((await workloadStatus(rec)).state, 'running');
    const gone = { ...rec, startTime: -1 };
    const snaps = [
      { id: 'old', createdAt: '2025-12-31T00:00:00.000Z', workload: 'w' },
      { id: 'new', createdAt: '2026-01-02T00:00:00.000Z', workload: 'w' },
      { id: 'other', createdAt: '2026-01-03T00:00:00.000Z', workload: 'v' },
    ];
    const s = await workloadStatus(gone, snaps);
    assert.deepEqual([s.state, s.lastSnapshot], ['exited', 'new']);
    assert.equal((await workloadStatus({ ...gone, stoppedAt: '2026-01-02T00:00:00.000Z' })).state, 'stopped');
  });
});

describe('isWorkloadLog', () => {
  it('matches <store>/workloads/NAME/{stdout,stderr}.log only', () => {
    assert.equal(isWorkloadLog('/var/lib/ferry/workloads/web/stdout.log', 'web', 'stdout'), true);
    assert.equal(isWorkloadLog('/var/lib/ferry/workloads/web/stderr.log', 'web', 'stderr'), true);
    assert.equal(isWorkloadLog('/var/lib/ferry/workloads/web/stdout.log', 'web', 'stderr'), false);
    assert.equal(isWorkloadLog('/var/lib/ferry/workloads/db/stdout.log', 'web', 'stdout'), false);
    assert.equal(isWorkloadLog('/tmp/web/stdout.log', 'web', 'stdout'), false);
  });
});
