// An image transfer with real CRIU (root): a `ferry run` workload in store A is checkpointed
// with --leave-running, its snapshot's images are sent (zstd) to an agent app (real engine, on a
// loopback socket; no migration state machine, so no preflight is needed) on store B through
// PUT /v1/migrations/:id/images, and store B restores the received snapshot under another name —
// after the original is stopped — and the copy runs on (its counter keeps going).
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createAdaptorServer } from '@hono/node-server';
import { createAgentApp } from '../agent/app.js';
import { LimitAdmission } from '../engine/admission.js';
import { createEngine } from '../engine/engine.js';
import { Jobs } from '../engine/jobs.js';
import { Store } from '../store/store.js';
import { ferryCli, ferryOk } from '../testing/ferry-cli.js';
import { isAlive, killQuietly, waitFor } from '../testing/processes.js';
import { sendImages } from './send-images.js';

describe('migrate: images of a real checkpoint sent to another store\'s agent, restored there', { timeout: 180_000 }, () => {
  let dir = '';
  let storeA = '';
  let storeB = '';
  let agent: ReturnType<typeof createAgentApp> | undefined;
  let jobs: Jobs | undefined;
  let server: Server | undefined;
  let url = '';
  let token = '';
  let counter = '';
  const pids: number[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-transfer-e2e-'));
    storeA = join(dir, 'a');
    storeB = join(dir, 'b');
    counter = join(dir, 'counter');
    token = randomBytes(24).toString('hex');
    const engine = createEngine({ store: storeB });
    jobs = new Jobs({ engine, admission: new LimitAdmission(1) });
    agent = createAgentApp({ engine, jobs, token });
    server = createAdaptorServer({ fetch: agent.app.fetch }) as Server;
    await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server?.closeAllConnections();
    server?.close();
    await jobs?.close();
    agent?.dispose();
    await ferryCli(storeA, ['stop', 'counter']);
    await ferryCli(storeB, ['stop', 'counter-b']);
    for (const p of pids) killQuietly(p);
    await rm(dir, { recursive: true, force: true });
  });

  const count = async () => Number((await readFile(counter, 'utf8').catch(() => '0')).trim() || '0');

  it('checkpoint (leave running) → send → sealed and listed on B → original stopped → restore --as on B → it counts on', async (t) => {
    const script = `i=0; while :; do i=$((i+1)); echo $i > ${counter}.tmp; mv ${counter}.tmp ${counter}; sleep 0.05; done`;
    const run = JSON.parse(await ferryOk(storeA, ['run', '--name', 'counter', '--json', '--', 'sh', '-c', script])) as { pid: number };
    pids.push(run.pid);
    await waitFor(() => isAlive(run.pid), 5000, 'the workload');
    await new Promise((r) => setTimeout(r, 300));
    const beforeCheckpoint = await count();
    const cp = JSON.parse(await ferryOk(storeA, ['checkpoint', 'counter', '--leave-running', '--json'])) as { snapshot: string };
    const afterCheckpoint = await count();
    assert.ok(isAlive(run.pid));
    const s = await new Store({ root: storeA }).get(cp.snapshot);
    const m = s.manifest;

    const sent = await sendImages({
      dir: s.dir, url, token, migrationId: `m-${randomBytes(8).toString('hex')}`, compress: true, destination: { snapshot: 'moved' },
      meta: { ...(m.name !== undefined ? { name: m.name } : {}), target: m.target, options: m.options, criuVersion: m.criu.version, host: m.host, criuMs: m.timings.criuMs, files: m.files },
    });
    t.diagnostic(`sent ${sent.files} files, ${sent.bytes} bytes as ${sent.wireBytes} on the wire in ${sent.ms} ms`);
    assert.equal(sent.snapshot, 'moved');
    assert.ok(sent.wireBytes < sent.bytes, 'zstd paid on a real dump');

    // B lists it, inspects it, and its manifest has A's checksums.
    const ls = JSON.parse(await ferryOk(storeB, ['snapshots', 'ls', '--json'])) as { snapshots: { id: string; workload: string | null }[]; damaged: unknown[]; leftovers: unknown[] };
    assert.deepEqual(ls.snapshots.map((x) => [x.id, x.workload]), [['moved', 'counter']]);
    assert.deepEqual([ls.damaged, ls.leftovers], [[], []]);
    const inspect = JSON.parse(await ferryOk(storeB, ['snapshots', 'inspect', 'moved', '--json'])) as { manifest?: { files: unknown }; files?: unknown; processes?: { pid: number }[] };
    assert.ok(JSON.stringify(inspect).includes('"sh"'), 'inspect decodes the received images');
    const mB = (await new Store({ root: storeB }).get('moved')).manifest;
    assert.deepEqual(mB.files, m.files);

    // The original stops; the copy is restored on B (verified while CRIU restores) and counts on.
    await ferryOk(storeA, ['stop', 'counter']);
    await waitFor(() => !isAlive(run.pid), 10_000, 'the original to stop');
    const stoppedAt = await count();
    const restored = JSON.parse(await ferryOk(storeB, ['restore', 'moved', '--as', 'counter-b', '--json'])) as { pid: number; name: string };
    pids.push(restored.pid);
    assert.equal(restored.name, 'counter-b');
    assert.ok(isAlive(restored.pid), "the copy runs");
    // The copy goes on from the count it had at the checkpoint (the original counted on until it
    // was stopped, so the copy's first value lies between the counts around the checkpoint).
    const deadline = Date.now() + 10_000;
    while ((await count()) === stoppedAt && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const first = await count();
    assert.ok(first >= beforeCheckpoint && first <= afterCheckpoint + 2, `the restored copy resumed at ${first}, not within ${beforeCheckpoint}…${afterCheckpoint}: it did not continue from the checkpoint`);
    while ((await count()) < first + 10 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.ok((await count()) >= first + 10, `the restored copy counts on from ${first}: now ${await count()}`);
    const ps = JSON.parse(await ferryOk(storeB, ['ps', '--json'])) as { workloads?: { name: string; state: string }[] } | { name: string; state: string }[];
    const rows = Array.isArray(ps) ? ps : ps.workloads ?? [];
    assert.ok(rows.some((w) => w.name === 'counter-b' && w.state === 'running'), JSON.stringify(ps));
  });
});
