// ferry run → checkpoint → restore, through the CLI as a user runs it, on every self-verifying
// workload (test/workloads/), in both ways users do it:
//   1. checkpoint (stops the workload) → restore;
//   2. checkpoint --leave-running → stop the original → restore.
// Then the refusals: bad input gives a clear error, exit 1, and leaves the workload untouched.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PROJECT_ROOT } from '../criu/binary.js';
import { readPagemap } from '../criu/images/pagemap.js';
import { isAlive, killQuietly, OwnedPids, waitFor } from '../testing/processes.js';
import { allWorkloads, memcheckWorkload, type WorkloadInstance, type WorkloadSpec } from '../testing/workloads.js';

const FERRY = join(PROJECT_ROOT, 'bin', 'ferry');
interface Ran { code: number; stdout: string; stderr: string }

let store: string;
const pids = new OwnedPids();

function ferry(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(FERRY, ['--store', store, ...args], {
      cwd: opts.cwd ?? PROJECT_ROOT, env: { ...process.env, ...opts.env }, timeout: 120_000, maxBuffer: 16 << 20,
    }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

async function ok(args: string[], opts?: Parameters<typeof ferry>[1]): Promise<string> {
  const r = await ferry(args, opts);
  assert.equal(r.code, 0, `ferry ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

async function refused(args: string[], pattern: RegExp, opts?: Parameters<typeof ferry>[1]): Promise<Ran> {
  const r = await ferry(args, opts);
  assert.equal(r.code, 1, `ferry ${args.join(' ')} should fail`);
  assert.match(r.stderr.split('\n')[0] ?? '', /^ferry: error: /);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  return r;
}

async function start(spec: WorkloadSpec, base: string): Promise<{ inst: WorkloadInstance; pid: number; name: string }> {
  const inst = await spec.prepare(base);
  const name = `${spec.name}-${Math.random().toString(36).slice(2, 8)}`;
  const out = JSON.parse(await ok(['run', '--name', name, '--json', '--', ...inst.command], { cwd: inst.dir, env: inst.env })) as { pid: number; name: string };
  assert.equal(out.name, name);
  pids.add(out.pid);
  await inst.waitReady(60_000);
  return { inst, pid: out.pid, name };
}

async function gone(pid: number): Promise<void> {
  await waitFor(() => !isAlive(pid), 10_000, `pid ${pid} to exit`);
}

describe('ferry run / checkpoint / restore on real workloads', { concurrency: false }, () => {
  let base: string;
  before(async () => {
    store = await mkdtemp(join(tmpdir(), 'ferry-store-'));
    base = await mkdtemp(join(tmpdir(), 'ferry-wl-'));
  });
  after(async () => {
    pids.killAll();
    await rm(base, { recursive: true, force: true });
    await rm(store, { recursive: true, force: true });
  });

  for (const spec of allWorkloads()) {
    it(`${spec.name}: checkpoint → restore, and checkpoint --leave-running → stop → restore; verifies itself`, async () => {
      const { inst, pid, name } = await start(spec, base);
      await inst.verify(pid);

      // 1. checkpoint stops it; restore brings it back with its state.
      const cp = JSON.parse(await ok(['checkpoint', name, '--json', ...spec.checkpointFlags])) as { snapshot: string; stats: Record<string, number>; timings: { totalMs: number }; bytesWritten: number };
      assert.ok(cp.stats['pages_written']! > 0 && cp.stats['frozen_time']! > 0, JSON.stringify(cp.stats));
      assert.ok(cp.bytesWritten > 0 && cp.timings.totalMs > 0);
      await gone(pid);
      const r1 = JSON.parse(await ok(['restore', cp.snapshot, '--json'])) as { pid: number };
      pids.add(r1.pid);
      assert.notEqual(r1.pid, pid);
      await inst.verify(r1.pid);

      // 2. --leave-running keeps it going; after the original is stopped, restore brings the copy back.
      const cp2 = JSON.parse(await ok(['checkpoint', name, '--leave-running', '--json', ...spec.checkpointFlags])) as { snapshot: string };
      assert.ok(isAlive(r1.pid), 'with --leave-running the workload keeps running');
      await inst.verify(r1.pid);
      killQuietly(r1.pid);
      await gone(r1.pid);
      const r2 = JSON.parse(await ok(['restore', cp2.snapshot, '--json'])) as { pid: number };
      pids.add(r2.pid);
      await inst.verify(r2.pid);
      killQuietly(r2.pid);
      await gone(r2.pid);
      await ok(['snapshots', 'rm', cp.snapshot]);
      await ok(['snapshots', 'rm', cp2.snapshot]);
    });
  }

  describe('refusals leave the workload untouched', () => {
    let wl: { inst: WorkloadInstance; pid: number; name: string };
    before(async () => { wl = await start(memcheckWorkload({ mib: 64, seed: 7 }), base); });
    // (wl is killed with the file's other pids, by start time: its pid may be reused meanwhile)
    const untouched = async () => { assert.ok(isAlive(wl.pid)); await wl.inst.verify(wl.pid); };

    it('a pid that does not exist', async () => {
      await refused(['checkpoint', '999999'], /no process with pid 999999/);
    });
    it('a name that is neither a pid nor a workload', async () => {
      await refused(['checkpoint', 'no-such-workload'], /no pid or workload named/);
    });
    it('a kernel thread', async () => {
      await refused(['checkpoint', '2'], /kernel thread/);
    });
    it('ferry\'s own pid (or a parent of it)', async () => {
      await refused(['checkpoint', String(process.pid)], /ferry itself or one of its parents/);
    });
    it('a store that is not writable', async () => {
      const r = await ferry(['--store', '/dev/null/ferry', 'checkpoint', wl.name]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /store is not writable/);
      await untouched();
    });
    it('a full memory tier is refused before CRIU runs', async () => {
      const tiny = await mkdtemp(join(tmpdir(), 'ferry-tiny-'));
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', tiny]);
      try {
        await refused(['checkpoint', wl.name, '--tier', 'memory'], /memory tier has 1 MiB free/, { env: { FERRY_MEMORY_TIER: join(tiny, 'mem') } });
        // (each store has its own memory-tier directory under the base, holding its back-pointer)
        assert.deepEqual(readdirSync(join(tiny, 'mem')).flatMap((d) => readdirSync(join(tiny, 'mem', d))).filter((n) => n !== '.ferry-store.json'), [], 'nothing half-written is left');
        await untouched();
      } finally {
        execFileSync('umount', [tiny]);
        await rm(tiny, { recursive: true, force: true });
      }
    });
    it('a snapshot with one flipped byte in a pages image is caught by checksum before its copy runs', async () => {
      const snap = (await ok(['checkpoint', wl.name, '--leave-running'])).trim();
      const dir = join(store, 'snapshots', snap);
      const pm = await readPagemap(join(dir, `pagemap-1.img`));
      const pages = join(dir, `pages-${pm.pagesId}.img`);
      const buf = readFileSync(pages);
      buf[4096 * 3 + 17] = buf[4096 * 3 + 17]! ^ 0x01;
      writeFileSync(pages, buf);
      // (as a copy under another name: the original still runs)
      await refused(['restore', snap, '--as', `${wl.name}-copy`], new RegExp(`pages-${pm.pagesId}\\.img fails its checksum`));
      // The pages images are verified while CRIU restores; its post-restore was answered with
      // failure, so CRIU killed the copy before it ran (restore-verify.e2e.test.ts proves it).
      const log = readdirSync(join(store, 'logs')).filter((d) => d.startsWith(`restore-${snap}-`)).sort().at(-1)!;
      assert.match(readFileSync(join(store, 'logs', log, 'restore.log'), 'utf8'), /Aborting restore due to post-restore script/);
      await untouched();
    });
    it('a snapshot taken by a different CRIU line is refused', async () => {
      const snap = (await ok(['checkpoint', wl.name, '--leave-running'])).trim();
      const mf = join(store, 'snapshots', snap, 'manifest.json');
      const m = JSON.parse(readFileSync(mf, 'utf8')) as { criu: { version: string } };
      m.criu.version = '4.1.1';
      writeFileSync(mf, JSON.stringify(m));
      await refused(['restore', snap], /taken by CRIU 4\.1\.1; this host runs CRIU 4\.2/);
      await untouched();
    });
    it('a snapshot of a host-pid-namespace process is refused while its pid is taken', async () => {
      const { spawn } = await import('node:child_process');
      const sleeper = spawn('sleep', ['600'], { detached: true, stdio: 'ignore' });
      pids.add(sleeper.pid!);
      const snap = (await ok(['checkpoint', String(sleeper.pid), '--leave-running'])).trim();
      await refused(['restore', snap], new RegExp(`pid ${sleeper.pid}, which the snapshot needs, is in use`));
      killQuietly(sleeper.pid);
    });
    it('snapshots ls and inspect describe what was taken', async () => {
      const ls = JSON.parse(await ok(['snapshots', 'ls', '--json'])) as { snapshots: { id: string; bytes: number }[]; totalBytes: number };
      assert.ok(ls.snapshots.length >= 2);
      assert.equal(ls.totalBytes, ls.snapshots.reduce((a, s) => a + s.bytes, 0));
      const id = ls.snapshots.find((s) => s.bytes > 64 << 20)!.id;
      const ins = JSON.parse(await ok(['snapshots', 'inspect', id, '--json'])) as { images: { processes: { commandLine: string[] }[]; memory: { mappedBytes: number }[] } };
      assert.ok(ins.images.processes[0]!.commandLine.some((a) => a.endsWith('memcheck')));
      assert.ok(ins.images.memory[0]!.mappedBytes >= 64 << 20);
      const text = await ok(['snapshots', 'inspect', id]);
      assert.match(text, /processes:\n\s+1 \(ppid 0\)/);
    });
  });
});

