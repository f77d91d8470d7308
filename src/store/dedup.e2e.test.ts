// Page dedup into CRIU image chains, through the CLI, with real CRIU and a memcheck workload that
// rewrites 5% of its pages on each SIGUSR2: every snapshot of a chain restores to *its own* state
// (memcheck's mutation count tells which state it is, and it checks every byte), in both chain
// modes; removing a snapshot others build on, gc and compaction keep every survivor restorable;
// a damaged chain is refused before CRIU runs.
import assert from 'node:assert/strict';
import { closeSync, openSync, readFileSync, readSync, readdirSync, writeSync } from 'node:fs';
import { mkdtemp, readlink, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ferryCli, ferryOk, ferryRefused } from '../testing/ferry-cli.js';
import { isAlive, killQuietly, OwnedPids, waitFor } from '../testing/processes.js';
import { memcheckWorkload, type WorkloadInstance } from '../testing/workloads.js';

const MIB = 128;
const PAGES = MIB * 256;
const BURST = Math.floor((PAGES * 5 + 99) / 100); // memcheck's pages per burst

let base: string;
let store: string;
let memTier: string;
const pids = new OwnedPids();
const env = (): Record<string, string> => ({ FERRY_MEMORY_TIER: memTier, FERRY_MEMORY_BUDGET: '' });
const ok = (args: string[]) => ferryOk(store, args, env());
const refused = (args: string[], re: RegExp) => ferryRefused(store, args, re, env());

interface Snap { id: string; parent: string | null; bytes: number; logicalBytes: number; storedBytes: number; tier: string }
const ls = async (): Promise<{ snapshots: Snap[]; totalStoredBytes: number; totalLogicalBytes: number }> =>
  JSON.parse(await ok(['snapshots', 'ls', '--json'])) as { snapshots: Snap[]; totalStoredBytes: number; totalLogicalBytes: number };

/** A memcheck workload under `ferry run` (a stable name, so successive checkpoints chain). */
async function start(name: string): Promise<{ inst: WorkloadInstance; pid: number }> {
  const inst = await memcheckWorkload({ mib: MIB, dirtyPercent: 5, dirtyEveryMs: 0, seed: 5 }).prepare(join(base, 'wl'));
  const out = JSON.parse(await ok(['run', '--name', name, '--json', '--', ...inst.command])) as { pid: number };
  pids.add(out.pid);
  await inst.waitReady(60_000);
  return { inst, pid: out.pid };
}

async function burst(inst: WorkloadInstance, pid: number, n: number): Promise<void> {
  process.kill(pid, 'SIGUSR2');
  await waitFor(() => {
    try { return Number(readFileSync(join(inst.statusDir!, 'dirtied'), 'utf8').trim()) >= n; } catch { return false; }
  }, 30_000, `burst ${n}`);
}

async function checkpoint(name: string, extra: string[] = []): Promise<{ snapshot: string; parent: string | null; rebased: { id: string; savedBytes?: number; error?: string } | null }> {
  return JSON.parse(await ok(['checkpoint', name, '--leave-running', '--tier', 'memory', '--json', ...extra])) as { snapshot: string; parent: string | null; rebased: { id: string; savedBytes?: number; error?: string } | null };
}

/** Restores a snapshot, checks every byte and that it is the state after `bursts` bursts; kills it. */
async function restoreAndCheck(inst: WorkloadInstance, id: string, bursts: number): Promise<void> {
  const r = JSON.parse(await ok(['restore', id, '--json'])) as { pid: number };
  pids.add(r.pid);
  try {
    const summary = await inst.verify(r.pid, 60_000);
    assert.match(summary, new RegExp(`\\bprogress=${bursts * BURST}\\b`), `snapshot ${id} should hold the state after ${bursts} bursts: ${summary}`);
  } finally {
    killQuietly(r.pid);
    await waitFor(() => !isAlive(r.pid), 10_000, `pid ${r.pid} to exit`);
    pids.delete(r.pid); // gone: its number may be reused, never kill it again
  }
}

async function stop(pid: number): Promise<void> {
  killQuietly(pid);
  await waitFor(() => !isAlive(pid), 10_000, `pid ${pid} to exit`);
  pids.delete(pid);
}

function flipByte(path: string, at: number): void {
  const fd = openSync(path, 'r+');
  try {
    const b = Buffer.alloc(1);
    assert.equal(readSync(fd, b, 0, 1, at), 1);
    b[0] = b[0]! ^ 0xff;
    writeSync(fd, b, 0, 1, at);
  } finally {
    closeSync(fd);
  }
}

void describe('page dedup chains (CLI, real CRIU)', { timeout: 600_000 }, () => {
  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-dedup-'));
    store = join(base, 'store');
    memTier = await mkdtemp('/dev/shm/ferry-dedup-test-');
  });
  after(async () => {
    pids.killAll();
    await rm(base, { recursive: true, force: true });
    await rm(memTier, { recursive: true, force: true });
  });

  void it('newest-flat (default): four snapshots take about one, each restores to its own state; rm, gc and a damaged chain', async () => {
    const { inst, pid } = await start('nf');
    const taken: string[] = [];
    for (let i = 0; i < 4; i++) {
      if (i > 0) await burst(inst, pid, i);
      const c = await checkpoint('nf');
      assert.equal(c.parent, null, 'the new snapshot stays whole');
      if (i > 0) {
        assert.equal(c.rebased?.id, taken[i - 1], 'the previous snapshot was rewritten onto the new one');
        assert.ok((c.rebased?.savedBytes ?? 0) > MIB * 2 ** 20 * 0.8, `most of the previous snapshot was freed: ${JSON.stringify(c.rebased)}`);
      }
      taken.push(c.snapshot);
    }
    await stop(pid);
    const l = await ls();
    const byId = new Map(l.snapshots.map((s) => [s.id, s]));
    assert.deepEqual(taken.map((id) => byId.get(id)?.parent ?? null), [taken[1], taken[2], taken[3], null], 'each older snapshot builds on its successor');
    // 4 snapshots, 5% rewritten between them: stored ≈ 1 + 3 × 5%, far below 4 whole ones.
    assert.ok(l.totalStoredBytes < 1.4 * MIB * 2 ** 20, `stored ${l.totalStoredBytes} bytes for 4 snapshots of ${MIB} MiB`);
    assert.ok(l.totalLogicalBytes > 3.9 * MIB * 2 ** 20);
    for (const [i, id] of taken.entries()) await restoreAndCheck(inst, id, i);

    // A damaged link in the chain is refused before CRIU runs: a flipped byte in the newest's pages
    // (which the oldest reads through), then a parent link pointing elsewhere.
    const memDir = (JSON.parse(await ok(['snapshots', 'ls', '--json'])) as { memoryTier: { dir: string } }).memoryTier.dir;
    const newestDir = join(memDir, taken[3]!);
    const pagesFile = readdirSync(newestDir).find((n) => /^pages-\d+\.img$/.test(n))!;
    flipByte(join(newestDir, pagesFile), 4096 * 7 + 3);
    await refused(['restore', taken[0]!], new RegExp(`snapshot ${taken[3]} is damaged: ${pagesFile.replace('.', '\\.')} fails its checksum`));
    flipByte(join(newestDir, pagesFile), 4096 * 7 + 3);
    const link = join(memDir, taken[1]!, 'parent');
    assert.equal(await readlink(link), `../${taken[2]}`);
    await rm(link);
    await symlink(`../${taken[3]}`, link);
    await refused(['restore', taken[0]!], new RegExp(`snapshot ${taken[1]} is damaged: its parent link is \\.\\./${taken[3]}, expected \\.\\./${taken[2]}`));
    await rm(link);
    await symlink(`../${taken[2]}`, link);

    // Removing the newest, which the others build on: its pages fold into the one before.
    const rmOut = JSON.parse(await ok(['snapshots', 'rm', taken[3]!, '--json'])) as { removed: string; compacted: string[] };
    assert.deepEqual(rmOut.compacted, [taken[2]]);
    await restoreAndCheck(inst, taken[2]!, 2);
    await restoreAndCheck(inst, taken[0]!, 0);
    // gc: keep the newest two; the oldest goes (nothing builds on it in this mode).
    const gc = JSON.parse(await ok(['snapshots', 'gc', '--keep-last', '2', '--json'])) as { remove: string[]; keep: string[] };
    assert.deepEqual(gc.remove, [taken[0]]);
    assert.deepEqual((await ls()).snapshots.map((s) => s.id).sort(), [taken[1], taken[2]].sort());
    await restoreAndCheck(inst, taken[1]!, 1);
    // nothing half-written; obsolete copies (.rm-*) are freed in the background
    await waitFor(() => readdirSync(memDir).every((n) => !n.startsWith('.') || n === '.ferry-store.json'), 10_000, 'background removals to finish');
    for (const id of [taken[1]!, taken[2]!]) await ok(['snapshots', 'rm', id]);
  });

  void it('forward chains, gc --max-depth, compaction, --flatten-older-than, and --no-dedup', async () => {
    const { inst, pid } = await start('fw');
    const taken: string[] = [];
    for (let i = 0; i < 3; i++) {
      if (i > 0) await burst(inst, pid, i);
      const c = await checkpoint('fw', ['--dedup', 'forward']);
      assert.equal(c.parent, i === 0 ? null : taken[i - 1]);
      taken.push(c.snapshot);
    }
    const whole = await checkpoint('fw', ['--no-dedup']);
    assert.equal(whole.parent, null);
    assert.equal(whole.rebased, null, '--no-dedup leaves the others alone');
    await stop(pid);
    const l = await ls();
    const stored = new Map(l.snapshots.map((s) => [s.id, s.storedBytes]));
    assert.ok(stored.get(taken[2]!)! < 0.2 * MIB * 2 ** 20, 'a forward child stores only its changed pages');
    assert.ok(stored.get(whole.snapshot)! > MIB * 2 ** 20, '--no-dedup stores every page');
    await restoreAndCheck(inst, taken[2]!, 2);
    // gc --max-depth 1: the newest (depth 2) takes its parent's pages and builds on the first.
    const gcDepth = JSON.parse(await ok(['snapshots', 'gc', '--max-depth', '1', '--json'])) as { remove: string[]; fold: { id: string; levels: number }[] };
    assert.deepEqual(gcDepth.remove, []);
    assert.deepEqual(gcDepth.fold, [{ id: taken[2], levels: 1 }]);
    const parentOf = async (id: string) => (await ls()).snapshots.find((x) => x.id === id)?.parent ?? null;
    assert.equal(await parentOf(taken[2]!), taken[0]);
    await restoreAndCheck(inst, taken[2]!, 2);
    // compact: the middle one made flat.
    const compact = JSON.parse(await ok(['snapshots', 'compact', taken[1]!, '--json'])) as { parent: string | null; parentBefore: string | null };
    assert.equal(compact.parentBefore, taken[0]);
    assert.equal(compact.parent, null);
    await restoreAndCheck(inst, taken[1]!, 1);
    // gc --flatten-older-than: every chained snapshot older than that becomes flat.
    await ok(['snapshots', 'gc', '--flatten-older-than', '1ms']);
    for (const id of taken) assert.equal(await parentOf(id), null, `${id} is flat`);
    await restoreAndCheck(inst, taken[2]!, 2);
    // a bad mode is a usage error
    const r = await ferryCli(store, ['checkpoint', 'fw', '--dedup', 'sideways'], env());
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--dedup must be newest-flat or forward/);
  });
});
