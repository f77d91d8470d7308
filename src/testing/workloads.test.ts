// The self-verifying test workloads, each started the way `ferry run` starts programs (pid 1
// and session leader of its own pid namespace), verified, checkpointed and restored with real
// CRIU, and verified again. Needs root and CRIU >= 4.2 (`make test` sets both up).
import assert from 'node:assert/strict';
import { dropCriuLocks, listCriuLocks } from '../net/criu-locks.js';
import { closeSync, openSync, readdirSync, readFileSync, readSync, writeSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CriuClient } from '../criu/client.js';
import { pagesFileOffset, pagesPath, PAGE_SIZE, readPagemap, pagemapPath, readPstree } from '../criu/images/index.js';
import { isAlive, OwnedPids, waitFor } from './processes.js';
import {
  allWorkloads, filelockWorkload, launchIsolated, logTail, memcheckWorkload, parseKeyValues, pythonStateWorkload, tcpechoWorkload,
  WorkloadVerifyError,
  type IsolatedRun, type WorkloadInstance, type WorkloadSpec,
} from './workloads.js';

describe('self-verifying workloads through a CRIU dump and restore', { concurrency: false }, () => {
  // A tree dumped with --tcp-established and not resumed keeps CRIU's lock rules for its
  // connections (on purpose: no RST to the peer); this test's own are removed at its end.
  let locksBefore = new Set<string>();
  before(async () => { locksBefore = new Set(await listCriuLocks()); });
  after(async () => { await dropCriuLocks((await listCriuLocks()).filter((r) => !locksBefore.has(r))); });

  let base = '';
  const runs: IsolatedRun[] = [];
  const restored = new OwnedPids();
  const instances: WorkloadInstance[] = [];
  const criu = new CriuClient();

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-test-workloads-'));
  });

  const killAll = (): void => {
    restored.killAll();
    for (const r of runs.splice(0)) r.kill();
  };

  after(async () => {
    killAll();
    for (const i of instances) await i.cleanup();
    if (base) await rm(base, { recursive: true, force: true });
  });

  async function start(spec: WorkloadSpec): Promise<{ instance: WorkloadInstance; run: IsolatedRun }> {
    const instance = await spec.prepare(base);
    instances.push(instance);
    const run = await launchIsolated(instance);
    runs.push(run);
    try {
      await instance.waitReady();
    } catch (err) {
      throw new Error(`${spec.name} did not start: ${(err as Error).message}\n${await logTail(instance.dir)}`);
    }
    return { instance, run };
  }

  /** Dumps the tree (CRIU kills it), waits until the original is gone, restores it. */
  async function roundTrip(spec: WorkloadSpec, instance: WorkloadInstance, run: IsolatedRun,
    beforeRestore?: (imagesDir: string) => Promise<void>): Promise<number> {
    const imagesDir = join(instance.dir, 'images');
    await mkdir(imagesDir, { recursive: true });
    await criu.dump({ pid: run.rootPid, imagesDir, ...spec.criuOptions });
    await run.exited;
    assert.ok(!isAlive(run.rootPid), 'the original root is gone after the dump');
    await beforeRestore?.(imagesDir);
    const { pid } = await criu.restore({ imagesDir, ...spec.criuOptions });
    restored.add(pid);
    return pid;
  }

  for (const spec of allWorkloads()) {
    it(`${spec.name}: verifies itself, and again after a checkpoint and restore`, async () => {
      const { instance, run } = await start(spec);
      const first = await instance.verify(run.rootPid);
      assert.match(first, /progress=\d+/);
      await instance.verify(run.rootPid); // verification is repeatable

      const pid = await roundTrip(spec, instance, run);
      assert.notEqual(pid, run.rootPid, 'a restored process gets a new host pid');
      const afterRestore = await instance.verify(pid);
      await instance.verify(pid);
      const p0 = Number(parseKeyValues(`ok ${first}`)['progress']);
      const p1 = Number(parseKeyValues(`ok ${afterRestore}`)['progress']);
      assert.ok(p1 >= p0, `progress continued: ${p0} before, ${p1} after restore`);
      killAll();
    });
  }

  it('memcheck: a byte changed in the dumped pages makes the restored workload report exactly that page', async () => {
    const spec = memcheckWorkload({ mib: 64, rate: 20 }); // few mutations: a corrupted page is rarely rewritten before the check
    const { instance, run } = await start(spec);
    await instance.verify(run.rootPid);
    const ready = instance.readyInfo();
    const base = BigInt(ready['base'] ?? 'x');
    const pages = Number(ready['pages']);
    const corrupt = [7, 1234, pages - 3];
    const addrs = corrupt.map((p) => base + BigInt(p * PAGE_SIZE + 100));

    const pid = await roundTrip(spec, instance, run, async (imagesDir) => {
      const [root] = await readPstree(imagesDir);
      assert.ok(root);
      const pagemap = await readPagemap(pagemapPath(imagesDir, root.pid));
      const fd = openSync(pagesPath(imagesDir, pagemap.pagesId), 'r+');
      try {
        for (const addr of addrs) {
          const off = pagesFileOffset(pagemap.entries, addr);
          assert.ok(off !== undefined, `the images hold the page at 0x${addr.toString(16)}`);
          const b = Buffer.alloc(1);
          readSync(fd, b, 0, 1, off);
          b[0] = (b[0] ?? 0) ^ 0x5a;
          writeSync(fd, b, 0, 1, off);
        }
      } finally {
        closeSync(fd);
      }
    });
    const err = await instance.verify(pid).then(() => assert.fail('verify must fail on corrupted memory'), (e: unknown) => e);
    assert.ok(err instanceof WorkloadVerifyError, String(err));
    const r = parseKeyValues(`fail ${err.reason}`);
    const bad = Number(r['bad_pages']);
    assert.ok(bad >= 1 && bad <= corrupt.length, err.reason);
    assert.ok(corrupt.includes(Number(r['first_bad_page'])), err.reason);
    if (Number(r['first_bad_page']) === corrupt[0]) {
      assert.equal(BigInt(r['first_bad_addr'] ?? 'x'), addrs[0], 'the report names the corrupted byte');
    }
    // It keeps failing: the checker does not heal itself.
    await assert.rejects(instance.verify(pid), WorkloadVerifyError);
    killAll();
  });

  it('memcheck: memory changed in the running process through /proc/PID/mem is caught', async () => {
    const { instance, run } = await start(memcheckWorkload({ mib: 16, rate: 20 }));
    await instance.verify(run.rootPid);
    const base = BigInt(instance.readyInfo()['base'] ?? 'x');
    const fd = openSync(`/proc/${run.rootPid}/mem`, 'r+');
    try {
      for (const page of [1, 2, 3]) writeSync(fd, Buffer.from([0xde, 0xad]), 0, 2, Number(base) + page * PAGE_SIZE + 8);
    } finally {
      closeSync(fd);
    }
    await assert.rejects(instance.verify(run.rootPid), (e: unknown) => e instanceof WorkloadVerifyError && /bad_pages=[123] first_bad_page=[123] /.test(e.reason));
    killAll();
  });

  it('tcpecho: a connection restored closed (--tcp-close) is reported, not papered over', async () => {
    const spec = tcpechoWorkload();
    const { instance, run } = await start(spec);
    await instance.verify(run.rootPid);
    const imagesDir = join(instance.dir, 'images');
    await mkdir(imagesDir);
    await criu.dump({ pid: run.rootPid, imagesDir, tcpEstablished: true });
    await run.exited;
    const { pid } = await criu.restore({ imagesDir, tcpEstablished: true, tcpClose: true });
    restored.add(pid);
    await assert.rejects(instance.verify(pid), (e: unknown) => e instanceof WorkloadVerifyError && /EOF|reset|broke|ESTABLISHED/.test(e.reason));
    killAll();
  });

  it('filelock: locks lost in a restore without --file-locks are reported', async () => {
    const spec = filelockWorkload();
    const { instance, run } = await start(spec);
    await instance.verify(run.rootPid);
    const imagesDir = join(instance.dir, 'images');
    await mkdir(imagesDir);
    await criu.dump({ pid: run.rootPid, imagesDir, fileLocks: true });
    await run.exited;
    // CRIU 4.2 restores the tree without its locks here (it does not refuse); either is fine, a pass is not.
    const pid = await criu.restore({ imagesDir }).then((r) => r.pid, () => undefined);
    if (pid === undefined) return;
    restored.add(pid);
    await assert.rejects(instance.verify(pid), (e: unknown) => e instanceof WorkloadVerifyError && /flock\(LOCK_EX\) on flock.lock: granted/.test(e.reason));
    killAll();
  });

  it('a program restarted from scratch is not taken for the restored one', async () => {
    const { instance, run } = await start(pythonStateWorkload());
    await instance.verify(run.rootPid);
    const first = instance.readyInfo()['instance'];
    assert.ok(first);
    run.kill();
    await run.exited;
    const again = await launchIsolated(instance); // the same command: a fresh process, a new ready line
    runs.push(again);
    await waitFor(() => instance.readyInfo()['instance'] !== first, 10_000, 'the restarted program to get ready');
    await assert.rejects(instance.verify(again.rootPid), /restarted, not restored/);
    killAll();
  });

  it('verify refuses a pid that is not the workload, and a pid that is gone', async () => {
    const instance = await memcheckWorkload({ mib: 1 }).prepare(base);
    instances.push(instance);
    await assert.rejects(instance.verify(process.pid), /not the memcheck workload/);
    await assert.rejects(instance.verify(999_999), /not running/);
  });

  it('leaves no process behind', async () => {
    killAll();
    const leftovers = (): string[] => readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(base);
      } catch {
        return false;
      }
    });
    await waitFor(() => leftovers().length === 0, 5000, `processes of these tests to exit (left: ${leftovers().join(' ')})`);
  });
});
