import { Hono } from 'hono';
import { z } from 'zod';
import { evacuate, restoreEvacuation } from '../../scenarios/evacuate.js';
import { HOST_OPERATION_ID, HostOperations } from '../../scenarios/host-operations.js';
import { jobRunner } from '../../scenarios/job-runner.js';
import { STRATEGY_NAMES } from '../../migrate/protocol.js';
import { FerryError } from '../../util/errors.js';
import { jsonBody } from '../body.js';
import type { AgentDeps } from '../context.js';

const Url = z.string().max(2048).regex(/^https?:\/\/[^\s/]+(\/.*)?$/, 'an http(s) URL of a ferry agent');

/** POST /v1/host/evacuate: `ferry host evacuate`'s flags. Exactly one of `toDisk` and `to`. */
export const EvacuateBody = z.strictObject({
  toDisk: z.boolean().optional(),
  to: z.strictObject({ url: Url, token: z.string().min(1).max(4096).optional(), name: z.string().max(64).optional() }).optional(),
  tier: z.enum(['memory', 'disk']).optional(),
  strategy: z.enum(STRATEGY_NAMES).optional(),
  tcpEstablished: z.boolean().optional(),
}).refine((b) => (b.toDisk === true) !== (b.to !== undefined), 'give exactly one of toDisk: true and to: { url }');

/**
 * The host's scenario routes (src/scenarios/evacuate.ts), each a background operation whose
 * view is polled:
 *
 *   POST /v1/host/evacuate          every ferry workload and container: to disk, or migrated to `to`
 *   POST /v1/host/restore           the newest evacuation manifest's workloads, restored and verified
 *   GET  /v1/host/operations/:id    { operation: { id, kind, state, result?, error? } }
 */
export function hostRoutes(d: AgentDeps, ops = new HostOperations()): Hono {
  const app = new Hono();
  const run = jobRunner(d.jobs);
  app.post('/v1/host/evacuate', async (c) => {
    const body = await jsonBody(c, EvacuateBody);
    const to = body.to ? { url: body.to.url, ...(body.to.token !== undefined ? { token: body.to.token } : {}), ...(body.to.name !== undefined ? { name: body.to.name } : {}) } : 'disk' as const;
    const op = ops.start('evacuate', async () => ({ ...await evacuate(d.engine, run, {
      to, ...(body.tier !== undefined ? { tier: body.tier } : {}), ...(body.strategy !== undefined ? { strategy: body.strategy } : {}), ...(body.tcpEstablished ? { tcpEstablished: true } : {}),
    }) }));
    d.log.info({ operation: op.id, to: to === 'disk' ? 'disk' : to.url }, 'host evacuation started');
    return c.json({ operation: op }, 202);
  });
  app.post('/v1/host/restore', (c) => {
    const op = ops.start('restore', async () => ({ ...await restoreEvacuation(d.engine, run) }));
    d.log.info({ operation: op.id }, 'host restore started');
    return c.json({ operation: op }, 202);
  });
  app.get('/v1/host/operations/:id', (c) => {
    const id = c.req.param('id');
    if (!HOST_OPERATION_ID.test(id)) throw new FerryError('ERR_USAGE', `invalid host operation id '${id.slice(0, 80)}'`, { hint: 'ids look like h-0123456789abcdef' });
    return c.json({ operation: ops.get(id) });
  });
  return app;
}
