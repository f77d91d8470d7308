// Restore verification in the read path, through the CLI with real CRIU: the pages images are
// hashed while CRIU restores, and CRIU's post-restore (tasks restored but still parked in its
// restorer) is answered only once they verified. A snapshot of a real workload with one flipped
// byte in a pages image (its mtime put back) is refused, and no process of it ever runs: beside
// memcheck the snapshot holds a shell that appends a line to a marker file every 10 ms (so within
// ~10 ms of resuming), and the marker never grows; repaired, the same snapshot restores, verifies
// and the marker grows again. A deduped snapshot whose parent is damaged is refused the same way.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ferryOk, ferryRefused } from '../testing/ferry-cli.js';
import { isAlive, killQuietly, OwnedPids, waitFor } from '../testing/processes.js';
import { memcheckWorkload, type WorkloadInstance } from '../testing/workloads.js';

const MIB = 128;
let base: string;
let store: string;
const pids = new OwnedPids();
const ok = (args: string[]) => ferryOk(store, args);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Flips one byte and puts the file's times back: nothing but the content tells. */
function flipByte(path: string, at: number): void {
  const st = statSync(path, { bigint: true });
  const ref = `${path}.times`;
  execFileSync('touch', ['-r', path, ref]); // nanosecond times (utimes from JS rounds them)
  const fd = openSync(path, 'r+');
  try {
    const b = Buffer.alloc(1);
    assert.equal(readSync(fd, b, 0, 1, at), 1);
    b[0] = b[0]! ^ 0x01;
    writeSync(fd, b, 0, 1, at);
  } finally {
    closeSync(fd);
  }
  execFileSync('touch', ['-r', ref, path]);
  unlinkSync(ref);
  assert.equal(statSync(path, { bigint: true }).mtimeNs, st.mtimeNs);
}

/** Pids of live processes whose command line mentions `word` (the instance's status directory). */
function processesWith(word: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(word) && isAlive(Number(e))) out.push(Number(e));
    } catch { /* gone */ }
  }
  return out;
}

/** The CRIU log of the newest restore attempt of `snap`. */
function newestRestoreLog(snap: string): string {
  const dirs = readdirSync(join(store, 'logs')).filter((d) => d.startsWith(`restore-${snap}-`)).sort();
  assert.ok(dirs.length > 0, `a restore of ${snap} ran CRIU`);
  return readFileSync(join(store, 'logs', dirs.at(-1)!, 'restore.log'), 'utf8');
}

describe('restore verifies the pages images in the read path; a damaged one never runs', { concurrency: false }, () => {
  let inst: WorkloadInstance;
  let older: string; // deduped: builds on `newer`
  let newer: string;
  let pagesFile: string;
  let progress: string;
  let marker: string;

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-rv-'));
    store = await mkdtemp(join(tmpdir(), 'ferry-rv-store-'));
    inst = await memcheckWorkload({ mib: MIB, seed: 11 }).prepare(base);
    progress = join(inst.statusDir!, 'progress');
    marker = join(inst.dir, 'marker');
    // memcheck is the root (exec); its child appends to the marker (opened per line: CRIU never sees it open).
    const tree = ['bash', '-c', 'while :; do echo x >> "$0"; sleep 0.01; done & exec "$@"', marker, ...inst.command];
    const run = JSON.parse(await ok(['run', '--name', 'rv', '--json', '--', ...tree])) as { pid: number };
    pids.add(run.pid);
    await inst.waitReady(60_000);
    await waitFor(() => existsSync(marker), 5_000, 'the marker');
    older = (JSON.parse(await ok(['checkpoint', 'rv', '--leave-running', '--json'])) as { snapshot: string }).snapshot;
    await sleep(300); // some pages change in between
    const c = JSON.parse(await ok(['checkpoint', 'rv', '--json'])) as { snapshot: string; rebased: { id: string } | null };
    newer = c.snapshot;
    assert.equal(c.rebased?.id, older, 'the older snapshot was deduped onto the newer one');
    await waitFor(() => !isAlive(run.pid), 10_000, 'the checkpointed workload to exit');
    pids.delete(run.pid);
    const dir = join(store, 'snapshots', newer);
    pagesFile = readdirSync(dir).find((n) => /^pages-\d+\.img$/.test(n))!;
    assert.ok(statSync(join(dir, pagesFile)).size > MIB * 0.9 * 2 ** 20, 'the newer snapshot holds the memory');
  });
  after(async () => {
    pids.killAll();
    await rm(base, { recursive: true, force: true });
    await rm(store, { recursive: true, force: true });
  });

  /** A refused restore: exit 1 naming the damaged file; CRIU ran and was stopped at post-restore; nothing of it runs or ran. */
  async function refusedWithoutRunning(snap: string, damaged: string): Promise<void> {
    if (existsSync(progress)) unlinkSync(progress);
    const markerBytes = statSync(marker).size;
    await ferryRefused(store, ['restore', snap], new RegExp(`snapshot ${damaged} is damaged: ${pagesFile.replace('.', '\\.')} fails its checksum`));
    assert.deepEqual(processesWith(inst.statusDir!), [], 'no process of the snapshot exists');
    // memcheck writes DIR/progress on its first loop once a second has passed since its last
    // write (before the checkpoint): a copy that ran at all would have written it.
    await sleep(2500);
    assert.equal(statSync(marker).size, markerBytes, 'the marker shell of the snapshot never ran');
    assert.equal(existsSync(progress), false, 'memcheck never ran a single loop');
    assert.deepEqual(processesWith(inst.statusDir!), []);
    // It was the read path: CRIU restored the tree, ferry answered post-restore with failure, CRIU killed it.
    assert.match(newestRestoreLog(snap), /Aborting restore due to post-restore script/);
  }

  it('one flipped byte in a pages image is refused at restore, and no process of it ever runs', async () => {
    flipByte(join(store, 'snapshots', newer, pagesFile), (MIB / 2) * 2 ** 20 + 4096 * 3 + 17);
    await refusedWithoutRunning(newer, newer);
  });

  it('a deduped snapshot whose parent has the damaged pages image is refused the same way', async () => {
    await refusedWithoutRunning(older, newer);
  });

  it('with the byte repaired the same snapshot restores, runs and verifies', async () => {
    flipByte(join(store, 'snapshots', newer, pagesFile), (MIB / 2) * 2 ** 20 + 4096 * 3 + 17);
    if (existsSync(progress)) unlinkSync(progress);
    const markerBytes = statSync(marker).size;
    const r = JSON.parse(await ok(['restore', newer, '--json'])) as { pid: number };
    pids.add(r.pid);
    try {
      await inst.verify(r.pid, 60_000);
      // The probes the refusals rely on work: a running copy grows the marker and writes progress.
      await waitFor(() => statSync(marker).size > markerBytes, 2_000, 'the restored marker shell to write');
      await waitFor(() => existsSync(progress), 5_000, 'the restored workload to write progress');
    } finally {
      killQuietly(r.pid);
      await waitFor(() => !isAlive(r.pid), 10_000, `pid ${r.pid} to exit`);
      pids.delete(r.pid);
    }
    // And the deduped one reads its pages through it again.
    const r2 = JSON.parse(await ok(['restore', older, '--json'])) as { pid: number };
    pids.add(r2.pid);
    try {
      await inst.verify(r2.pid, 60_000);
    } finally {
      killQuietly(r2.pid);
      await waitFor(() => !isAlive(r2.pid), 10_000, `pid ${r2.pid} to exit`);
      pids.delete(r2.pid);
    }
  });
});
