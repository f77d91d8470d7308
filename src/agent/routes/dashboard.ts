import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Hono } from 'hono';
import { PROJECT_ROOT } from '../../criu/binary.js';
import { FerryError } from '../../util/errors.js';

/** Where scripts/build-dashboard.mjs puts the page (index.html, app.js, app.css). */
export const DASHBOARD_DIR = join(PROJECT_ROOT, 'dist', 'dashboard-ui');

/** The dashboard's files: `/` is its page, `/dashboard/NAME` the rest (flat names, no '/'). */
const ASSET = /^\/dashboard\/([A-Za-z0-9-]+\.(?:js|css|svg))$/;
const TYPES: Record<string, string> = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8', svg: 'image/svg+xml' };

/**
 * Served without the token: the page and its script hold no data and no secret; everything they
 * show comes from the API, which needs the token (the page asks for it and keeps it in the tab's
 * sessionStorage). Only GET and HEAD of these exact paths.
 */
export function isDashboardAsset(method: string, path: string): boolean {
  return (method === 'GET' || method === 'HEAD') && (path === '/' || ASSET.test(path));
}

/**
 * The page's security headers. The page talks to its own agent only; vega (the charts) compiles
 * its expressions with `new Function`, hence 'unsafe-eval', and sets style attributes, hence
 * 'unsafe-inline' for styles. No referrer leaves the page; it may not be framed.
 */
const HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-cache',
};

/** `GET /` and `GET /dashboard/*`: the dashboard, read from `dir` at each request (a rebuild shows at once). */
export function dashboardRoutes(dir = DASHBOARD_DIR): Hono {
  const app = new Hono();
  const serve = async (name: string): Promise<Response> => {
    let body: Buffer;
    try {
      body = await readFile(join(dir, name));
    } catch (err) {
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
      throw new FerryError(missing ? 'ERR_DASHBOARD_MISSING' : 'ERR_INTERNAL', `the dashboard's ${name} ${missing ? `is not built (no ${join(dir, name)})` : `cannot be read: ${(err as Error).message}`}`, {
        hint: 'build it: node scripts/build-dashboard.mjs (make build and the setup do)',
      });
    }
    const ext = name.slice(name.lastIndexOf('.') + 1);
    return new Response(new Uint8Array(body), { status: 200, headers: { 'content-type': TYPES[ext] ?? 'application/octet-stream', ...HEADERS } });
  };
  app.get('/', () => serve('index.html'));
  app.get('/dashboard/:file', (c) => {
    const m = ASSET.exec(c.req.path);
    if (!m?.[1]) throw new FerryError('ERR_NO_ROUTE', `no dashboard file ${c.req.path.slice(0, 120)}`, { hint: 'the dashboard is at /' });
    return serve(m[1]);
  });
  return app;
}
