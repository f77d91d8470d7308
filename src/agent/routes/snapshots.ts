import { Hono } from 'hono';
import { inspectReport } from '../../engine/inspect-report.js';
import { storeListing, workloadListing } from '../../engine/listing.js';
import { withSnapshotLock } from '../../store/locks.js';
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
  // `ferry snapshots inspect ID [--show-env] --json`: the manifest and the decoded images.
  app.get('/v1/snapshots/:id/inspect', async (c) => {
    const id = snapshotId(c.req.param('id'));
    const env = c.req.query('env') ?? 'names';
    if (env !== 'names' && env !== 'full') throw new FerryError('ERR_USAGE', `env must be 'names' or 'full', not '${env.slice(0, 40)}'`, { hint: 'GET /v1/snapshots/ID/inspect?env=full shows the environment\'s values' });
    return c.json(await inspectReport(await d.engine.inspect(id), env === 'full'));
  });
  app.delete('/v1/snapshots/:id', async (c) => {
    const id = snapshotId(c.req.param('id'));
    // As `ferry snapshots rm`: under the snapshot's lock (a checkpoint may be rebasing it).
    const [outcome] = await withSnapshotLock(d.engine.store.root, id, `a change of snapshot ${id}`, () => d.engine.remove([id]));
    if (!outcome) throw new FerryError('ERR_INTERNAL', `removing ${id} gave no outcome`);
    if (!outcome.ok) throw outcome.error instanceof Error ? outcome.error : new FerryError('ERR_INTERNAL', String(outcome.error));
    d.log.info({ snapshot: id }, 'snapshot removed');
    return c.json({ removed: id, result: outcome.result });
  });
  app.get('/v1/store', async (c) => c.json(await storeListing(d.engine.store)));
  // As `ferry ps`: a workload that ended gives up its service address when it is looked at.
  app.get('/v1/workloads', async (c) => c.json(await workloadListing(d.engine.store, (r, err) => {
    d.log.warn({ workload: r.name, address: r.address?.address, err: err instanceof Error ? err.message : String(err) }, 'could not remove the service address of a workload that ended');
  })));
  return app;
}
