import { Hono, type Context } from 'hono';
import { HAVE_CONTENT_TYPE } from '../../migrate/pages-have.js';
import type { IncomingReplicas } from '../../migrate/replicas.js';
import { MIGRATION_ID_RE, WIRE_CONTENT_TYPE } from '../../migrate/wire.js';
import { FerryError } from '../../util/errors.js';
import type { AgentDeps } from '../context.js';
import { SnapshotId } from '../schemas.js';

/**
 * Incremental transfers (migrate/replicas.ts), the destination's side:
 *
 *   GET    /v1/incremental/replicas/:key         the replica kept for a workload: { replica: {…} | null }
 *   DELETE /v1/incremental/replicas/:key         removes it
 *   PUT    /v1/incremental/replicas/:key/images  a new replica (wire stream; ?parent=SNAP: a child of the current one)
 *   GET    /v1/incremental/pages/:snapshot       what a snapshot holds, to build on (pages-have.ts, binary)
 *   PUT    /v1/migrations/:id/rounds             a pre-copy round of an incremental migration (?parent=SNAP)
 *   PUT    /v1/migrations/:id/delta              its final images, a child of its last round (?parent=SNAP)
 *
 * (Apart from the scheduled replicas of `/v1/replicas`, records of flat snapshots a standby keeps for
 * failover: these are the incremental ones `ferry replicate` keeps, one per workload key.)
 *
 * The streams are wire.ts's image streams (their header's migration id: the migration's, or for
 * a replica a transfer id of the same form, ?transfer=); they bypass the JSON body limit (app.ts).
 */
export const INCREMENTAL_STREAM_PATH = /^\/v1\/(incremental\/replicas\/[^/]+\/images|migrations\/[^/]+\/(rounds|delta))$/;

function snapshotParam(v: string | undefined, what: string): string | undefined {
  if (v === undefined) return undefined;
  if (!SnapshotId.safeParse(v).success) throw new FerryError('ERR_USAGE', `invalid ${what} '${v.slice(0, 80)}'`, { hint: 'snapshot ids are lower-case letters, digits, dot, dash and underscore' });
  return v;
}

function migrationParam(v: string | undefined, what: string): string {
  if (v === undefined || !MIGRATION_ID_RE.test(v)) throw new FerryError('ERR_USAGE', `invalid ${what} '${(v ?? '').slice(0, 80)}'`, { hint: 'ids look like m-0123456789abcdef' });
  return v;
}

/** The request's body as an image stream, and a signal that fires when its sender goes away. */
function imageStream(c: Context, what: string): { stream: AsyncIterable<Uint8Array>; signal: AbortSignal; done(): void } {
  const type = c.req.header('content-type') ?? '';
  if (type.split(';')[0]?.trim().toLowerCase() !== WIRE_CONTENT_TYPE) {
    throw new FerryError('ERR_USAGE', `the body must be ${WIRE_CONTENT_TYPE}, not '${type.slice(0, 80)}'`, { hint: 'send an image stream (src/migrate/wire.ts) with that Content-Type' });
  }
  const body = c.req.raw.body;
  if (!body) throw new FerryError('ERR_TRANSFER_TRUNCATED', 'the request has no body', { hint: 'send the image stream as the body' });
  const stop = new AbortController();
  const onGone = () => stop.abort(new FerryError('ERR_TRANSFER_TRUNCATED', `the sender of ${what} closed its connection before the end`, { hint: 'nothing was kept; send again' }));
  c.req.raw.signal.addEventListener('abort', onGone, { once: true });
  // preventCancel: a refusal's answer goes out before the rest of the body is drained.
  return { stream: body.values({ preventCancel: true }), signal: stop.signal, done: () => c.req.raw.signal.removeEventListener('abort', onGone) };
}

export function replicaRoutes(d: AgentDeps): Hono {
  const app = new Hono();
  const replicas = (): IncomingReplicas => {
    if (!d.replicas) throw new FerryError('ERR_MIGRATE_REFUSED', 'this agent does not take replicas or incremental migrations');
    return d.replicas;
  };
  app.get('/v1/incremental/replicas/:key', async (c) => c.json({ replica: await replicas().get(c.req.param('key')) ?? null }));
  app.delete('/v1/incremental/replicas/:key', async (c) => c.json({ removed: await replicas().remove(c.req.param('key')) ?? null }));
  app.get('/v1/incremental/pages/:snapshot', async (c) => {
    const id = snapshotParam(c.req.param('snapshot'), 'snapshot id')!;
    const body = await replicas().have(id);
    return c.body(new Uint8Array(body), 200, { 'content-type': HAVE_CONTENT_TYPE });
  });
  app.put('/v1/incremental/replicas/:key/images', async (c) => {
    const key = c.req.param('key');
    const transfer = migrationParam(c.req.query('transfer'), 'transfer id');
    const parent = snapshotParam(c.req.query('parent'), 'parent snapshot');
    const tier = c.req.query('tier') ?? 'disk';
    if (tier !== 'disk' && tier !== 'memory') throw new FerryError('ERR_USAGE', `invalid tier '${tier.slice(0, 40)}'`, { hint: 'tier is memory or disk' });
    const s = imageStream(c, `replica ${key}`);
    try {
      const r = await replicas().receiveReplica(key, s.stream, { transfer, parent, tier, signal: s.signal });
      d.log.info({ replica: key, snapshot: r.snapshot, parent, bytes: r.bytes, ms: r.ms }, 'replica received');
      return c.json(r, 201);
    } finally { s.done(); }
  });
  app.put('/v1/migrations/:id/rounds', async (c) => {
    const id = migrationParam(c.req.param('id'), 'migration id');
    const parent = snapshotParam(c.req.query('parent'), 'parent snapshot');
    const replicaKey = c.req.query('replica');
    const s = imageStream(c, `migration ${id}'s round`);
    try {
      const r = await replicas().receiveRound(id, s.stream, { transfer: id, parent, replicaKey, signal: s.signal });
      d.log.info({ migration: id, round: r.round, snapshot: r.snapshot, parent, bytes: r.bytes, ms: r.ms }, 'pre-copy round received');
      return c.json(r, 201);
    } finally { s.done(); }
  });
  app.put('/v1/migrations/:id/delta', async (c) => {
    const id = migrationParam(c.req.param('id'), 'migration id');
    const parent = snapshotParam(c.req.query('parent'), 'parent snapshot');
    const s = imageStream(c, `migration ${id}'s images`);
    try {
      const r = await replicas().receiveFinal(id, s.stream, { transfer: id, parent, signal: s.signal });
      d.log.info({ migration: id, snapshot: r.snapshot, parent, bytes: r.bytes, ms: r.ms }, 'migration images received (incremental)');
      return c.json(r, 201);
    } finally { s.done(); }
  });
  return app;
}
