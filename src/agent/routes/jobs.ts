import { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import { FINAL_STATES, type JobEvent } from '../../engine/jobs.js';
import { FerryError } from '../../util/errors.js';
import type { AgentDeps } from '../context.js';
import { JobId } from '../schemas.js';

function jobId(id: string): string {
  if (!JobId.safeParse(id).success) throw new FerryError('ERR_USAGE', `invalid job id '${id.slice(0, 80)}'`, { hint: 'job ids look like j-0123456789abcdef' });
  return id;
}

const noJob = (id: string) => new FerryError('ERR_NO_JOB', `no job '${id}'`, { hint: 'list them with GET /v1/jobs' });

/** GET /v1/jobs, GET/DELETE /v1/jobs/:id and its server-sent events. */
export function jobRoutes(d: AgentDeps): Hono {
  const app = new Hono();
  app.get('/v1/jobs', (c) => c.json({ jobs: d.jobs.list() }));
  app.get('/v1/jobs/:id', (c) => {
    const id = jobId(c.req.param('id'));
    const job = d.jobs.get(id);
    if (!job) throw noJob(id);
    return c.json({ job });
  });
  app.delete('/v1/jobs/:id', (c) => {
    const id = jobId(c.req.param('id'));
    const cancelled = d.jobs.cancel(id);
    if (cancelled === undefined) throw noJob(id);
    d.log.info({ job: id, cancelled }, cancelled ? 'job cancel requested' : 'cancel of a finished job ignored');
    return c.json({ job: d.jobs.get(id), cancelled }, cancelled ? 202 : 200);
  });
  app.get('/v1/jobs/:id/events', (c) => {
    const id = jobId(c.req.param('id'));
    if (!d.jobs.get(id)) throw noJob(id);
    return streamSSE(c, async (stream) => {
      // Events arrive synchronously (the replay) and later; they are written in order from a queue.
      const queue: JobEvent[] = [];
      let wake: (() => void) | undefined;
      const unsubscribe = d.jobs.subscribe(id, (e) => {
        queue.push(e);
        wake?.();
      });
      stream.onAbort(() => {
        unsubscribe?.();
        wake?.();
      });
      try {
        for (let n = 0; !stream.aborted; n++) {
          const e = queue.shift();
          if (!e) {
            await new Promise<void>((r) => { wake = r; });
            wake = undefined;
            continue;
          }
          const { type, ...data } = e;
          await stream.writeSSE({ event: type, id: String(n), data: JSON.stringify(data) });
          if (e.type === 'state' && FINAL_STATES.includes(e.state)) break;
        }
      } finally {
        unsubscribe?.();
      }
    });
  });
  return app;
}
