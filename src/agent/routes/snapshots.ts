import { Hono } from 'hono';
import { storeListing } from '../../engine/listing.js';
import { listWorkloadsReleasingEnded } from '../../targets/workload-address.js';
import { workloadStatus } from '../../targets/workload-status.js';
import { FerryError } from '../../util/errors.js';
import type { AgentDeps } from '../context.js';
import { SnapshotId } from '../schemas.js';

function snapshotId(id: string): string {
  if (!SnapshotId.safeParse(id).success) throw new FerryError('ERR_USAGE', `invalid snapshot id '${id.slice(0, 80)}'`, { hint: 'snapshot ids are lower-case letters, digits, dot, dash and underscore (list them with GET /v1/snapshots)' });
  return id;
}

/** The store: snapshots (list, inspect, remove) and the workloads `ferry run` started. */
export function storeRoutes(d: AgentDeps): Hono {
  const app = new Hono();
  app.get('/v1/snapshots', async (c) => c.json({ snapshots: (await d.engine.list()).map((s) => ({ ...s.manifest, dir: s.dir })) }));
  app.get('/v1/snapshots/:id', async (c) => {
    const s = await d.engine.inspect(snapshotId(c.req.param('id')));
    return c.json({ snapshot: { ...s.manifest, dir: s.dir } });
  });
  app.delete('/v1/snapshots/:id', async (c) => {
    const id = snapshotId(c.req.param('id'));
    const [outcome] = await d.engine.remove([id]);
    if (!outcome) throw new FerryError('ERR_INTERNAL', `removing ${id} gave no outcome`);
    if (!outcome.ok) throw outcome.error instanceof Error ? outcome.error : new FerryError('ERR_INTERNAL', String(outcome.error));
    d.log.info({ snapshot: id }, 'snapshot removed');
    return c.json({ removed: id, result: outcome.result });
  });
  app.get('/v1/store', async (c) => c.json(await storeListing(d.engine.store)));
  app.get('/v1/workloads', async (c) => {
    // As `ferry ps`: a workload that ended gives up its service address when it is looked at.
    const records = await listWorkloadsReleasingEnded(d.engine.store.workloadsDir, (r, err) => {
      d.log.warn({ workload: r.name, address: r.address?.address, err: err instanceof Error ? err.message : String(err) }, 'could not remove the service address of a workload that ended');
    });
    const snapshots = records.length ? (await d.engine.list()).map(({ manifest: m }) => ({ id: m.id, createdAt: m.createdAt, workload: m.target.workload })) : [];
    return c.json({ workloads: await Promise.all(records.map((r) => workloadStatus(r, snapshots))) });
  });
  return app;
}
