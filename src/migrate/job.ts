import type { Engine } from '../engine/engine.js';
import type { MigrateBody } from './protocol.js';
import { migrate, type MigrateRequest } from './migrate.js';
import { reclaimAddress, releaseAddress } from './addresses.js';

/** A migration job on the source agent: the request as POST /v1/migrations takes it. */
export async function runMigration(engine: Engine, body: MigrateBody, interrupt: AbortSignal): Promise<Record<string, unknown>> {
  const { to, ...rest } = body;
  const defined = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)) as unknown as Omit<MigrateRequest, 'to'>;
  const r = await migrate(engine, {
    ...defined, interrupt, releaseAddress, reclaimAddress,
    to: { url: to.url, ...(to.token !== undefined ? { token: to.token } : {}), ...(to.name !== undefined ? { name: to.name } : {}) },
  });
  return { ...r };
}
