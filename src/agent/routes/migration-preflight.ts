import { Hono } from 'hono';
import { migrationDryRun } from '../../migrate/dry-run.js';
import { MigrateBody } from '../../migrate/protocol.js';
import type { AgentDeps } from '../context.js';
import { jsonBody } from '../body.js';

/** What the dry run takes: a migration's target, destination and the options its preflight depends on. */
export const MigrationPreflightBody = MigrateBody.pick({ target: true, to: true, strategy: true, tcpEstablished: true, tier: true });

/**
 * `POST /v1/migrations/preflight`: the preflight of a migration from this host, alone (the
 * dashboard shows its verdict before anything is frozen). Answers 200 with the verdict
 * (migrate/dry-run.ts), or the refusal as an error: the destination's (ERR_MIGRATE_REFUSED, its
 * reason and hint), an unreachable destination's, or the target's. Registered before the
 * destination's `POST /v1/migrations/:id`, which would take 'preflight' for an id.
 */
export function migrationPreflightRoutes(d: AgentDeps): Hono {
  const app = new Hono();
  app.post('/v1/migrations/preflight', async (c) => {
    const body = await jsonBody(c, MigrationPreflightBody);
    const r = await migrationDryRun(d.engine, {
      target: body.target, to: { url: body.to.url, ...(body.to.token !== undefined ? { token: body.to.token } : {}) },
      ...(body.strategy !== undefined ? { strategy: body.strategy } : {}),
      ...(body.tcpEstablished !== undefined ? { tcpEstablished: body.tcpEstablished } : {}),
      ...(body.tier !== undefined ? { tier: body.tier } : {}),
    }, c.req.raw.signal);
    d.log.info({ migration: r.migration, target: r.target.label, to: r.destination.url, ms: r.ms }, 'migration preflight (dry run) passed');
    return c.json(r);
  });
  return app;
}
