import { Hono } from 'hono';
import { receiveImages, type ReceiveImagesOptions } from '../../migrate/receive-images.js';
import { receiveStream } from '../../migrate/stream/receive.js';
import { STREAM_CONTENT_TYPE } from '../../migrate/stream/segments.js';
import { MIGRATION_ID_RE, WIRE_CONTENT_TYPE, type WireLimits } from '../../migrate/wire.js';
import { FerryError } from '../../util/errors.js';
import type { AgentDeps } from '../context.js';
import { SnapshotId } from '../schemas.js';

/** The one path whose body is a stream: exempt from the agent's JSON body limit (app.ts), bounded by the wire's own limits. */
export const IMAGE_STREAM_PATH = /^\/v1\/migrations\/[^/]+\/images$/;

export interface MigrationImageRouteOptions {
  /** No data from the sender for this long ends the transfer (receive-images.ts's default otherwise). */
  idleMs?: number;
  limits?: Partial<WireLimits>;
}

/**
 * `PUT /v1/migrations/:id/images?tier=disk|memory&snapshot=ID`: the body is an image stream
 * (wire.ts, Content-Type application/vnd.ferry.images), received into this agent's store as it
 * arrives (receive-images.ts). Answers 201 `{ snapshot, tier, bytes, wireBytes, files, ms }`, or
 * an error after which nothing of the transfer is in the store. One transfer per migration id at
 * a time. On an agent that takes migrations (d.migrations) the migration must be prepared, and
 * its preflight's tier and name win over the query; the outcome is reported to it.
 */
export function migrationImageRoutes(d: AgentDeps, o: MigrationImageRouteOptions = {}): Hono {
  const app = new Hono();
  const active = new Set<string>();
  app.put('/v1/migrations/:id/images', async (c) => {
    const id = c.req.param('id');
    if (!MIGRATION_ID_RE.test(id)) throw new FerryError('ERR_USAGE', `invalid migration id '${id.slice(0, 80)}'`, { hint: 'migration ids look like m-0123456789abcdef' });
    const type = c.req.header('content-type') ?? '';
    // A stream strategy's transfer (segments of files still being written) has its own receiver.
    const mediaType = type.split(';')[0]?.trim().toLowerCase();
    const streamed = mediaType === STREAM_CONTENT_TYPE;
    if (mediaType !== WIRE_CONTENT_TYPE && !streamed) {
      throw new FerryError('ERR_USAGE', `the body must be ${WIRE_CONTENT_TYPE} or ${STREAM_CONTENT_TYPE}, not '${type.slice(0, 80)}'`, { hint: 'send an image stream (src/migrate/wire.ts) with that Content-Type' });
    }
    const tierParam = c.req.query('tier') ?? 'disk';
    if (tierParam !== 'disk' && tierParam !== 'memory') throw new FerryError('ERR_USAGE', `invalid tier '${tierParam.slice(0, 40)}'`, { hint: 'tier is memory or disk' });
    const snapshot = c.req.query('snapshot');
    if (snapshot !== undefined && !SnapshotId.safeParse(snapshot).success) {
      throw new FerryError('ERR_USAGE', `invalid snapshot id '${snapshot.slice(0, 80)}'`, { hint: 'snapshot ids are lower-case letters, digits, dot, dash and underscore' });
    }
    const body = c.req.raw.body;
    if (!body) throw new FerryError('ERR_TRANSFER_TRUNCATED', 'the request has no body', { hint: 'send the image stream as the body' });
    if (active.has(id)) throw new FerryError('ERR_ALREADY_RUNNING', `images for migration ${id} are already being received`, { hint: 'wait for that transfer to end' });
    // An agent that takes migrations receives only for a prepared one, where its preflight said.
    const plan = d.migrations?.beginReceive(id);
    active.add(id);
    // A sender that goes away mid-stream is a truncation (the body usually says so first).
    const stop = new AbortController();
    const onGone = () => stop.abort(new FerryError('ERR_TRANSFER_TRUNCATED', `the sender of migration ${id}'s images closed its connection before the end`, { hint: 'nothing was kept; send again' }));
    c.req.raw.signal.addEventListener('abort', onGone, { once: true });
    try {
      const name = plan?.name ?? snapshot;
      const opts: ReceiveImagesOptions = {
        migrationId: id, tier: plan?.tier ?? tierParam, signal: stop.signal,
        ...(name !== undefined ? { name } : {}),
        ...(o.idleMs !== undefined ? { idleMs: o.idleMs } : {}),
        ...(o.limits ? { limits: o.limits } : {}),
      };
      // preventCancel: on a refusal the body is left to the server, which drains it after the
      // answer is out (cancelling would cut the socket before the sender reads why).
      const r = await (streamed ? receiveStream : receiveImages)(d.engine.store, body.values({ preventCancel: true }), opts);
      await d.migrations?.endReceive(id, { snapshot: r.snapshot });
      d.log.info({ migration: id, snapshot: r.snapshot, bytes: r.bytes, wireBytes: r.wireBytes, files: r.files, ms: r.ms }, 'migration images received');
      return c.json(r, 201);
    } catch (err) {
      d.log.warn({ migration: id, code: err instanceof FerryError ? err.code : 'ERR_INTERNAL', message: (err as Error).message }, 'migration images refused');
      if (plan) await d.migrations?.endReceive(id, { error: err }).catch((e: unknown) => { if (err instanceof FerryError) err.addCleanupError(e); });
      throw err;
    } finally {
      c.req.raw.signal.removeEventListener('abort', onGone);
      active.delete(id);
    }
  });
  return app;
}
