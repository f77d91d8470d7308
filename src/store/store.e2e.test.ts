// The snapshot store through the CLI, on real workloads, real CRIU and real images:
//   export → import into a second store → restore → the workload verifies itself;
//   a tampered or truncated archive is rejected and nothing new is listed;
//   a chain (built by hand from two real checkpoints) travels whole;
//   the memory tier's budget refuses (workload untouched, nothing written) or spills to disk.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, readlink, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import tar from 'tar-stream';
import { compress, decompress } from 'zstd-napi';
import { FERRY, ferryCli, ferryOk, ferryRefused, type Ran } from '../testing/ferry-cli.js';
import { execFile } from 'node:child_process';
import { isAlive, killQuietly, OwnedPids, waitFor } from '../testing/processes.js';
import { memcheckWorkload, type WorkloadInstance } from '../testing/workloads.js';

let base: string;
let memTier: string;
const pids = new OwnedPids();

const isolate = (env: Record<string, string> = {}) => ({ FERRY_MEMORY_TIER: memTier, FERRY_MEMORY_BUDGET: '', FERRY_SPILL_TO_DISK: '', ...env });
const ferry = (store: string, args: string[], env?: Record<string, string>): Promise<Ran> => ferryCli(store, args, isolate(env));
const ok = (store: string, args: string[], env?: Record<string, string>): Promise<string> => ferryOk(store, args, isolate(env));
const refused = (store: string, args: string[], pattern: RegExp, env?: Record<string, string>): Promise<Ran> => ferryRefused(store, args, pattern, isolate(env));

interface LsJson { snapshots: { id: string; tier: string; parent: string | null; bytes: number; logicalBytes: number; storedBytes: number }[]; totalLogicalBytes: number; totalStoredBytes: number; memoryTier: { usedBytes: number } }
const ls = async (store: string): Promise<LsJson> => JSON.parse(await ok(store, ['snapshots', 'ls', '--json'])) as LsJson;
const ids = async (store: string): Promise<string[]> => (await ls(store)).snapshots.map((s) => s.id).sort();

/** A store's own memory-tier directory: `<FERRY_MEMORY_TIER>/<store id>` (undefined before it has an identity). */
function memDirOf(store: string): string | undefined {
  const f = join(store, 'store.json');
  return existsSync(f) ? join(memTier, (JSON.parse(readFileSync(f, 'utf8')) as { id: string }).id) : undefined;
}
/** What a store's memory tier holds (its back-pointer file aside). */
const memEntriesOf = (store: string): string[] => {
  const d = memDirOf(store);
  return d && existsSync(d) ? readdirSync(d).filter((n) => n !== '.ferry-store.json') : [];
};

/** No `.tmp-*` or `.rm-*` left anywhere in a store's tiers. */
function noLeftovers(store: string): void {
  for (const d of [join(store, 'snapshots'), memDirOf(store) ?? join(memTier, 'none')]) {
    const names = existsSync(d) ? readdirSync(d) : [];
    // (`.rm-*`: obsolete copies being freed in the background, not half-written snapshots)
    assert.deepEqual(names.filter((n) => n.startsWith('.') && !n.startsWith('.rm-') && n !== '.ferry-store.json'), [], `nothing half-written in ${d}`);
  }
}

async function startMemcheck(store: string, mib: number, seed: number): Promise<{ inst: WorkloadInstance; pid: number; name: string }> {
  const inst = await memcheckWorkload({ mib, seed }).prepare(base);
  const name = `mc-${Math.random().toString(36).slice(2, 8)}`;
  const out = JSON.parse(await ok(store, ['run', '--name', name, '--json', '--', ...inst.command])) as { pid: number };
  pids.add(out.pid);
  await inst.waitReady(60_000);
  return { inst, pid: out.pid, name };
}

/** Rewrites an archive with one byte flipped inside `member`'s data (a consistent tar and zstd frame). */
async function flipInMember(archive: Buffer, member: RegExp): Promise<Buffer> {
  const raw = Buffer.from(decompress(archive));
  const extract = tar.extract();
  Readable.from([raw]).pipe(extract);
  let at = -1;
  for await (const e of extract) {
    if (at < 0 && member.test(e.header.name) && e.header.size > 8192) at = e.offset + 512 + 4096 + 17;
    e.resume();
  }
  assert.ok(at > 0, `no member ${String(member)} in the archive`);
  raw[at] = raw[at]! ^ 0x01;
  return compress(raw);
}

describe('snapshot store: export/import, chains, memory budget (CLI, real CRIU)', { concurrency: false }, () => {
  let storeA: string;
  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-store-e2e-'));
    memTier = await mkdtemp('/dev/shm/ferry-e2e-mem-');
    storeA = join(base, 'store-a');
  });
  after(async () => {
    pids.killAll();
    await rm(base, { recursive: true, force: true });
    await rm(memTier, { recursive: true, force: true });
  });

  it('export → import into a second store → restore there: the workload verifies; ls reports sizes', async () => {
    const wl = await startMemcheck(storeA, 64, 11);
    const cp = JSON.parse(await ok(storeA, ['checkpoint', wl.name, '--json'])) as { snapshot: string };
    await waitFor(() => !isAlive(wl.pid), 10_000, 'the checkpointed workload to stop');
    const file = join(base, 'a.ferry');
    const ex = JSON.parse(await ok(storeA, ['export', cp.snapshot, file, '--json'])) as { chain: string[]; bytes: number; archiveBytes: number; durationMs: number };
    assert.deepEqual(ex.chain, [cp.snapshot]);
    assert.ok(ex.bytes > 64 << 20 && ex.archiveBytes > 0, JSON.stringify(ex));
    await refused(storeA, ['export', cp.snapshot, file], /already exists/);

    const storeB = join(base, 'store-b');
    const im = JSON.parse(await ok(storeB, ['import', file, '--json'])) as { snapshot: string; imported: string[]; tier: string };
    assert.deepEqual([im.snapshot, im.imported, im.tier], [cp.snapshot, [cp.snapshot], 'disk']);
    const listed = await ls(storeB);
    const row = listed.snapshots.find((s) => s.id === cp.snapshot)!;
    assert.ok(row.logicalBytes > 64 << 20, JSON.stringify(row));
    assert.ok(row.storedBytes >= row.bytes && row.storedBytes < row.bytes + (1 << 20), JSON.stringify(row));
    assert.equal(listed.totalStoredBytes, row.storedBytes);
    assert.match(await ok(storeB, ['snapshots', 'ls']), /LOGICAL\s+STORED[\s\S]*1 snapshot\(s\): .* logical, .* stored/);
    await refused(storeB, ['import', file], /already has a snapshot/);
    noLeftovers(storeB);

    const r = JSON.parse(await ok(storeB, ['restore', cp.snapshot, '--json'])) as { pid: number };
    pids.add(r.pid);
    await wl.inst.verify(r.pid);
    killQuietly(r.pid);

    // The same through a pipe: export to stdout, import from stdin, under another id.
    const piped = await new Promise<Ran>((resolve) => execFile('sh', ['-c', `"$0" --store "$1" export "$2" - | "$0" --store "$3" import - --as copy-1 --json`, FERRY, storeA, cp.snapshot, storeB],
      { env: { ...process.env, FERRY_MEMORY_TIER: memTier } }, (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr })));
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal((JSON.parse(piped.stdout) as { snapshot: string }).snapshot, 'copy-1');
    assert.deepEqual(await ids(storeB), [cp.snapshot, 'copy-1'].sort());
  });

  it('a tampered or truncated archive is rejected, nothing new is listed, no temp dir remains', async () => {
    const wl = await startMemcheck(storeA, 32, 12);
    const snap = (await ok(storeA, ['checkpoint', wl.name, '--leave-running'])).trim();
    const file = join(base, 't.ferry');
    await ok(storeA, ['export', snap, file]);
    const archive = readFileSync(file);
    const storeC = join(base, 'store-c');
    await ok(storeC, ['import', file, '--as', 'honest']); // the untampered archive imports
    const before = await ids(storeC);

    const flipped = join(base, 'flipped.ferry');
    writeFileSync(flipped, await flipInMember(archive, /\/pages-\d+\.img$/));
    await refused(storeC, ['import', flipped], /rejected: .*pages-\d+\.img fails its checksum/);

    const raw = Buffer.from(archive);
    raw[Math.floor(raw.length / 2)] = raw[Math.floor(raw.length / 2)]! ^ 0x40;
    writeFileSync(flipped, raw);
    const j = await ferry(storeC, ['import', flipped, '--json']);
    assert.equal(j.code, 1);
    assert.match((JSON.parse(j.stdout) as { error: { code: string } }).error.code, /^ERR_ARCHIVE_(CORRUPT|INVALID)$/);

    for (const cut of [Math.floor(archive.length / 2), archive.length - 1]) {
      const truncated = join(base, `cut-${cut}.ferry`);
      writeFileSync(truncated, archive.subarray(0, cut));
      await refused(storeC, ['import', truncated], /rejected: it is cut off/);
    }
    assert.deepEqual(await ids(storeC), before);
    noLeftovers(storeC);
    assert.ok(isAlive(wl.pid));
    killQuietly(wl.pid);
  });

  it('a chain (parent link + manifest.parent, made by hand from two real checkpoints) travels whole', async () => {
    const storeD = join(base, 'store-d');
    const wl = await startMemcheck(storeD, 16, 13);
    const first = (await ok(storeD, ['checkpoint', wl.name, '--leave-running', '--no-dedup', '--name', 'gen-1'])).trim();
    const second = (await ok(storeD, ['checkpoint', wl.name, '--leave-running', '--no-dedup', '--name', 'gen-2'])).trim();
    killQuietly(wl.pid);
    const childDir = join(storeD, 'snapshots', second);
    const mf = join(childDir, 'manifest.json');
    writeFileSync(mf, JSON.stringify({ ...JSON.parse(readFileSync(mf, 'utf8')) as object, parent: first }));
    await symlink(`../${first}`, join(childDir, 'parent'));

    const file = join(base, 'chain.ferry');
    const ex = JSON.parse(await ok(storeD, ['export', second, file, '--json'])) as { chain: string[] };
    assert.deepEqual(ex.chain, [first, second]);
    const storeE = join(base, 'store-e');
    const im = JSON.parse(await ok(storeE, ['import', file, '--json'])) as { imported: string[]; present: string[] };
    assert.deepEqual([im.imported, im.present], [[first, second], []]);
    assert.equal(await readlink(join(storeE, 'snapshots', second, 'parent')), `../${first}`);
    const rows = (await ls(storeE)).snapshots;
    assert.equal(rows.find((s) => s.id === second)?.parent, first);

    // Into a store that already holds the parent: only the child is new.
    await ok(storeD, ['export', first, join(base, 'parent.ferry')]);
    const storeG = join(base, 'store-g');
    await ok(storeG, ['import', join(base, 'parent.ferry')]);
    const again = JSON.parse(await ok(storeG, ['import', file, '--json'])) as { imported: string[]; present: string[] };
    assert.deepEqual([again.imported, again.present], [[second], [first]]);
    noLeftovers(storeE);
    noLeftovers(storeG);
  });

  it('a deduped chain (page dedup at checkpoint) exports, imports into an empty store and restores there', async () => {
    const storeH = join(base, 'store-h');
    const wl = await startMemcheck(storeH, 32, 15);
    const first = JSON.parse(await ok(storeH, ['checkpoint', wl.name, '--leave-running', '--json'])) as { snapshot: string };
    const second = JSON.parse(await ok(storeH, ['checkpoint', wl.name, '--json'])) as { snapshot: string; parent: string | null; rebased: { id: string } | null };
    await waitFor(() => !isAlive(wl.pid), 10_000, 'the checkpointed workload to stop');
    // newest-flat dedup (the default): the new snapshot stays whole, the first now builds on it.
    assert.equal(second.parent, null);
    assert.equal(second.rebased?.id, first.snapshot, 'the second checkpoint of a workload rebases the first onto it');
    const file = join(base, 'dedup.ferry');
    const ex = JSON.parse(await ok(storeH, ['export', first.snapshot, file, '--json'])) as { chain: string[] };
    assert.deepEqual(ex.chain, [second.snapshot, first.snapshot]);
    const storeI = join(base, 'store-i');
    const im = JSON.parse(await ok(storeI, ['import', file, '--json'])) as { imported: string[] };
    assert.deepEqual(im.imported, ex.chain);
    const rows = (await ls(storeI)).snapshots;
    const child = rows.find((s) => s.id === first.snapshot)!;
    assert.equal(child.parent, second.snapshot);
    assert.ok(child.storedBytes < child.logicalBytes, `dedup stores less than it restores: ${JSON.stringify(child)}`);
    const r = JSON.parse(await ok(storeI, ['restore', first.snapshot, '--json'])) as { pid: number };
    pids.add(r.pid);
    await wl.inst.verify(r.pid);
    killQuietly(r.pid);
    noLeftovers(storeI);
  });

  describe('memory tier budget', () => {
    let wl: { inst: WorkloadInstance; pid: number; name: string };
    const storeM = () => join(base, 'store-m');
    before(async () => { wl = await startMemcheck(storeM(), 64, 14); });
    // (wl is killed with the file's other pids, by start time: its pid may be reused meanwhile)
    const memEntries = () => memEntriesOf(storeM());

    it('over budget without spilling: refused before CRIU runs, with the numbers and remedies; the workload keeps running', async () => {
      const logs = join(storeM(), 'logs');
      const logsBefore = existsSync(logs) ? readdirSync(logs).length : 0;
      const r = await refused(storeM(), ['checkpoint', wl.name, '--tier', 'memory', '--memory-budget', '16M'],
        /memory tier's budget of 16\.0 MiB \(--memory-budget\) would be exceeded: .* in use \+ about 6\d\.\d MiB/);
      assert.match(r.stderr, /snapshots gc.*--tier disk.*--spill-to-disk/s);
      const j = await ferry(storeM(), ['checkpoint', wl.name, '--tier', 'memory', '--json'], { FERRY_MEMORY_BUDGET: '16M' });
      assert.equal((JSON.parse(j.stdout) as { error: { code: string } }).error.code, 'ERR_MEMORY_BUDGET');
      writeFileSync(join(storeM(), 'config.json'), JSON.stringify({ memoryBudgetBytes: 16 << 20 }));
      await refused(storeM(), ['checkpoint', wl.name, '--tier', 'memory'], /budget of 16\.0 MiB \(config\.json\)/);
      assert.deepEqual(memEntries(), [], 'nothing written to the memory tier');
      assert.equal(existsSync(logs) ? readdirSync(logs).length : 0, logsBefore, 'CRIU never ran');
      assert.ok(isAlive(wl.pid));
      await wl.inst.verify(wl.pid);
    });

    it('over budget with spilling allowed: goes to disk and says so; within budget it stays in memory and counts', async () => {
      writeFileSync(join(storeM(), 'config.json'), JSON.stringify({ memoryBudgetBytes: 16 << 20, spillToDisk: true }));
      const sp = JSON.parse(await ok(storeM(), ['checkpoint', wl.name, '--tier', 'memory', '--leave-running', '--json'])) as { snapshot: string; tier: string; spilled: boolean; reason: string };
      assert.deepEqual([sp.tier, sp.spilled], ['disk', true]);
      assert.match(sp.reason, /budget of 16\.0 MiB/);
      assert.ok(existsSync(join(storeM(), 'snapshots', sp.snapshot, 'manifest.json')));
      const human = await ferry(storeM(), ['checkpoint', wl.name, '--tier', 'memory', '--leave-running']);
      assert.match(human.stderr, /spilled to the disk tier: /);
      await refused(storeM(), ['checkpoint', wl.name, '--tier', 'memory', '--no-spill'], /would be exceeded/);

      const inMem = JSON.parse(await ok(storeM(), ['checkpoint', wl.name, '--tier', 'memory', '--leave-running', '--memory-budget', '1G', '--json'])) as { tier: string; spilled: boolean };
      assert.deepEqual([inMem.tier, inMem.spilled], ['memory', false]);
      const used = (await ls(storeM())).memoryTier.usedBytes;
      assert.ok(used > 60 << 20, `memory tier holds ${used}`);
      // The snapshot already there counts: a budget just above it leaves no room for another.
      await refused(storeM(), ['checkpoint', wl.name, '--tier', 'memory', '--memory-budget', String(used + (8 << 20)), '--no-spill'], /would be exceeded/);
      assert.deepEqual(memEntries().filter((n) => n.startsWith('.')), []);

      // The spilled snapshot restores.
      killQuietly(wl.pid);
      await waitFor(() => !isAlive(wl.pid), 10_000, 'the workload to stop');
      const r = JSON.parse(await ok(storeM(), ['restore', sp.snapshot, '--json'])) as { pid: number };
      pids.add(r.pid);
      await wl.inst.verify(r.pid);
      killQuietly(r.pid);
    });
  });
});
