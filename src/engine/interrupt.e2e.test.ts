// Never lose a workload: a checkpoint interrupted (SIGINT, SIGTERM) at several points of a
// 200 MiB dump, with and without --leave-running, always leaves the workload either still
// running (and verifying itself) or restorable from a visible snapshot that verifies; no `.tmp-*`
// survives the next command. Also: two checkpoints of one workload at once give one snapshot and
// one "already running" refusal; a workload killed in the middle of its dump makes the checkpoint
// fail within seconds (the watchdog), naming the cause.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PROJECT_ROOT } from '../criu/binary.js';
import { FERRY } from '../testing/ferry-cli.js';
import { isAlive, killQuietly, OwnedPids, waitFor } from '../testing/processes.js';
import { memcheckWorkload, type WorkloadInstance } from '../testing/workloads.js';

interface Ran { code: number | null; signal: string | null; stdout: string; stderr: string; ms: number }

let store: string;
let base: string;
/** The memory tier's base for this test's store (removed afterwards: RAM is not left behind). */
let memBase: string;
const pids = new OwnedPids();

function ferry(args: string[], env: Record<string, string> = {}): Promise<Ran> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(FERRY, ['--store', store, ...args], { cwd: PROJECT_ROOT, env: { ...process.env, FERRY_MEMORY_TIER: memBase, ...env }, timeout: 120_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, signal: null, stdout, stderr, ms: Date.now() - t0 }));
  });
}

async function ok(args: string[]): Promise<string> {
  const r = await ferry(args);
  assert.equal(r.code, 0, `ferry ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

/** Starts `ferry checkpoint` and resolves when it ends, with a hook to signal it at a point of its work. */
function checkpointProcess(args: string[]): { pid: number; done: Promise<Ran> } {
  const t0 = Date.now();
  const child = spawn(FERRY, ['--store', store, 'checkpoint', ...args], { cwd: PROJECT_ROOT, env: { ...process.env, FERRY_MEMORY_TIER: memBase }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
  const done = new Promise<Ran>((resolve) => child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 })));
  return { pid: child.pid!, done };
}

const snapshotsDir = () => join(store, 'snapshots');
const pending = (): string | undefined => readdirSync(snapshotsDir()).find((n) => n.startsWith('.tmp-'));
const pagesBytes = (dir: string) => readdirSync(dir).filter((n) => n.startsWith('pages-')).reduce((a, n) => a + statSync(join(dir, n)).size, 0);

type Point = 'begin' | 'dumping' | 'sealing';

/** Resolves when the checkpoint in progress has reached `point`, judged from what it writes. */
async function reached(point: Point): Promise<void> {
  const until = Date.now() + 60_000;
  for (;;) {
    if (Date.now() > until) throw new Error(`the checkpoint never reached '${point}'`);
    const p = existsSync(snapshotsDir()) ? pending() : undefined;
    if (p) {
      const dir = join(snapshotsDir(), p);
      if (point === 'begin') return;
      // The seal copies CRIU's dump.log into the snapshot first thing.
      if (point === 'sealing' && existsSync(join(dir, 'dump.log'))) return;
      if (point === 'dumping' && pagesBytes(dir) > 40 << 20) return;
    }
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe('interrupted checkpoints never lose the workload', { concurrency: false }, () => {
  let inst: WorkloadInstance;
  before(async () => {
    store = await mkdtemp(join(tmpdir(), 'ferry-intr-'));
    base = await mkdtemp(join(tmpdir(), 'ferry-intr-wl-'));
    memBase = await mkdtemp('/dev/shm/ferry-intr-mem-');
  });
  after(async () => {
    pids.killAll();
    await rm(base, { recursive: true, force: true });
    await rm(store, { recursive: true, force: true });
    await rm(memBase, { recursive: true, force: true });
  });

  /** A fresh 200 MiB memcheck instance (its own status dir) started with `ferry run`. */
  async function run(name: string): Promise<number> {
    inst = await memcheckWorkload({ mib: 200, seed: 11 }).prepare(base);
    const out = JSON.parse(await ok(['run', '--name', name, '--json', '--', ...inst.command])) as { pid: number };
    pids.add(out.pid);
    await inst.waitReady(60_000);
    return out.pid;
  }

  const cases: { signal: 'SIGINT' | 'SIGTERM'; point: Point; leaveRunning: boolean }[] = [
    { signal: 'SIGINT', point: 'begin', leaveRunning: false },
    { signal: 'SIGINT', point: 'dumping', leaveRunning: false },
    { signal: 'SIGINT', point: 'sealing', leaveRunning: false },
    { signal: 'SIGTERM', point: 'dumping', leaveRunning: false },
    { signal: 'SIGTERM', point: 'sealing', leaveRunning: false },
    { signal: 'SIGINT', point: 'dumping', leaveRunning: true },
    { signal: 'SIGTERM', point: 'sealing', leaveRunning: true },
  ];
  for (const c of cases) {
    it(`${c.signal} while ${c.point}${c.leaveRunning ? ' (--leave-running)' : ''}: the workload runs on, or a visible snapshot restores it`, async () => {
      const name = `intr-${c.signal.toLowerCase()}-${c.point}-${c.leaveRunning ? 'lr' : 'stop'}`;
      const pid = await run(name);
      const cp = checkpointProcess([name, ...(c.leaveRunning ? ['--leave-running'] : [])]);
      await reached(c.point);
      process.kill(cp.pid, c.signal);
      const r = await cp.done;
      assert.equal(r.signal, null, `ferry died of ${r.signal}: it must handle ${c.signal}`);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      const expectedCode = c.signal === 'SIGINT' ? 130 : 143;
      // Before the commit point the interrupt stops the checkpoint; after it (CRIU may have
      // stopped the workload) the snapshot is committed first; with --leave-running there is no
      // commit point: the partial snapshot is dropped.
      // (With --leave-running the seal may also finish before the signal lands: either is right.)
      const commits = c.point === 'sealing' && !c.leaveRunning;
      if (c.point === 'sealing' && c.leaveRunning) assert.ok(r.code === 0 || r.code === expectedCode, `exit ${r.code}:\n${r.stderr}`);
      else assert.equal(r.code, commits ? 0 : expectedCode, `exit ${r.code}:\n${r.stderr}`);
      if (r.code === 0) {
        // Committed: the snapshot is complete and visible, and restores a workload that verifies.
        const id = r.stdout.trim();
        assert.match(await ok(['snapshots', 'ls']), new RegExp(id));
        if (!c.leaveRunning) {
          await waitFor(() => !isAlive(pid), 10_000, 'the dumped workload to be gone');
          const restored = JSON.parse(await ok(['restore', id, '--json'])) as { pid: number };
          pids.add(restored.pid);
          await inst.verify(restored.pid);
          killQuietly(restored.pid);
        } else {
          await inst.verify(pid);
          killQuietly(pid);
        }
        await ok(['snapshots', 'rm', id]);
      } else {
        // Stopped before the commit point: CRIU resumed the workload, nothing partial is listed.
        assert.match(r.stderr, /^ferry: error: interrupted by SIG(INT|TERM)/m);
        assert.ok(isAlive(pid), `the workload is gone after an interrupted checkpoint:\n${r.stderr}`);
        await inst.verify(pid);
        killQuietly(pid);
      }
      await waitFor(() => !isAlive(pid), 10_000, 'the workload to stop');
      await ok(['snapshots', 'ls']);
      assert.deepEqual(readdirSync(snapshotsDir()).filter((n) => n.startsWith('.tmp-')), [], 'no .tmp-* remains after the next command');
    });
  }

  for (const point of ['dumping', 'sealing'] as const) {
    it(`SIGKILL while ${point}: the next command ${point === 'sealing' ? 'commits the complete snapshot, which restores' : 'removes the partial snapshot; the workload runs on'}`, async () => {
      const name = `kill9-${point}`;
      const pid = await run(name);
      const cp = checkpointProcess([name]);
      await reached(point);
      process.kill(cp.pid, 'SIGKILL');
      const r = await cp.done;
      assert.equal(r.signal, 'SIGKILL');
      // The next command on the store finishes or undoes what the killed ferry left.
      const ls = await ferry(['snapshots', 'ls', '--json']);
      assert.equal(ls.code, 0, ls.stderr);
      const listed = (JSON.parse(ls.stdout) as { snapshots: { id: string }[] }).snapshots.map((x) => x.id);
      assert.deepEqual(readdirSync(snapshotsDir()).filter((n) => n.startsWith('.tmp-')), [], 'no .tmp-* remains after the next command');
      if (point === 'sealing') {
        assert.match(ls.stderr, /^ferry: interrupted checkpoint \S+ committed: /m);
        assert.equal(listed.length, 1, ls.stderr);
        await waitFor(() => !isAlive(pid), 10_000, 'the dumped workload to be gone');
        const restored = JSON.parse(await ok(['restore', listed[0]!, '--json'])) as { pid: number };
        pids.add(restored.pid);
        await inst.verify(restored.pid);
        killQuietly(restored.pid);
        await ok(['snapshots', 'rm', listed[0]!]);
      } else {
        assert.match(ls.stderr, /^ferry: interrupted checkpoint \S+ removed: /m);
        assert.deepEqual(listed, []);
        await waitFor(() => isAlive(pid), 10_000, 'the workload to run');
        await inst.verify(pid);
        killQuietly(pid);
      }
    });
  }

  it('two checkpoints of one workload at once: one snapshot and one clear "already running" refusal', async () => {
    const pid = await run('twice');
    const [a, b] = await Promise.all([ferry(['checkpoint', 'twice', '--leave-running']), ferry(['checkpoint', 'twice', '--leave-running'])]);
    const codes = [a.code, b.code].sort();
    assert.deepEqual(codes, [0, 1], `exit codes ${codes.join(', ')}:\n${a.stderr}\n${b.stderr}`);
    const loser = a.code === 1 ? a : b;
    assert.match(loser.stderr, /^ferry: error: a checkpoint of pid \d+ \(memcheck\) is already running \(pid \d+/m);
    assert.ok(isAlive(pid));
    await inst.verify(pid);
    const winner = a.code === 0 ? a : b;
    await ok(['snapshots', 'rm', winner.stdout.trim()]);
    killQuietly(pid);
  });

  it('a snapshot whose workload still runs is not restored twice; --as makes the copy explicit, and names never move', async () => {
    const pid = await run('dup');
    const id = (await ok(['checkpoint', 'dup', '--leave-running'])).trim();
    const r = await ferry(['restore', id]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^ferry: error: workload 'dup' is still running \(pid \d+\); restoring \S+ would start a second copy/m);
    assert.match(r.stderr, /hint: .*--as NAME/);
    const copy = JSON.parse(await ok(['restore', id, '--as', 'dup-copy', '--json'])) as { pid: number; name: string };
    pids.add(copy.pid);
    assert.equal(copy.name, 'dup-copy');
    await inst.verify(copy.pid);
    await inst.verify(pid);
    const rec = JSON.parse(readFileSync(join(store, 'workloads', 'dup', 'workload.json'), 'utf8')) as { pid: number };
    assert.equal(rec.pid, pid, 'the original keeps its name');
    const again = await ferry(['restore', id, '--as', 'dup-copy']);
    assert.equal(again.code, 1, 'a second copy under the same name is refused too');
    killQuietly(copy.pid);
    killQuietly(pid);
    await ok(['snapshots', 'rm', id]);
  });

  it('a memory-tier checkpoint that would not fit in the host\'s available memory is refused before CRIU runs, or spills to disk', async () => {
    const pid = await run('nomem');
    // A reserve larger than the machine: no memory-tier snapshot fits beside it.
    const env = { FERRY_MEMORY_RESERVE: '100T' };
    const r = await ferry(['checkpoint', 'nomem', '--tier', 'memory'], env);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^ferry: error: the host has .* of memory available; a memory-tier snapshot of about .* would leave less than the reserve/m);
    assert.ok(isAlive(pid), 'refused before CRIU ran: the workload was never stopped');
    await inst.verify(pid);
    assert.equal(existsSync(join(store, 'logs', 'checkpoint-')), false);
    const spilled = JSON.parse((await ferry(['checkpoint', 'nomem', '--tier', 'memory', '--spill-to-disk', '--leave-running', '--json'], env)).stdout) as { snapshot: string; tier: string; spilled: boolean };
    assert.equal(spilled.tier, 'disk');
    assert.equal(spilled.spilled, true);
    await ok(['snapshots', 'rm', spilled.snapshot]);
    killQuietly(pid);
  });

  it('a workload killed in the middle of its dump: the checkpoint fails within seconds, naming the cause; nothing partial stays', async () => {
    const pid = await run('killed');
    const cp = checkpointProcess(['killed']);
    await reached('dumping');
    const t0 = Date.now();
    process.kill(pid, 'SIGKILL');
    const r = await cp.done;
    const ms = Date.now() - t0;
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^ferry: error: .*died while CRIU was dumping it/m);
    assert.ok(ms < 10_000, `took ${ms} ms after the kill`);
    await ok(['snapshots', 'ls']);
    assert.deepEqual(readdirSync(snapshotsDir()).filter((n) => n.startsWith('.tmp-')), []);
  });
});
