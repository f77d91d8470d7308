// The store on temp directories, without root or CRIU: isolation of memory tiers, damage,
// intent records and leftovers, log retention, orphaned memory tiers.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { processStartTime } from '../telemetry/proc.js';
import { isFerryError } from '../util/errors.js';
import { gc, orphanMemoryDirs, removeSnapshot, sweepLogs } from './retention.js';
import { Store } from './store.js';
import { fakeManifest } from './testing-manifest.js';

/** A complete snapshot in `tier`, through begin/commit as the engine makes one. */
async function snap(store: Store, id: string, tier: 'memory' | 'disk' = 'memory', parent?: string): Promise<string> {
  const p = await store.begin(tier, id);
  await writeFile(join(p.dir, 'core-1.img'), 'hello');
  return p.commit(fakeManifest(id, tier, parent ? { parent } : {}));
}

/** A pid that was a process and is no more. */
function deadPid(): number {
  const r = spawnSync('true');
  assert.ok(r.pid > 0 && processStartTime(r.pid) === undefined);
  return r.pid;
}

describe('store: isolation, damage, intents, retention (temp dirs, no CRIU)', () => {
  const saved = process.env['FERRY_MEMORY_TIER'];
  let dir: string;
  let base: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-store-unit-'));
    base = join(dir, 'shm');
    await mkdir(base, { recursive: true });
    process.env['FERRY_MEMORY_TIER'] = base;
  });
  afterEach(async () => {
    if (saved === undefined) delete process.env['FERRY_MEMORY_TIER']; else process.env['FERRY_MEMORY_TIER'] = saved;
    await rm(dir, { recursive: true, force: true });
  });

  it('two stores under one memory base do not see or remove each other\'s memory snapshots', async () => {
    const a = new Store({ root: join(dir, 'a') });
    const b = new Store({ root: join(dir, 'b') });
    await snap(a, 'only-in-a');
    await snap(b, 'only-in-b');
    assert.notEqual(a.memoryDir, b.memoryDir);
    assert.equal(a.memoryDir, join(base, a.ensureIdentity().id));
    assert.deepEqual((await a.list()).map((s) => s.manifest.id), ['only-in-a']);
    assert.deepEqual((await b.list()).map((s) => s.manifest.id), ['only-in-b']);
    assert.equal(await b.find('only-in-a'), undefined);
    await assert.rejects(b.remove('only-in-a'), (e) => isFerryError(e, 'ERR_NO_SNAPSHOT'));
    const r = await gc(b, { keepLast: 0 });
    assert.deepEqual(r.remove, ['only-in-b']);
    assert.deepEqual((await a.list()).map((s) => s.manifest.id), ['only-in-a'], 'gc in B left A alone');
    // A new Store object for the same root finds the same memory tier (store.json).
    assert.equal(new Store({ root: join(dir, 'a') }).memoryDir, a.memoryDir);
  });

  it('a deleted store\'s memory tier is an orphan: found by its back-pointer, removed by gc of another store', async () => {
    const a = new Store({ root: join(dir, 'a') });
    const b = new Store({ root: join(dir, 'b') });
    await snap(a, 's1');
    await b.ensure('memory');
    const aMem = a.memoryDir;
    await rm(join(dir, 'a'), { recursive: true });
    const orphans = await orphanMemoryDirs(b);
    assert.deepEqual(orphans.map((o) => [o.dir, o.root]), [[aMem, join(dir, 'a')]]);
    assert.match(orphans[0]!.reason, /no longer exists/);
    assert.ok(orphans[0]!.bytes > 0);
    const dry = await gc(b, {}, true);
    assert.equal(dry.orphans.length, 1);
    assert.ok(existsSync(aMem), 'dry run removes nothing');
    await gc(b, {});
    assert.ok(!existsSync(aMem));
    assert.ok(existsSync(b.memoryDir), 'the living store\'s tier stays');
  });

  it('one damaged manifest: list skips it, scan reports it with a reason, get names the file, rm removes it, gc keeps working', async () => {
    const s = new Store({ root: join(dir, 's') });
    await snap(s, 'good-1', 'disk');
    const bad = await snap(s, 'bad-1', 'disk');
    await snap(s, 'good-2', 'memory');
    await writeFile(join(bad, 'manifest.json'), '{"format": 1, "id": ');
    assert.deepEqual((await s.list()).map((x) => x.manifest.id).sort(), ['good-1', 'good-2']);
    const scan = await s.scan();
    assert.deepEqual(scan.damaged.map((d) => [d.id, d.tier, d.dir]), [['bad-1', 'disk', bad]]);
    assert.match(scan.damaged[0]!.reason, new RegExp(`${join(bad, 'manifest.json')} is not JSON`));
    assert.ok(scan.damaged[0]!.bytes > 0);
    await assert.rejects(s.get('bad-1'), (e) => isFerryError(e, 'ERR_SNAPSHOT_CORRUPT') && e.message.includes(join(bad, 'manifest.json')) && /not JSON/.test(e.message));
    const r = await gc(s, { keepLast: 1 });
    assert.deepEqual(r.damaged.map((d) => d.id), ['bad-1'], 'gc reports it and keeps it');
    assert.equal(r.remove.length, 1);
    await removeSnapshot(s, 'bad-1');
    assert.equal((await s.scan()).damaged.length, 0);
    assert.ok(!existsSync(bad));
  });

  it('a damaged snapshot others build on is not removed silently', async () => {
    const s = new Store({ root: join(dir, 's') });
    const p = await snap(s, 'base-1', 'disk');
    await snap(s, 'child-1', 'disk', 'base-1');
    await writeFile(join(p, 'manifest.json'), '[]');
    await assert.rejects(removeSnapshot(s, 'base-1'), (e) => isFerryError(e, 'ERR_SNAPSHOT_CORRUPT') && /child-1 builds on it/.test(e.message));
    assert.ok(existsSync(p));
  });

  it('intent records: written before the pending dir, updated atomically, gone after commit and after abandon', async () => {
    const s = new Store({ root: join(dir, 's') });
    const p = await s.begin('memory', 'c-1', { op: 'checkpoint', payload: { target: 'pid 1' } });
    const file = join(dir, 's', 'intents', 'c-1.json');
    const rec = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
    assert.equal(rec['ownerPid'], process.pid);
    assert.equal(rec['ownerStartTime'], processStartTime(process.pid));
    assert.equal(rec['dir'], p.dir);
    await Promise.all([p.updateIntent({ phase: 'dumping' }), p.updateIntent({ payload: { criu: '4.2' } })]);
    const rec2 = JSON.parse(await readFile(file, 'utf8')) as { phase: string; payload: Record<string, unknown> };
    assert.deepEqual([rec2.phase, rec2.payload], ['dumping', { target: 'pid 1', criu: '4.2' }]);
    assert.deepEqual((await readdir(join(dir, 's', 'intents'))).filter((n) => n.startsWith('.')), [], 'no temp files');
    const live = await s.scan();
    assert.deepEqual(live.leftovers.map((l) => [l.id, l.kind, l.ownerAlive]), [['c-1', 'pending', true]]);
    assert.deepEqual(await s.interrupted(), [], 'its owner (this process) runs');
    const r = await gc(s, { staleMs: 0 });
    assert.equal(r.keptLeftovers.length, 1, 'never removed while its owner runs');
    assert.ok(existsSync(p.dir));
    await p.commit(fakeManifest('c-1', 'memory'));
    assert.ok(!existsSync(file));
    const q = await s.begin('disk', 'c-2');
    await q.abandon();
    assert.deepEqual(await readdir(join(dir, 's', 'intents')), []);
    assert.deepEqual((await s.scan()).leftovers, []);
  });

  it('an interrupted checkpoint (owner dead, or its pid reused) is listed with its size and removed by gc', async () => {
    const s = new Store({ root: join(dir, 's') });
    const p = await s.begin('memory', 'c-dead');
    await writeFile(join(p.dir, 'pages-1.img'), Buffer.alloc(64 * 1024, 1));
    const q = await s.begin('disk', 'c-reused');
    // Forge the owners: a pid that exited, and this pid with another start time (pid reuse).
    const forge = async (id: string, patch: Record<string, unknown>) => {
      const f = join(dir, 's', 'intents', `${id}.json`);
      await writeFile(f, JSON.stringify({ ...JSON.parse(await readFile(f, 'utf8')) as object, ...patch }));
    };
    await forge('c-dead', { ownerPid: deadPid() });
    await forge('c-reused', { ownerStartTime: '1' });
    const gone = await s.interrupted();
    assert.deepEqual(gone.map((g) => g.intent.id).sort(), ['c-dead', 'c-reused']);
    assert.ok(gone.find((g) => g.intent.id === 'c-dead')!.bytes >= 64 * 1024);
    const dry = await gc(s, {}, true);
    assert.deepEqual(dry.leftovers.map((l) => l.id).sort(), ['c-dead', 'c-reused']);
    assert.ok(existsSync(p.dir) && existsSync(q.dir), 'dry run removes nothing');
    await gc(s, {});
    assert.ok(!existsSync(p.dir) && !existsSync(q.dir));
    assert.deepEqual(await readdir(join(dir, 's', 'intents')), []);
    assert.deepEqual(await s.interrupted(), []);
  });

  it('leftovers without an intent record are swept only once older than --stale-after', async () => {
    const s = new Store({ root: join(dir, 's') });
    await s.ensure('memory');
    const old = join(s.memoryDir, '.tmp-legacy-1');
    const fresh = join(s.tierDir('disk'), '.rm-x-123');
    await mkdir(old);
    await writeFile(join(old, 'f'), 'x');
    await mkdir(fresh);
    const past = new Date(Date.now() - 3600_000);
    await utimes(join(old, 'f'), past, past);
    await utimes(old, past, past);
    const listed = (await s.scan()).leftovers;
    assert.deepEqual(listed.map((l) => [l.id, l.kind, l.tier, l.ownerAlive]).sort(), [['.rm-x-123', 'removing', 'disk', undefined], ['.tmp-legacy-1', 'pending', 'memory', undefined]]);
    const r = await gc(s, { staleMs: 10 * 60_000 });
    assert.deepEqual(r.swept, [old]);
    assert.ok(!existsSync(old) && existsSync(fresh));
  });

  it('operation logs: kept by count and age, never the one just made (as engine/paths.ts sweeps after makeOperationDir)', async () => {
    const s = new Store({ root: join(dir, 's') });
    const logs = join(dir, 's', 'logs');
    await mkdir(logs, { recursive: true });
    const old = new Date(Date.now() - 30 * 86_400_000);
    for (let i = 0; i < 5; i++) {
      await mkdir(join(logs, `restore-x-${i}`));
      await utimes(join(logs, `restore-x-${i}`), old, old);
    }
    assert.equal((await sweepLogs(s, { logsMaxAgeMs: 365 * 86_400_000, logsKeep: 3 }, [], true)).length, 2, 'beyond the newest 3');
    const made = await s.makeOperationDir('checkpoint', 'new-1');
    assert.equal(made, join(logs, 'checkpoint-new-1'));
    await sweepLogs(s, {}, [made]);
    assert.deepEqual(await readdir(logs), ['checkpoint-new-1'], 'default retention (14 days) swept the 30-day-old ones');
    assert.deepEqual(await sweepLogs(s, { logsKeep: 0, logsMaxAgeMs: 0 }), [], 'a fresh log is never swept');
  });

  it('a store path that is a file: scan and ensure say so clearly', async () => {
    await writeFile(join(dir, 'file'), 'x');
    const s = new Store({ root: join(dir, 'file') });
    await assert.rejects(s.scan(), (e) => isFerryError(e, 'ERR_STORE_UNWRITABLE') && /is not a directory/.test(e.message));
    await assert.rejects(s.ensure(), (e) => isFerryError(e, 'ERR_STORE_UNWRITABLE'));
    assert.deepEqual(await s.list(), []);
  });
});
