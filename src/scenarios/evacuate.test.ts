import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { RestoreRequest, RestoreResult } from '../engine/engine.js';
import { Jobs } from '../engine/jobs.js';
import { recordWorkload } from '../targets/workload-record.js';
import { FakeEngine } from '../testing/fake-engine.js';
import { isFerryError } from '../util/errors.js';
import { evacuate, restoreEvacuation } from './evacuate.js';
import { EvacuationManifestSchema, evacuationsDir, newEvacuationId, newestEvacuation } from './evacuation-manifest.js';
import { jobRunner } from './job-runner.js';

const dirs: string[] = [];
after(async () => { for (const d of dirs) await rm(d, { recursive: true, force: true }); });

/** A restore that "brings back" a workload as this test's own (live) process, as a real one re-records it. */
class RestoringEngine extends FakeEngine {
  override async restore(req: RestoreRequest): Promise<RestoreResult> {
    const r = await super.restore(req);
    const name = this.snapshots.get(req.snapshot)?.manifest.target.workload;
    if (name === 'dies') return { ...r, pid: 2 ** 22 - 1 };
    if (name !== undefined) await recordWorkload(this.store.workloadsDir, { name, pid: process.pid, command: ['x'], stdout: '/dev/null', stderr: '/dev/null', startedAt: new Date().toISOString() });
    return { ...r, pid: process.pid, name };
  }
}

async function setup(names: string[]) {
  const root = await mkdtemp(join(tmpdir(), 'ferry-evac-unit-'));
  dirs.push(root);
  const engine = new RestoringEngine(root);
  // "Running" workloads: records of this test's own process (pid and start time match).
  for (const name of names) await recordWorkload(engine.store.workloadsDir, { name, pid: process.pid, command: ['x'], stdout: '/dev/null', stderr: '/dev/null', startedAt: new Date().toISOString() });
  // One that ended: not evacuated.
  await recordWorkload(engine.store.workloadsDir, { name: 'gone', pid: 2 ** 22 - 1, command: ['x'], stdout: '/dev/null', stderr: '/dev/null', startedAt: new Date().toISOString() });
  const jobs = new Jobs({ engine });
  return { root, engine, jobs, run: jobRunner(jobs) };
}

describe('host evacuation (no root: a fake engine, the real jobs registry)', () => {
  it('to disk: each running workload a checkpoint (disk, not leave-running); a failure is reported, the others go on; the manifest says all', async () => {
    const { root, engine, jobs, run } = await setup(['a', 'fail', 'b']);
    const r = await evacuate(engine, run, { to: 'disk' });
    assert.equal(r.ok, false);
    assert.deepEqual(r.workloads.map((w) => [w.target, w.ok]), [['a', true], ['b', true], ['fail', false]]);
    assert.equal(r.workloads[2]!.error?.code, 'ERR_NO_WORKLOAD');
    assert.match(r.workloads[2]!.where, /running here/);
    assert.deepEqual([r.evacuated, r.failed], [2, 1]);
    for (const c of engine.checkpoints) assert.deepEqual([c.tier, c.leaveRunning], ['disk', false]);
    const m = EvacuationManifestSchema.parse(JSON.parse(await readFile(join(evacuationsDir(root), `${r.evacuation!}.json`), 'utf8')));
    assert.equal(m.state, 'complete');
    assert.deepEqual(m.workloads.map((w) => [w.target, w.state]), [['a', 'evacuated'], ['b', 'evacuated'], ['fail', 'failed']]);
    assert.equal((await newestEvacuation(root)).id, r.evacuation);
    await jobs.close();
  });

  it('restore: every evacuated workload restored and found alive; the failed one listed, not restored; a second restore does nothing twice', async () => {
    const { root, engine, jobs, run } = await setup(['a', 'fail', 'b']);
    const ev = await evacuate(engine, run, { to: 'disk' });
    const r = await restoreEvacuation(engine, run);
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.equal(r.evacuation, ev.evacuation);
    assert.deepEqual(r.workloads.map((w) => [w.target, w.ok, w.verified, w.pid]), [['a', true, true, process.pid], ['b', true, true, process.pid]]);
    assert.deepEqual(r.notEvacuated.map((n) => n.target), ['fail']);
    const again = await restoreEvacuation(engine, run);
    assert.deepEqual(again.workloads.map((w) => w.already), [true, true]);
    const m = await newestEvacuation(root);
    assert.ok(m.workloads.filter((w) => w.state === 'evacuated').every((w) => w.restored?.ok === true));
    await jobs.close();
  });

  it('restore: a workload that is not alive after its restore is reported failed (ERR_TARGET_DIED), the others restored', async () => {
    const { engine, jobs, run } = await setup(['a', 'dies']);
    await evacuate(engine, run, { to: 'disk' });
    const r = await restoreEvacuation(engine, run);
    assert.equal(r.ok, false);
    assert.deepEqual(r.workloads.map((w) => [w.target, w.ok, w.error?.code]), [['a', true, undefined], ['dies', false, 'ERR_TARGET_DIED']]);
    await jobs.close();
  });

  it('no manifest, and a damaged one, are clear errors', async () => {
    const { root, engine, jobs, run } = await setup([]);
    await assert.rejects(restoreEvacuation(engine, run), (e) => isFerryError(e, 'ERR_NO_EVACUATION'));
    const empty = await evacuate(engine, run, { to: 'disk' });
    assert.deepEqual([empty.ok, empty.workloads], [true, []]);
    await writeFile(join(evacuationsDir(root), `${newEvacuationId(new Date(Date.now() + 60_000))}.json`), '{"format":1}');
    await assert.rejects(restoreEvacuation(engine, run), (e) => isFerryError(e, 'ERR_STORE_CORRUPT') && /is not valid/.test(e.message));
    await jobs.close();
  });
});
