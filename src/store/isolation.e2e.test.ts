// Stores through the CLI, on real workloads and real CRIU, memory tier on /dev/shm:
//   two stores under one memory base do not see (ls) or collect (gc) each other's snapshots;
//   a deleted store's RAM snapshots are found and removed by another store's gc;
//   one garbage manifest.json does not break ls, gc or rm of the others, and rm removes it.
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ferryOk } from '../testing/ferry-cli.js';
import { OwnedPids } from '../testing/processes.js';
import { memcheckWorkload } from '../testing/workloads.js';

let base: string;
let memBase: string;
const pids = new OwnedPids();
const env = (): Record<string, string> => ({ FERRY_MEMORY_TIER: memBase, FERRY_MEMORY_BUDGET: '', FERRY_SPILL_TO_DISK: '' });
const ok = (store: string, args: string[]): Promise<string> => ferryOk(store, args, env());

interface LsJson {
  snapshots: { id: string; tier: string }[];
  damaged: { id: string; reason: string; storedBytes: number }[];
  leftovers: unknown[];
  memoryTier: { dir: string | null; usedBytes: number; allStoresBytes: number; orphans: { dir: string }[] };
}
const ls = async (store: string): Promise<LsJson> => JSON.parse(await ok(store, ['snapshots', 'ls', '--json'])) as LsJson;
const ids = async (store: string): Promise<string[]> => (await ls(store)).snapshots.map((s) => s.id).sort();

/** A running memcheck workload started by `ferry run` in `store`; returns its name. */
async function startMemcheck(store: string, seed: number): Promise<string> {
  const inst = await memcheckWorkload({ mib: 16, seed }).prepare(base);
  const name = `iso-${seed}-${Math.random().toString(36).slice(2, 6)}`;
  const out = JSON.parse(await ok(store, ['run', '--name', name, '--json', '--', ...inst.command])) as { pid: number };
  pids.add(out.pid);
  await inst.waitReady(60_000);
  return name;
}

const memSnap = async (store: string, wl: string, id: string): Promise<string> =>
  (await ok(store, ['checkpoint', wl, '--tier', 'memory', '--leave-running', '--no-dedup', '--name', id])).trim();

describe('stores: isolated memory tiers, orphans, damage (CLI, real CRIU)', { concurrency: false }, () => {
  let a: string;
  let b: string;
  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-iso-e2e-'));
    memBase = await mkdtemp('/dev/shm/ferry-iso-e2e-');
    a = join(base, 'store-a');
    b = join(base, 'store-b');
  });
  after(async () => {
    pids.killAll();
    await rm(base, { recursive: true, force: true });
    await rm(memBase, { recursive: true, force: true });
  });

  it('two stores under one memory base: ls and gc --dry-run each see only their own', async () => {
    const wa = await startMemcheck(a, 31);
    const wb = await startMemcheck(b, 32);
    assert.equal(await memSnap(a, wa, 'a-1'), 'a-1');
    assert.equal(await memSnap(b, wb, 'b-1'), 'b-1');
    const la = await ls(a);
    const lb = await ls(b);
    assert.deepEqual(la.snapshots.map((s) => [s.id, s.tier]), [['a-1', 'memory']]);
    assert.deepEqual(lb.snapshots.map((s) => [s.id, s.tier]), [['b-1', 'memory']]);
    assert.ok(la.memoryTier.dir && lb.memoryTier.dir && la.memoryTier.dir !== lb.memoryTier.dir && la.memoryTier.dir.startsWith(memBase));
    assert.ok(la.memoryTier.usedBytes > 16 << 20 && la.memoryTier.allStoresBytes >= la.memoryTier.usedBytes + lb.memoryTier.usedBytes, JSON.stringify(la.memoryTier));
    assert.equal(await memSnap(b, wb, 'b-2'), 'b-2');
    const dry = JSON.parse(await ok(b, ['snapshots', 'gc', '--keep-last', '1', '--dry-run', '--json'])) as { remove: string[]; keep: string[] };
    assert.deepEqual([dry.remove, dry.keep], [['b-1'], ['b-2']], 'B\'s plan knows nothing of A\'s snapshot');
    await ok(b, ['snapshots', 'gc', '--keep-last', '1']);
    assert.deepEqual(await ids(b), ['b-2']);
    assert.deepEqual(await ids(a), ['a-1'], 'gc in B did not touch A');
  });

  it('a deleted store\'s memory tier is reported as an orphan and removed by another store\'s gc', async () => {
    const bMem = (await ls(b)).memoryTier.dir!;
    assert.ok(existsSync(join(bMem, 'b-2')));
    await rm(b, { recursive: true });
    const la = await ls(a);
    assert.deepEqual(la.memoryTier.orphans.map((o) => o.dir), [bMem]);
    assert.match(await ok(a, ['snapshots', 'ls']), /1 memory-tier directory of deleted stores hold .* of RAM/);
    assert.match(await ok(a, ['snapshots', 'gc', '--dry-run']), new RegExp(`would remove ${bMem} .*no longer exists`));
    assert.ok(existsSync(bMem));
    await ok(a, ['snapshots', 'gc']);
    assert.ok(!existsSync(bMem), 'the orphan is gone');
    assert.deepEqual(await ids(a), ['a-1']);
  });

  it('a garbage manifest: ls lists it as damaged, gc and rm of the others work, rm of it succeeds', async () => {
    const wa = await startMemcheck(a, 33);
    await memSnap(a, wa, 'a-2');
    await memSnap(a, wa, 'a-3');
    const aMem = (await ls(a)).memoryTier.dir!;
    writeFileSync(join(aMem, 'a-1', 'manifest.json'), '\u0000garbage{');
    const l = await ls(a);
    assert.deepEqual(l.snapshots.map((s) => s.id).sort(), ['a-2', 'a-3']);
    assert.deepEqual(l.damaged.map((d) => d.id), ['a-1']);
    assert.match(l.damaged[0]!.reason, /manifest\.json is not JSON/);
    assert.ok(l.damaged[0]!.storedBytes > 16 << 20);
    assert.match(await ok(a, ['snapshots', 'ls']), /DAMAGED[\s\S]*a-1 .*not JSON/);
    const g = JSON.parse(await ok(a, ['snapshots', 'gc', '--keep-last', '1', '--json'])) as { remove: string[]; damaged: { id: string }[] };
    assert.deepEqual([g.remove, g.damaged.map((d) => d.id)], [['a-2'], ['a-1']]);
    await ok(a, ['snapshots', 'rm', 'a-3']);
    await ok(a, ['snapshots', 'rm', 'a-1']);
    const end = await ls(a);
    assert.deepEqual([end.snapshots, end.damaged, end.leftovers], [[], [], []]);
    assert.ok(!existsSync(join(aMem, 'a-1')));
  });
});
