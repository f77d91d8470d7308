// The dashboard's agent side, in-process (fake engine, no root): the page is served without the
// token and the API still needs it; the hosts view's peers (one answering, one not); the dry-run
// preflight route is not mistaken for a migration id; FERRY_PEERS parsing.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LimitAdmission } from '../engine/admission.js';
import { Jobs } from '../engine/jobs.js';
import { FakeEngine } from '../testing/fake-engine.js';
import { createAgentApp } from './app.js';
import { formatPeers, parsePeers } from './peers.js';

const TOKEN = 'dashboard-test-token';

describe('dashboard routes on the agent', () => {
  let dir = '';
  let ui = '';
  let engine: FakeEngine;
  let jobs: Jobs;
  let agent: ReturnType<typeof createAgentApp>;
  let peer: Server;
  let peerUrl = '';
  let peerAuth: (string | undefined)[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-dash-'));
    ui = join(dir, 'ui');
    await mkdir(ui);
    await writeFile(join(ui, 'index.html'), '<!doctype html><title>ferry</title><script src="/dashboard/app.js"></script>');
    await writeFile(join(ui, 'app.js'), 'console.log(1)');
    // A peer agent that answers health (and records the token it was sent).
    peer = createServer((req, res) => {
      peerAuth.push(req.headers.authorization);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ ok: true, version: '1.2.3', criu: { version: '4.2' }, store: '/peer/store' }));
    });
    await new Promise<void>((r) => peer.listen(0, '127.0.0.1', r));
    const a = peer.address();
    peerUrl = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
    engine = new FakeEngine(dir);
    jobs = new Jobs({ engine, admission: new LimitAdmission(1) });
    agent = createAgentApp({
      engine, jobs, token: TOKEN, version: '9.9.9', name: 'h1', dashboardDir: ui,
      // The second peer is a closed port: listed with its error.
      peers: [{ name: 'h2', url: peerUrl }, { name: 'h3', url: 'http://127.0.0.1:1' }],
    });
  });
  after(async () => {
    await jobs.close();
    agent.dispose();
    await new Promise((r) => peer.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  const req = (path: string, init: RequestInit & { auth?: boolean } = {}) => {
    const headers = new Headers(init.headers);
    if (init.auth !== false) headers.set('authorization', `Bearer ${TOKEN}`);
    return agent.app.request(path, { ...init, headers });
  };

  it('serves the page and its files without the token, with a strict CSP; the API still refuses', async () => {
    const page = await req('/', { auth: false });
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(await page.text(), /<title>ferry<\/title>/);
    const csp = page.headers.get('content-security-policy') ?? '';
    assert.match(csp, /connect-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(page.headers.get('referrer-policy'), 'no-referrer');
    const js = await req('/dashboard/app.js', { auth: false });
    assert.equal(js.status, 200);
    assert.match(js.headers.get('content-type') ?? '', /^text\/javascript/);
    // Only GET/HEAD of the page's own paths are public.
    for (const [method, path] of [['GET', '/v1/workloads'], ['GET', '/v1/peers'], ['POST', '/'], ['GET', '/dashboard/../v1/jobs'], ['GET', '/index.html']] as const) {
      const r = await req(path, { method, auth: false });
      assert.equal(r.status, 401, `${method} ${path} without the token`);
    }
  });

  it('a file that is not built is a 503 saying how to build it; a name that is no dashboard file a 404', async () => {
    const r = await req('/dashboard/nope.js', { auth: false });
    assert.equal(r.status, 503);
    assert.equal((await r.json() as { error: { code: string } }).error.code, 'ERR_DASHBOARD_MISSING');
    const bad = await req('/dashboard/App.JS', { auth: true });
    assert.equal(bad.status, 404);
    const empty = createAgentApp({ engine, jobs, token: TOKEN, dashboardDir: join(dir, 'none') });
    try {
      const r2 = await empty.app.request('/');
      assert.equal(r2.status, 503);
      const e = (await r2.json() as { error: { code: string; hint: string } }).error;
      assert.equal(e.code, 'ERR_DASHBOARD_MISSING');
      assert.match(e.hint, /build-dashboard\.mjs/);
    } finally {
      empty.dispose();
    }
  });

  it('GET /v1/peers: this agent and each peer asked for its health with the token; one that does not answer is listed with its error', async () => {
    peerAuth = [];
    const r = await req('/v1/peers');
    assert.equal(r.status, 200);
    const b = await r.json() as { self: { name: string; version: string }; peers: { name: string; ok: boolean; version?: string; error?: { code: string } }[] };
    assert.deepEqual([b.self.name, b.self.version], ['h1', '9.9.9']);
    assert.deepEqual(b.peers.map((p) => [p.name, p.ok]), [['h2', true], ['h3', false]]);
    assert.equal(b.peers[0]?.version, '1.2.3');
    assert.equal(b.peers[1]?.error?.code, 'ERR_AGENT_UNREACHABLE');
    assert.deepEqual(peerAuth, [`Bearer ${TOKEN}`]);
  });

  it('POST /v1/migrations/preflight is the dry run, validated as a migration body (not a migration id)', async () => {
    const post = (body: unknown) => req('/v1/migrations/preflight', { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    const bad = await post({ target: 'web', to: { url: 'not a url' } });
    assert.equal(bad.status, 400);
    const e = (await bad.json() as { error: { code: string; message: string } }).error;
    assert.equal(e.code, 'ERR_USAGE');
    assert.match(e.message, /to\.url/);
    const extra = await post({ target: 'web', to: { url: peerUrl }, strategy: 'cold', holdMs: 5000 });
    assert.equal(extra.status, 400, 'only the preflight\'s own options');
  });

  it('FERRY_PEERS: NAME=URL pairs; malformed ones refused by name', () => {
    assert.deepEqual(parsePeers(undefined), []);
    assert.deepEqual(parsePeers(' '), []);
    const peers = parsePeers('h2=http://10.251.0.2:7387, h3=http://10.251.0.3:7387/');
    assert.deepEqual(peers, [{ name: 'h2', url: 'http://10.251.0.2:7387' }, { name: 'h3', url: 'http://10.251.0.3:7387' }]);
    assert.deepEqual(parsePeers(formatPeers(peers)), peers);
    for (const bad of ['h2', '=http://x:1', 'h2=ftp://x', 'h 2=http://x:1', 'h2=http://x:1/path', 'h2=http://a:1,h2=http://b:1']) {
      assert.throws(() => parsePeers(bad), (err: Error & { code?: string }) => err.code === 'ERR_BAD_OPTION', bad);
    }
  });
});
