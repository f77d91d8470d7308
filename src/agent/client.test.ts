import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Jobs, type JobEvent } from '../engine/jobs.js';
import { FakeEngine } from '../testing/fake-engine.js';
import { isFerryError } from '../util/errors.js';
import { createAgentApp } from './app.js';
import { AgentClient } from './client.js';

describe('AgentClient (against the in-process app)', () => {
  let dir = '';
  let jobs: Jobs;
  let agent: ReturnType<typeof createAgentApp>;
  let client: AgentClient;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-agent-client-'));
    const engine = new FakeEngine(dir);
    jobs = new Jobs({ engine });
    agent = createAgentApp({ engine, jobs, token: 'client-token-0123456789', version: '1.2.3' });
    client = new AgentClient({ url: 'http://agent.test/', token: 'client-token-0123456789', fetch: async (url, init) => agent.app.request(url, init) });
  });
  after(async () => {
    await jobs.close();
    agent.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it('submits a checkpoint, follows its events, gets the result; lists and removes the snapshot', async () => {
    assert.equal((await client.health()).version, '1.2.3');
    const job = await client.checkpoint({ target: 'w1', leaveRunning: true });
    const seen: JobEvent[] = [];
    const done = await client.wait(job.id, (e) => seen.push(e));
    assert.equal(done.state, 'succeeded');
    assert.deepEqual(seen.filter((e) => e.type === 'phase').map((e) => e.type === 'phase' && `${e.phase}:${e.state}`), ['criu:start', 'criu:end', 'commit:start', 'commit:end']);
    const id = done.result?.['snapshot'] as string;
    assert.equal((await client.snapshot(id))['id'], id);
    assert.equal((await client.snapshots()).length, 1);
    assert.equal((await client.jobs()).length, 1);
    assert.equal((await client.removeSnapshot(id)).removed, id);
    assert.deepEqual(await client.workloads(), []);
  });

  it('error answers become FerryErrors with the agent\'s code and hint', async () => {
    await assert.rejects(client.snapshot('missing'), (e) => isFerryError(e, 'ERR_NO_SNAPSHOT'));
    await assert.rejects(client.job('j-0000000000000000'), (e) => isFerryError(e, 'ERR_NO_JOB') && /GET \/v1\/jobs/.test(e.hint ?? ''));
    await assert.rejects(client.checkpoint({ target: 'w1', bogus: 1 } as never), (e) => isFerryError(e, 'ERR_USAGE') && /bogus/.test(e.message));
    const wrong = new AgentClient({ url: 'http://agent.test', token: 'nope', fetch: async (url, init) => agent.app.request(url, init) });
    await assert.rejects(wrong.health(), (e) => isFerryError(e, 'ERR_UNAUTHORIZED'));
  });

  it('an unreachable agent is ERR_AGENT_UNREACHABLE', async () => {
    const c = new AgentClient({ url: 'http://127.0.0.1:1', timeoutMs: 5000 });
    await assert.rejects(c.health(), (e) => isFerryError(e, 'ERR_AGENT_UNREACHABLE') && /127\.0\.0\.1:1/.test(e.message));
  });
});
