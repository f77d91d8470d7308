import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import pino, { type Logger } from 'pino';
import type { Engine } from '../engine/engine.js';
import type { Jobs } from '../engine/jobs.js';
import { FerryError } from '../util/errors.js';
import { bearerMatches } from './auth.js';
import type { AgentDeps } from './context.js';
import { errorResponse } from './http-error.js';
import { createMetrics } from './metrics.js';
import { jobRoutes } from './routes/jobs.js';
import { metaRoutes } from './routes/meta.js';
import { IMAGE_STREAM_PATH, migrationImageRoutes } from './routes/migrations-images.js';
import { operationRoutes } from './routes/operations.js';
import { storeRoutes } from './routes/snapshots.js';
import { migrationRoutes } from './routes/migrations.js';
import { INCREMENTAL_STREAM_PATH, replicaRoutes } from './routes/replicas.js';
import { hostRoutes } from './routes/host.js';
import { scheduleRoutes } from './routes/schedules.js';
import type { Schedules } from '../scenarios/schedules.js';
import type { IncomingMigrations } from '../migrate/incoming.js';
import { hostname } from 'node:os';
import type { Peer } from './peers.js';
import { dashboardRoutes, isDashboardAsset } from './routes/dashboard.js';
import { migrationPreflightRoutes } from './routes/migration-preflight.js';
import { peerRoutes } from './routes/peers.js';
import type { IncomingReplicas } from '../migrate/replicas.js';

export interface AgentAppOptions {
  engine: Engine;
  jobs: Jobs;
  /** When set, every request needs `Authorization: Bearer <token>`. */
  token?: string;
  /** Largest request body in bytes (default 64 KiB: the bodies are small JSON objects). */
  bodyLimit?: number;
  log?: Logger;
  version?: string;
  criuVersion?: () => Promise<string | null>;
  migrations?: IncomingMigrations;
  /** This agent's name in the dashboard's hosts view (default: the host name). */
  name?: string;
  /** The other agents it knows (FERRY_PEERS): the dashboard's hosts view, the migration's destinations. */
  peers?: readonly Peer[];
  /** Where the dashboard's built files are (default: dist/dashboard-ui of this checkout). */
  dashboardDir?: string;
  replicas?: IncomingReplicas;
  schedules?: Schedules;
}

export const DEFAULT_BODY_LIMIT = 64 * 1024;

/**
 * The agent's HTTP application (hono), without a socket: `app.request()` drives it in tests,
 * server.ts serves it. Every answer is JSON (but /metrics and the event stream); every error is
 * `{ error: { code, message, hint? } }` with the code's status, never a stack.
 */
export function createAgentApp(o: AgentAppOptions): { app: Hono; dispose(): void } {
  const log = o.log ?? pino({ level: 'silent' });
  const metrics = createMetrics(o.jobs);
  const d: AgentDeps = { engine: o.engine, jobs: o.jobs, log, metrics: metrics.registry, version: o.version ?? '0.0.0', criuVersion: o.criuVersion ?? (() => Promise.resolve(null)), migrations: o.migrations, replicas: o.replicas, schedules: o.schedules };
  const unlog = o.jobs.observe((job, e) => {
    if (e.type === 'phase') log.debug({ job: job.id, phase: e.phase, state: e.state, ms: e.ms }, 'job phase');
    else if (e.type === 'progress') log.debug({ job: job.id, queuePosition: e.queuePosition, queueLength: e.queueLength }, 'job queue place');
    else if (e.type === 'transfer') log.debug({ job: job.id, bytes: e.bytes, totalBytes: e.totalBytes }, 'job transfer');
    else log.info({ job: job.id, kind: job.kind, state: e.state, ...(job.error ? { error: job.error } : {}) }, 'job state');
  });

  const app = new Hono();
  app.use(async (c, next) => {
    const t0 = performance.now();
    await next();
    log.info({ method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round(performance.now() - t0) }, 'request');
  });
  // A literal '..' segment is resolved away by URL parsing before routing; the raw request line
  // (node's, when served on a socket) still shows it: refuse it as the bad id it was meant to be.
  app.use(async (c, next) => {
    const raw = (c.env as { incoming?: { url?: unknown } } | undefined)?.incoming?.url;
    if (typeof raw === 'string' && /(^|\/)(\.|%2e){2}(\/|\?|$)/i.test(raw.split('?')[0] ?? '')) {
      return errorResponse(c, new FerryError('ERR_USAGE', 'a path segment is \'..\': ids never contain it', { hint: 'see GET /v1/openapi.json' }));
    }
    await next();
  });
  const token = o.token;
  if (token !== undefined) {
    app.use(async (c, next) => {
      // The dashboard's page and script are public (routes/dashboard.ts); its data is not.
      if (isDashboardAsset(c.req.method, c.req.path)) return next();
      if (!bearerMatches(c.req.header('authorization'), token)) {
        c.header('WWW-Authenticate', 'Bearer');
        return errorResponse(c, new FerryError('ERR_UNAUTHORIZED', 'missing or wrong bearer token', { hint: 'send Authorization: Bearer <the token in the agent\'s --token-file>' }));
      }
      await next();
    });
  }
  const limit = o.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const limited = bodyLimit({
    maxSize: limit,
    onError: (c) => errorResponse(c, new FerryError('ERR_BODY_TOO_LARGE', `the body is larger than ${limit} bytes`, { hint: 'request bodies are small JSON objects' })),
  });
  // Migration images stream through (bounded by the wire format's own limits); every other body is small JSON.
  app.use((c, next) => (c.req.method === 'PUT' && (IMAGE_STREAM_PATH.test(c.req.path) || INCREMENTAL_STREAM_PATH.test(c.req.path)) ? next() : limited(c, next)));
  app.route('/', dashboardRoutes(o.dashboardDir));
  app.route('/', metaRoutes(d));
  app.route('/', peerRoutes(d, { self: o.name ?? hostname(), peers: o.peers ?? [], token: o.token }));
  app.route('/', operationRoutes(d));
  app.route('/', jobRoutes(d));
  app.route('/', storeRoutes(d));
  // (before migrationRoutes: its POST /v1/migrations/:id would take 'preflight' for an id)
  app.route('/', migrationPreflightRoutes(d));
  app.route('/', migrationRoutes(d));
  app.route('/', migrationImageRoutes(d));
  app.route('/', replicaRoutes(d));
  app.route('/', hostRoutes(d));
  app.route('/', scheduleRoutes(d));
  app.notFound((c) => errorResponse(c, new FerryError('ERR_NO_ROUTE', `no route ${c.req.method} ${c.req.path.slice(0, 200)}`, { hint: 'see GET /v1/openapi.json' })));
  app.onError((err, c) => {
    // A path hono cannot decode, or hono's own 4xx: the request's fault, with a stable code.
    if (err instanceof URIError || (err instanceof HTTPException && err.status < 500)) {
      return errorResponse(c, new FerryError('ERR_USAGE', `malformed request: ${err.message.slice(0, 200)}`, { hint: 'see GET /v1/openapi.json' }));
    }
    if (!(err instanceof FerryError)) log.error({ err: { message: err.message, name: err.name } }, 'internal error');
    return errorResponse(c, err);
  });
  return { app, dispose() { unlog(); metrics.dispose(); } };
}
