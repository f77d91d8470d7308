import { Hono } from 'hono';
import { FerryError } from '../../util/errors.js';
import { AbortBody, MigrateBody, MigrationId, PreflightBody, RestoreMigrationBody } from '../../migrate/protocol.js';
import type { AgentDeps } from '../context.js';
import { jsonBody } from '../body.js';

function migrationId(id: string): string {
  if (!MigrationId.safeParse(id).success) throw new FerryError('ERR_USAGE', `invalid migration id '${id.slice(0, 80)}'`, { hint: 'migration ids look like m-0123456789abcdef' });
  return id;
}



/**
 * A migration's routes: the job that runs one from this host, and the destination's side of the
 * protocol (migrate/protocol.ts) that another host's agent calls.
 */
export function migrationRoutes(d: AgentDeps): Hono {
  const app = new Hono();
  app.post('/v1/migrations', async (c) => {
    const body = await jsonBody(c, MigrateBody);
    const job = d.jobs.submit('migrate', { migrate: body });
    d.log.info({ job: job.id, kind: job.kind, to: body.to.url }, 'job submitted');
    return c.json({ job }, 202);
  });
  const incoming = () => {
    if (!d.migrations) throw new FerryError('ERR_MIGRATE_REFUSED', 'this agent does not take migrations');
    return d.migrations;
  };
  app.post('/v1/migrations/:id', async (c) => {
    const id = migrationId(c.req.param('id'));
    const answer = await incoming().preflight(id, await jsonBody(c, PreflightBody));
    d.log.info({ migration: id }, 'migration prepared');
    return c.json(answer, 201);
  });
  app.post('/v1/migrations/:id/restore', async (c) => {
    const id = migrationId(c.req.param('id'));
    const { snapshot } = await jsonBody(c, RestoreMigrationBody);
    const answer = await incoming().restore(id, snapshot);
    d.log.info({ migration: id, pid: answer.pid, ms: answer.ms }, 'migration restored and held');
    return c.json(answer);
  });
  app.post('/v1/migrations/:id/commit', async (c) => {
    const id = migrationId(c.req.param('id'));
    const answer = await incoming().commit(id);
    d.log.info({ migration: id, pid: answer.pid }, 'migration committed');
    return c.json(answer);
  });
  app.post('/v1/migrations/:id/abort', async (c) => {
    const id = migrationId(c.req.param('id'));
    const { reason } = await jsonBody(c, AbortBody);
    const view = await incoming().abort(id, reason);
    d.log.warn({ migration: id, reason }, 'migration aborted');
    return c.json({ migration: view });
  });
  app.get('/v1/migrations/:id', (c) => c.json({ migration: incoming().view(migrationId(c.req.param('id'))) }));
  return app;
}
