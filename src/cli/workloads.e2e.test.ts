// `ferry run`, `ps`, `stop` and workload logs across stores, through the real CLI and CRIU.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ferryCli, ferryOk, ferryRefused } from '../testing/ferry-cli.js';
import { isAlive, OwnedPids, waitFor } from '../testing/processes.js';
import { memcheckWorkload, type WorkloadInstance } from '../testing/workloads.js';

const pids = new OwnedPids();
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  pids.killAll();
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

async function tempDir(prefix: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), `ferry-wl-${prefix}-`));
  cleanups.push(() => rm(d, { recursive: true, force: true }));
  return d;
}

interface PsRow { name: string; pid: number; state: string; restoredFrom: string | null; lastSnapshot: string | null; stdout: string; stderr: string }
async function ps(store: string): Promise<PsRow[]> {
  return (JSON.parse(await ferryOk(store, ['ps', '--json'])) as { workloads: PsRow[] }).workloads;
}

async function run(store: string, name: string, command: string[]): Promise<number> {
  const r = JSON.parse(await ferryOk(store, ['run', '--name', name, '--json', '--', ...command])) as { pid: number };
  pids.add(r.pid);
  return r.pid;
}

async function memcheck(base: string): Promise<WorkloadInstance> {
  const wl = await memcheckWorkload({ mib: 8, seed: 3 }).prepare(base);
  cleanups.push(() => wl.cleanup());
  return wl;
}

describe('ferry run / ps / stop (real processes, real CRIU)', () => {
  it('run of a command that cannot be executed: exit 1 with errno and path, no record, no log directory', async () => {
    const store = await tempDir('store');
    const dir = await tempDir('bin');
    await ferryRefused(store, ['run', '--name', 'missing', '--', '/no/such/binary'], /cannot run \/no\/such\/binary: .*does not exist \[ENOENT\]/);
    await ferryRefused(store, ['run', '--name', 'onpath', '--', 'no-such-command-xyz'], /not found on PATH \[ENOENT\]/);
    const noexec = join(dir, 'noexec.sh');
    await writeFile(noexec, '#!/bin/sh\necho hi\n');
    await chmod(noexec, 0o644);
    await ferryRefused(store, ['run', '--name', 'noexec', '--', noexec], /not executable .*\[EACCES\]/);
    // Passes every check before the start and fails in the launcher's exec (missing interpreter):
    // caught from the launcher's exit status, with its message.
    const badInterp = join(dir, 'bad-interp.sh');
    await writeFile(badInterp, '#!/no/such/interpreter\n');
    await chmod(badInterp, 0o755);
    const r = await ferryRefused(store, ['run', '--name', 'interp', '--', badInterp], /cannot run .*bad-interp\.sh: failed to execute .*No such file or directory \[ENOENT\]/);
    assert.doesNotMatch(r.stdout, /started/);
    const j = await ferryCli(store, ['run', '--name', 'json', '--json', '--', '/no/such/binary']);
    assert.equal(j.code, 1);
    assert.equal((JSON.parse(j.stdout) as { error: { code: string } }).error.code, 'ERR_RUN_EXEC');
    assert.deepEqual(await ps(store), [], 'no workload record');
    for (const n of ['missing', 'onpath', 'noexec', 'interp', 'json']) assert.ok(!existsSync(join(store, 'workloads', n)), `no directory for ${n}`);
  });

  it('ps and stop: running, checkpointed (exited + lastSnapshot), restored with its new pid, stopped; refusals', async () => {
    const store = await tempDir('store');
    const wl = await memcheck(await tempDir('wl'));
    const pid = await run(store, 'mc', wl.command);
    await wl.waitReady();
    let [row] = await ps(store);
    assert.equal(row?.state, 'running');
    assert.equal(row?.pid, pid);
    const snap = (JSON.parse(await ferryOk(store, ['checkpoint', 'mc', '--json'])) as { snapshot: string }).snapshot;
    await waitFor(() => !isAlive(pid), 5000, 'the checkpointed original to exit');
    [row] = await ps(store);
    assert.equal(row?.state, 'exited');
    assert.equal(row?.lastSnapshot, snap);
    await ferryRefused(store, ['stop', 'mc'], /workload 'mc' is not running/);
    await ferryRefused(store, ['checkpoint', 'mc'], /workload 'mc' is not running .*has exited/);

    const restored = (JSON.parse(await ferryOk(store, ['restore', snap, '--json'])) as { pid: number }).pid;
    pids.add(restored);
    [row] = await ps(store);
    assert.equal(row?.state, 'running');
    assert.equal(row?.pid, restored, 'ps lists the restored pid');
    assert.equal(row?.restoredFrom, snap);
    await wl.verify(restored);

    // memcheck's init has no SIGTERM handler: stop must fall back to SIGKILL, quickly.
    const s = JSON.parse(await ferryOk(store, ['stop', 'mc', '--timeout', '5s', '--json'])) as { outcome: string; initHandlesSigterm: boolean; durationMs: number };
    assert.equal(s.outcome, 'killed');
    assert.equal(s.initHandlesSigterm, false);
    assert.ok(s.durationMs < 3000, `took ${s.durationMs} ms`);
    assert.ok(!isAlive(restored), 'the restored workload is gone');
    [row] = await ps(store);
    assert.equal(row?.state, 'stopped');
    await ferryRefused(store, ['stop', 'mc'], /is not running/);
    await ferryRefused(store, ['stop', 'nope'], /no workload named 'nope'/);
  });

  it('stop: an init with a SIGTERM handler exits on SIGTERM; pid reuse does not fool ps', async () => {
    const store = await tempDir('store');
    const pid = await run(store, 'trap', ['sh', '-c', 'trap "exit 0" TERM; while :; do sleep 0.1; done']);
    const s = JSON.parse(await ferryOk(store, ['stop', 'trap', '--json'])) as { outcome: string; initHandlesSigterm: boolean };
    assert.deepEqual([s.outcome, s.initHandlesSigterm], ['terminated', true]);
    assert.ok(!isAlive(pid));
    // A record whose pid is alive but started at another time is not "running".
    const recPath = join(store, 'workloads', 'trap', 'workload.json');
    const rec = JSON.parse(await readFile(recPath, 'utf8')) as Record<string, unknown>;
    await writeFile(recPath, JSON.stringify({ ...rec, pid: process.pid, stoppedAt: undefined }));
    assert.equal((await ps(store))[0]?.state, 'exited', 'same pid, other start time: not running');
    await ferryRefused(store, ['stop', 'trap'], /is not running/);
    // Nor is that pid checkpointed in the workload's name.
    await ferryRefused(store, ['checkpoint', 'trap'], /workload 'trap' is not running/);
    assert.ok(isAlive(process.pid));
  });

  it('logs travel: run in store A, checkpoint, export, import into B, delete A, restore in B: writes into B\'s logs, state verified', async () => {
    const a = await tempDir('storeA');
    const b = await tempDir('storeB');
    const files = await tempDir('files');
    const wl = await memcheck(await tempDir('wl'));
    const mcPid = await run(a, 'mc', wl.command);
    // A counter that lives only in the shell's memory: a restart would start again at 1.
    const tickPid = await run(a, 'tick', ['sh', '-c', 'i=0; while :; do i=$((i+1)); echo "tick $i"; echo "err $i" >&2; sleep 0.05; done']);
    await wl.waitReady();
    await waitFor(() => existsSync(join(a, 'workloads', 'tick', 'stdout.log')), 2000, 'tick log');
    const snaps: Record<string, string> = {};
    for (const n of ['mc', 'tick']) {
      snaps[n] = (JSON.parse(await ferryOk(a, ['checkpoint', n, '--json'])) as { snapshot: string }).snapshot;
      await ferryOk(a, ['export', snaps[n], join(files, `${n}.ferry`)]);
      await ferryOk(b, ['import', join(files, `${n}.ferry`)]);
    }
    await waitFor(() => !isAlive(mcPid) && !isAlive(tickPid), 5000, 'the originals to exit');
    const aTicks = (await readFile(join(a, 'workloads', 'tick', 'stdout.log'), 'utf8')).trim().split('\n');
    const lastA = Number(aTicks.at(-1)?.split(' ')[1]);
    assert.ok(lastA > 0, `ticks in A: ${aTicks.length}`);
    // Without the fds in place, CRIU would need A's log paths: they are gone.
    await rm(a, { recursive: true, force: true });

    const mc = (JSON.parse(await ferryOk(b, ['restore', snaps['mc']!, '--json'])) as { pid: number }).pid;
    pids.add(mc);
    const tick = (JSON.parse(await ferryOk(b, ['restore', snaps['tick']!, '--json'])) as { pid: number }).pid;
    pids.add(tick);
    assert.ok(!existsSync(a), 'store A stays deleted (nothing recreated its paths)');
    await wl.verify(mc);
    for (const [pid, n] of [[mc, 'mc'], [tick, 'tick']] as const) {
      assert.equal(await readlink(`/proc/${pid}/fd/1`), join(b, 'workloads', n, 'stdout.log'));
      assert.equal(await readlink(`/proc/${pid}/fd/2`), join(b, 'workloads', n, 'stderr.log'));
    }
    const outB = join(b, 'workloads', 'tick', 'stdout.log');
    await waitFor(() => existsSync(outB) && /tick \d+\n.*tick \d+\n/s.test(readFileSyncSafe(outB)), 5000, 'ticks in B');
    const bTicks = readFileSyncSafe(outB).trim().split('\n').map((l) => Number(l.split(' ')[1]));
    assert.equal(bTicks[0], lastA + 1, 'the restored counter continues where A left off');
    assert.ok(bTicks.every((n, i) => n === lastA + 1 + i), 'and keeps counting');
    // The freeze may fall between the two echos: B's stderr starts at A's last tick or the next.
    const firstErr = Number(/^err (\d+)\n/.exec(readFileSyncSafe(join(b, 'workloads', 'tick', 'stderr.log')))?.[1]);
    assert.ok(firstErr === lastA || firstErr === lastA + 1, `stderr in B starts at ${firstErr}, A's last tick was ${lastA}`);
    const rows = await ps(b);
    for (const n of ['mc', 'tick']) {
      const row = rows.find((r) => r.name === n);
      assert.equal(row?.state, 'running');
      assert.equal(row?.restoredFrom, snaps[n]);
      assert.equal(row?.stdout, join(b, 'workloads', n, 'stdout.log'), 'the record points at B\'s logs');
    }
    for (const n of ['mc', 'tick']) await ferryOk(b, ['stop', n, '--timeout', '2s']);
    assert.ok(!isAlive(mc) && !isAlive(tick));
  });
});

function readFileSyncSafe(p: string): string {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}
