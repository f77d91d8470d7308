import { Hono } from 'hono';
import { Gauge, type Registry } from 'prom-client';
import { z } from 'zod';
import { failover } from '../../scenarios/failover.js';
import { jobRunner } from '../../scenarios/job-runner.js';
import { forgetReplica, listReplicas, ReplicaRecordSchema, writeReplica } from '../../scenarios/replicas.js';
import { SCHEDULE_ID, type Schedules } from '../../scenarios/schedules.js';
import { FerryError } from '../../util/errors.js';
import { jsonBody } from '../body.js';
import type { AgentDeps } from '../context.js';
import { SnapshotId } from '../schemas.js';

const Url = z.string().max(2048).regex(/^https?:\/\/[^\s/]+(\/.*)?$/, 'an http(s) URL of a ferry agent');
const Target = z.string().regex(/^([A-Za-z0-9][A-Za-z0-9._-]{0,63}|container:[A-Za-z0-9][A-Za-z0-9_.-]{0,127})$/, 'a workload name or container:ID');

/** POST /v1/schedules: `ferry schedule`'s flags. */
export const ScheduleBody = z.strictObject({
  target: Target,
  everyMs: z.number().int().min(1).max(7 * 24 * 3600_000),
  keep: z.number().int().min(1).max(10_000).optional(),
  tier: z.enum(['memory', 'disk']).optional(),
  replicateTo: z.strictObject({ url: Url, token: z.string().min(1).max(4096).optional(), name: z.string().max(64).optional() }).optional(),
});

/** POST /v1/failover: `ferry failover`'s. */
export const FailoverBody = z.strictObject({
  name: Target,
  from: z.strictObject({ url: Url.optional(), host: z.string().max(255).optional() }).optional(),
});

/**
 * Periodic snapshots, their replicas and failover (src/scenarios/schedules.ts, failover.ts):
 *
 *   POST   /v1/schedules            a schedule (its first snapshot taken before the answer)
 *   GET    /v1/schedules            every schedule with its counts, last snapshot, ages and lag
 *   DELETE /v1/schedules/:id        stops it (snapshots and replicas stay)
 *   POST   /v1/replicas             a source confirms a replica it sent here (the standby's record)
 *   GET    /v1/replicas             the replicas this host holds, newest first
 *   DELETE /v1/replicas/:snapshot   a source's retention: the replica's snapshot and record go
 *   POST   /v1/failover             restores the newest complete replica of a workload here
 *
 * /metrics gets each schedule's interval, the age of its last snapshot and its replication lag.
 */
export function scheduleRoutes(d: AgentDeps): Hono {
  const app = new Hono();
  const schedules = (): Schedules => {
    if (!d.schedules) throw new FerryError('ERR_USAGE', 'this agent runs no schedules', { hint: 'schedules run in `ferry agent`' });
    return d.schedules;
  };
  registerMetrics(d.metrics, () => d.schedules?.list() ?? []);
  app.post('/v1/schedules', async (c) => {
    const b = await jsonBody(c, ScheduleBody);
    const view = await schedules().add({
      target: b.target, everyMs: b.everyMs, ...(b.keep !== undefined ? { keep: b.keep } : {}), ...(b.tier !== undefined ? { tier: b.tier } : {}),
      ...(b.replicateTo ? { replicateTo: b.replicateTo } : {}),
    });
    d.log.info({ schedule: view.id, target: view.target, everyMs: view.everyMs, replicateTo: view.replicateTo?.url }, 'schedule added');
    return c.json({ schedule: view }, 201);
  });
  app.get('/v1/schedules', (c) => c.json({ schedules: d.schedules?.list() ?? [] }));
  app.delete('/v1/schedules/:id', async (c) => {
    const id = c.req.param('id');
    if (!SCHEDULE_ID.test(id)) throw new FerryError('ERR_USAGE', `invalid schedule id '${id.slice(0, 80)}'`, { hint: 'schedule ids look like s-0123456789ab' });
    const view = await schedules().remove(id);
    d.log.info({ schedule: id }, 'schedule removed');
    return c.json({ schedule: view });
  });

  app.post('/v1/replicas', async (c) => {
    const r = await jsonBody(c, ReplicaRecordSchema);
    // Complete only when its images are sealed here (a missing or damaged snapshot is refused).
    await d.engine.inspect(r.snapshot);
    const rec = { ...r, receivedAt: new Date().toISOString() };
    await writeReplica(d.engine.store.root, rec);
    d.log.info({ replica: r.snapshot, workload: r.workload, from: r.from.url ?? r.from.host }, 'replica recorded');
    return c.json({ replica: rec }, 201);
  });
  app.get('/v1/replicas', async (c) => c.json({ replicas: await listReplicas(d.engine.store.root) }));
  app.delete('/v1/replicas/:snapshot', async (c) => {
    const id = c.req.param('snapshot');
    if (!SnapshotId.safeParse(id).success) throw new FerryError('ERR_USAGE', `invalid snapshot id '${id.slice(0, 80)}'`);
    const rec = (await listReplicas(d.engine.store.root)).find((r) => r.snapshot === id);
    if (!rec) throw new FerryError('ERR_NO_REPLICA', `no replica '${id}' here`, { hint: 'GET /v1/replicas lists them' });
    const [out] = await d.engine.remove([id]);
    if (out && !out.ok && !(out.error instanceof FerryError && out.error.code === 'ERR_NO_SNAPSHOT')) throw out.error;
    await forgetReplica(d.engine.store.root, id);
    return c.json({ removed: id });
  });

  app.post('/v1/failover', async (c) => {
    const b = await jsonBody(c, FailoverBody);
    const from = b.from ? { ...(b.from.url !== undefined ? { url: b.from.url } : {}), ...(b.from.host !== undefined ? { host: b.from.host } : {}) } : undefined;
    const r = await failover(d.engine, jobRunner(d.jobs), { name: b.name, ...(from ? { from } : {}) });
    d.log.info({ workload: r.workload, replica: r.replica, pid: r.pid, replicaAgeMs: r.replicaAgeMs }, 'failover done');
    return c.json(r);
  });
  return app;
}

function registerMetrics(registry: Registry, list: () => ReturnType<Schedules['list']>): void {
  const labelNames = ['schedule', 'target'];
  const each = (g: Gauge, value: (s: ReturnType<Schedules['list']>[number]) => number | null) => {
    g.reset();
    for (const s of list()) {
      const v = value(s);
      if (v !== null) g.set({ schedule: s.id, target: s.target }, v);
    }
  };
  new Gauge({ name: 'ferry_schedule_interval_seconds', help: 'Each schedule\'s interval between snapshots', labelNames, registers: [registry], collect() { each(this, (s) => s.everyMs / 1000); } });
  new Gauge({ name: 'ferry_schedule_last_snapshot_age_seconds', help: 'Seconds since each schedule\'s newest snapshot was taken', labelNames, registers: [registry], collect() { each(this, (s) => s.lastSnapshotAgeSeconds); } });
  new Gauge({ name: 'ferry_schedule_replication_lag_seconds', help: 'Seconds since the newest snapshot replicated to the standby was taken (what a failover would lose now)', labelNames, registers: [registry], collect() { each(this, (s) => s.replicationLagSeconds); } });
  new Gauge({ name: 'ferry_schedule_failures', help: 'Snapshots of each schedule that failed', labelNames, registers: [registry], collect() { each(this, (s) => s.failures); } });
  new Gauge({ name: 'ferry_schedule_replication_failures', help: 'Replications of each schedule that failed', labelNames, registers: [registry], collect() { each(this, (s) => s.replicationFailures); } });
}
