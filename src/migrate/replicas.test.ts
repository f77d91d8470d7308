// The destination's side of incremental transfers without CRIU: a real agent app on loopback with
// a temp store, hand-made dumps sent through the source's client (pages-client.ts). A replica
// arrives whole, the next one as a child holding only the changed pages; the first is then
// removed and folded in, so one whole replica is left whose pages read back as the newer dump.
// Bad parents, keys and snapshots are refused with their codes, and nothing is kept.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createAdaptorServer } from '@hono/node-server';
import { createAgentApp } from '../agent/app.js';
import { PAGE_SIZE, PE_PRESENT, writePagemap, type PagemapRun } from '../criu/images/pagemap.js';
import { LimitAdmission } from '../engine/admission.js';
import { createEngine, type Engine } from '../engine/engine.js';
import { Jobs } from '../engine/jobs.js';
import { loadLevel, resolvePage } from '../store/chain.js';
import { pfnOf } from '../store/page-index.js';
import { PagesClient } from './pages-client.js';
import { buildDelta } from './pages-delta.js';
import { IncomingReplicas } from './replicas.js';
import type { SnapshotMeta } from './wire.js';

const TOKEN = 'replica-test-token';
const RUNS: PagemapRun[] = [{ vaddr: 0x400000n, nrPages: 64, flags: PE_PRESENT }, { vaddr: 0x7f0000000000n, nrPages: 64, flags: PE_PRESENT }];
const PRESENT = 128;

async function dump(dir: string, changed: ReadonlySet<number>, v: number): Promise<Buffer[]> {
  await mkdir(dir, { recursive: true });
  const pages = Array.from({ length: PRESENT }, (_, i) => {
    const b = Buffer.alloc(PAGE_SIZE, (i * 13 + 5) & 0xff);
    b.writeUInt32LE(i, 0);
    if (changed.has(i)) b.writeUInt32LE(7000 + v, 16);
    return b;
  });
  await writePagemap(join(dir, 'pagemap-1.img'), { pagesId: 3 }, RUNS);
  await writeFile(join(dir, 'pages-3.img'), Buffer.concat(pages));
  await writeFile(join(dir, 'core-1.img'), `core ${v}`);
  return pages;
}

describe('replicas: the destination keeps one whole replica, sent incrementally (loopback, no CRIU)', () => {
  let work = '';
  let engine: Engine;
  let server: Server;
  let jobs: Jobs;
  let agent: ReturnType<typeof createAgentApp>;
  let client: PagesClient;
  let n = 0;
  const transfer = () => `m-${(++n).toString(16).padStart(16, 'a')}`;
  const meta: Omit<SnapshotMeta, 'files'> = {
    target: { kind: 'process', pid: 42, workload: 'web', command: ['/bin/prog'], ownPidNamespace: true },
    options: { tcpEstablished: false, extUnixSk: false, fileLocks: false, shellJob: false }, criuVersion: '4.2',
    host: { hostname: 'h1', kernel: '6.1', arch: 'x64', cpuFlags: ['sse2'] },
  };
  const ids = async () => (await engine.store.list()).map((s) => [s.manifest.id, s.manifest.parent ?? null]);

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'ferry-replicas-'));
    engine = createEngine({ store: join(work, 'store') });
    await engine.store.ensure('disk');
    jobs = new Jobs({ engine, admission: new LimitAdmission(1) });
    agent = createAgentApp({ engine, jobs, token: TOKEN, replicas: new IncomingReplicas(engine, undefined) });
    server = createAdaptorServer({ fetch: agent.app.fetch }) as Server;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    client = new PagesClient(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, TOKEN);
  });
  after(async () => {
    server.closeAllConnections();
    server.close();
    await jobs.close();
    agent.dispose();
    await rm(work, { recursive: true, force: true });
  });

  it('a whole replica, then a child of it with the changed pages only; the first folds into the second', async () => {
    assert.equal(await client.replica('w.web'), undefined);
    await dump(join(work, 'd0'), new Set(), 0);
    const first = await buildDelta(join(work, 'd0'), join(work, 's0'), undefined);
    const r0 = await client.send(first, { kind: 'replica', key: 'w.web', tier: 'disk' }, { transfer: transfer(), meta });
    await first.dispose();
    assert.equal((await client.replica('w.web'))?.snapshot, r0.snapshot);
    const have = await client.have(r0.snapshot);
    assert.deepEqual(have.sections.get(1)?.entries, RUNS);
    assert.ok(have.sections.get(1)?.hashes.equals(first.have.get(1)!.hashes), 'it holds what was sent');

    const changed = new Set([3, 64, 65, 127]);
    const want = await dump(join(work, 'd1'), changed, 1);
    const second = await buildDelta(join(work, 'd1'), join(work, 's1'), have);
    assert.equal(second.parent, r0.snapshot);
    assert.equal(second.files['pages-3.img']!.size, changed.size * PAGE_SIZE);
    const r1 = await client.send(second, { kind: 'replica', key: 'w.web', tier: 'disk' }, { transfer: transfer(), meta });
    await second.dispose();
    assert.equal((r1.destination as { replaced?: string }).replaced, r0.snapshot);
    // One replica, whole now: its own pages image holds every page, as the newer dump has them.
    assert.deepEqual(await ids(), [[r1.snapshot, null]]);
    const s = await engine.store.get(r1.snapshot);
    const level = await loadLevel(s.dir, 1);
    let i = 0;
    for (const run of RUNS) {
      for (let k = 0; k < run.nrPages; k++, i++) {
        const at = resolvePage([level], pfnOf(run.vaddr) + k);
        assert.ok(at && at.level === 0, `page ${i} is in the replica itself`);
        assert.ok(readFileSync(level!.pagesPath).subarray(at.offset, at.offset + PAGE_SIZE).equals(want[i]!), `page ${i}`);
      }
    }
  });

  it('refuses a parent that is not the current replica, a bad key, an unknown snapshot, rounds without migrations; keeps nothing of them', async () => {
    const before = await ids();
    await dump(join(work, 'd2'), new Set([1]), 2);
    const replica = (await client.replica('w.web'))!;
    const delta = await buildDelta(join(work, 'd2'), join(work, 's2'), await client.have(replica.snapshot));
    try {
      await assert.rejects(client.send({ ...delta, parent: 'not-the-replica' }, { kind: 'replica', key: 'w.web', tier: 'disk' }, { transfer: transfer(), meta }), { code: 'ERR_MIGRATION_STATE' });
      await assert.rejects(client.send(delta, { kind: 'replica', key: 'w.other', tier: 'disk' }, { transfer: transfer(), meta }), { code: 'ERR_MIGRATION_STATE' });
      await assert.rejects(client.send(delta, { kind: 'replica', key: 'web', tier: 'disk' }, { transfer: transfer(), meta }), { code: 'ERR_USAGE' });
      await assert.rejects(client.send(delta, { kind: 'round', migration: 'm-00000000000000ff' }, { transfer: 'm-00000000000000ff', meta }), { code: 'ERR_MIGRATE_REFUSED' });
      await assert.rejects(client.have('no-such-snapshot'), { code: 'ERR_NO_SNAPSHOT' });
      await assert.rejects(client.replica('../etc'), (e: Error & { code?: string }) => e.code === 'ERR_USAGE' || e.code === 'ERR_NO_ROUTE');
      assert.deepEqual(await ids(), before);
    } finally {
      await delta.dispose();
    }
    assert.deepEqual((await client.removeReplica('w.web'))?.snapshot, replica.snapshot);
    assert.deepEqual(await ids(), []);
    assert.equal(await client.replica('w.web'), undefined);
  });
});
