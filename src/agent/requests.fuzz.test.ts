// The agent under malformed requests (fast-check): every answer is a 4xx JSON error with a
// stable code, no request becomes a job, the agent keeps answering, and only the temporary
// store (the real engine's, on a temp directory and a temp memory tier) may be touched.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { createEngine } from '../engine/engine.js';
import { Jobs } from '../engine/jobs.js';
import { Store } from '../store/store.js';
import { isErrorCode } from '../util/error-codes.js';
import { createAgentApp } from './app.js';
import { CheckpointBody, RestoreBody } from './schemas.js';

const TOKEN = 'fuzz-token';

interface Req { method: string; path: string; body?: Uint8Array | string; type?: string }

const valid = (path: string, v: unknown) => (path === '/v1/checkpoints' ? CheckpointBody : RestoreBody).safeParse(v).success;
const opPath = fc.constantFrom('/v1/checkpoints', '/v1/restores');
const json = (path: string, body: string): Req => ({ method: 'POST', path, body, type: 'application/json' });
const huge = fc.oneof(fc.constantFrom(1e308, -1e308, 2 ** 53 + 1, -0, 1.5, Number.MAX_SAFE_INTEGER * 1e6), fc.double());
const wrongTyped = fc.record({
  target: fc.oneof(fc.constant(null), fc.boolean(), huge, fc.array(fc.string()), fc.string({ maxLength: 300 }).map((s) => `../${s}`), fc.string().map((s) => `a/${s}`)),
  snapshot: fc.oneof(fc.constant('..'), fc.constant('../x'), fc.string().map((s) => `${s}/..`), fc.integer()),
  leaveRunning: fc.oneof(fc.string(), fc.integer(), fc.constant(null)),
  tier: fc.oneof(fc.string(), fc.integer()),
  maxDepth: huge,
  ghostLimit: huge,
  memoryBudget: fc.oneof(huge, fc.string()),
}, { requiredKeys: [] });

const requests: fc.Arbitrary<Req> = fc.oneof(
  // Random JSON values (not a valid body).
  fc.tuple(opPath, fc.json()).filter(([p, t]) => !valid(p, JSON.parse(t))).map(([p, t]) => json(p, t)),
  // Objects with the right keys and wrong types, huge numbers, paths that climb.
  fc.tuple(opPath, wrongTyped).filter(([p, o]) => !valid(p, o)).map(([p, o]) => json(p, JSON.stringify(o))),
  // A valid body plus unknown fields.
  fc.tuple(opPath, fc.dictionary(fc.string({ minLength: 1 }).filter((k) => !['target', 'snapshot', 'name', 'as'].includes(k) && !(k in CheckpointBody.shape) && !(k in RestoreBody.shape)), fc.jsonValue(), { minKeys: 1 }))
    .map(([p, extra]) => json(p, JSON.stringify({ ...(p === '/v1/checkpoints' ? { target: 'w1' } : { snapshot: 's1' }), ...extra }))),
  // Broken UTF-8 and raw bytes.
  fc.tuple(opPath, fc.uint8Array({ minLength: 1, maxLength: 200 })).map(([p, b]) => ({ method: 'POST', path: p, body: Uint8Array.from([0x7b, 0xff, 0xfe, ...b]), type: 'application/json' })),
  // Truncated bodies.
  fc.tuple(opPath, fc.nat()).map(([p, n]) => {
    const full = JSON.stringify(p === '/v1/checkpoints' ? { target: 'w1', leaveRunning: true, tier: 'memory' } : { snapshot: 's1', as: 'copy' });
    return json(p, full.slice(0, n % (full.length - 1)));
  }),
  // Wrong content type.
  fc.tuple(opPath, fc.string()).map(([p, t]) => ({ method: 'POST', path: p, body: JSON.stringify({ target: 'w1' }), type: `text/${t.replace(/[^a-z]/g, '') || 'plain'}` })),
  // Random ids in paths (percent-encoded: slashes and dots included).
  fc.tuple(fc.constantFrom('GET', 'DELETE'), fc.constantFrom('/v1/jobs/', '/v1/snapshots/'), fc.string({ minLength: 1, maxLength: 300 }))
    .map(([method, base, id]) => ({ method, path: base + encodeURIComponent(id) })),
  // Random paths and methods (not the valid GETs: the listings, and the dashboard's page and files).
  fc.tuple(fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE'), fc.webPath())
    .filter(([, p]) => !/^\/(v1\/(health|jobs|snapshots|workloads|peers|openapi\.json)|metrics)?\/?$/.test(p) && !p.startsWith('/dashboard/'))
    .map(([method, path]) => ({ method, path: path || '/x' })),
);

describe('agent fuzz', () => {
  let dir = '';
  let jobs: Jobs;
  let agent: ReturnType<typeof createAgentApp>;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-agent-fuzz-'));
    const engine = createEngine({ store: new Store({ root: join(dir, 'store'), memoryDir: join(dir, 'mem') }) });
    jobs = new Jobs({ engine });
    agent = createAgentApp({ engine, jobs, token: TOKEN, bodyLimit: 8192 });
  });
  after(async () => {
    await jobs.close();
    agent.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it('1,200 malformed requests: each a 4xx JSON error with a catalogued code; no job; still answering', async () => {
    let n = 0;
    await fc.assert(fc.asyncProperty(requests, async (r) => {
      n++;
      const headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` };
      if (r.type) headers['content-type'] = r.type;
      const res = await agent.app.request(r.path, { method: r.method, headers, ...(r.body !== undefined ? { body: r.body } : {}) });
      assert.ok(res.status >= 400 && res.status < 500, `${r.method} ${r.path} → ${res.status}`);
      assert.match(res.headers.get('content-type') ?? '', /application\/json/);
      const b = await res.json() as { error?: { code?: unknown; message?: unknown; stack?: unknown } };
      assert.ok(typeof b.error?.code === 'string' && isErrorCode(b.error.code), JSON.stringify(b));
      assert.equal(typeof b.error.message, 'string');
      assert.ok(!JSON.stringify(b).includes('    at '), 'no stack trace');
    }), { numRuns: 1200 });
    assert.equal(n, 1200);
    assert.deepEqual(jobs.list(), [], 'no malformed request became a job');
    const health = await agent.app.request('/v1/health', { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(health.status, 200);
    // Only the temporary directory was used: the store (and nothing in it but its own layout).
    assert.deepEqual((await readdir(dir)).filter((e) => e !== 'store' && e !== 'mem'), []);
    const store = new Store({ root: join(dir, 'store'), memoryDir: join(dir, 'mem') });
    assert.deepEqual(await store.list(), []);
  });
});
