import { Hono } from 'hono';
import type { AgentDeps } from '../context.js';
import { jsonBody } from '../body.js';
import { CheckpointBody, checkpointRequest, RestoreBody, restoreRequest } from '../schemas.js';

/** POST /v1/checkpoints and POST /v1/restores: each submits a job and answers 202 at once. */
export function operationRoutes(d: AgentDeps): Hono {
  const app = new Hono();
  app.post('/v1/checkpoints', async (c) => {
    const body = await jsonBody(c, CheckpointBody);
    const job = d.jobs.submit('checkpoint', checkpointRequest(body), priorityOf(body));
    d.log.info({ job: job.id, kind: job.kind }, 'job submitted');
    return c.json({ job }, 202);
  });
  app.post('/v1/restores', async (c) => {
    const body = await jsonBody(c, RestoreBody);
    const job = d.jobs.submit('restore', restoreRequest(body), priorityOf(body));
    d.log.info({ job: job.id, kind: job.kind }, 'job submitted');
    return c.json({ job }, 202);
  });
  return app;
}

const priorityOf = (b: { priority?: number | undefined }) => (b.priority !== undefined ? { priority: b.priority } : {});
