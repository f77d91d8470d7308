import { Hono } from 'hono';
import type { AgentDeps } from '../context.js';
import { openApiDocument } from '../openapi.js';

/** Health, metrics and the OpenAPI document. */
export function metaRoutes(d: AgentDeps): Hono {
  const app = new Hono();
  app.get('/v1/health', async (c) => c.json({ ok: true, version: d.version, criu: { version: await d.criuVersion().catch(() => null) }, store: d.engine.store.root }));
  app.get('/metrics', async (c) => c.body(await d.metrics.metrics(), 200, { 'content-type': d.metrics.contentType }));
  const doc = openApiDocument(d.version);
  app.get('/v1/openapi.json', (c) => c.json(doc));
  return app;
}
