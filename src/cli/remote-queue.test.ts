// `ferry --agent URL checkpoint` while its job waits: the real CLI (bin/ferry, a child process with
// stderr not a terminal) against an agent app served on a loopback socket in this process (fake
// engine, the real jobs registry and freeze scheduler). Its progress output names the place in
// the queue as it moves; with --json, stdout is the result alone and nothing about the queue.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createAdaptorServer } from '@hono/node-server';
import { createAgentApp } from '../agent/app.js';
import { AgentClient } from '../agent/client.js';
import { LimitAdmission } from '../engine/admission.js';
import { Jobs } from '../engine/jobs.js';
import { Admission } from '../scheduler/admission.js';
import { FERRY } from '../testing/ferry-cli.js';
import { FakeEngine } from '../testing/fake-engine.js';

/** Runs bin/ferry (its agent only from --agent: $FERRY_AGENT emptied). */
function ferry(args: string[]): { done: Promise<{ code: number | null; stdout: string; stderr: string }>; stderr: () => string } {
  const child = spawn(FERRY, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FERRY_AGENT: '' } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return {
    done: new Promise((resolve) => child.once('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); })),
    stderr: () => stderr,
  };
}

async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('the CLI\'s remote mode shows the queue position', { timeout: 60_000 }, () => {
  let dir = '';
  let engine: FakeEngine;
  let jobs: Jobs;
  let agent: ReturnType<typeof createAgentApp>;
  let server: Server;
  let url = '';
  let client: AgentClient;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-remote-queue-'));
    engine = new FakeEngine(dir);
    jobs = new Jobs({ engine, admission: new LimitAdmission(8), scheduler: new Admission({ dumps: 1, memoryBytes: 1 << 30 }) });
    agent = createAgentApp({ engine, jobs });
    server = createAdaptorServer({ fetch: agent.app.fetch }) as Server;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    client = new AgentClient({ url });
  });
  after(async () => {
    await jobs.close();
    agent.dispose();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  const queuedCount = async () => (await client.jobs()).filter((j) => j.state === 'queued').length;

  it('prints "queued (position p of n)" on stderr as its place moves, then the result', async () => {
    const openFirst = engine.hold('first');
    await client.checkpoint({ target: 'first' });
    const run = ferry(['--store', dir, '--agent', url, 'checkpoint', 'mine']);
    await until(() => /queued \(position 1 of 1\)/.test(run.stderr()), 'the CLI to show place 1 of 1');
    // A more urgent job arrives: ours moves back to 2 of 2.
    await client.checkpoint({ target: 'urgent', priority: 9 });
    await until(() => /queued \(position 2 of 2\)/.test(run.stderr()), 'the CLI to show place 2 of 2');
    openFirst();
    const r = await run.done;
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stderr.split('\n').filter((l) => l.includes('queued'));
    assert.deepEqual(lines, ['checkpointing mine (agent): queued (position 1 of 1)', 'checkpointing mine (agent): queued (position 2 of 2)', 'checkpointing mine (agent): queued (position 1 of 1)']);
    assert.match(r.stdout, /^fake-\d+\n$/, 'stdout: the snapshot id, as locally');
  });

  it('--json: stdout is the job\'s result alone; nothing about the queue', async () => {
    const openFirst = engine.hold('first');
    await client.checkpoint({ target: 'first' });
    const run = ferry(['--store', dir, '--agent', url, 'checkpoint', 'mine', '--json']);
    await until(async () => await queuedCount() === 1, 'the CLI\'s job to queue');
    openFirst();
    const r = await run.done;
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.match(String(result['snapshot']), /^fake-\d+$/);
    assert.doesNotMatch(r.stderr, /queued/);
  });

  it('--priority N puts the CLI\'s job ahead of lower ones; it needs an agent and a whole number', async () => {
    const openFirst = engine.hold('first');
    await client.checkpoint({ target: 'first' });
    await client.checkpoint({ target: 'later', priority: 1 });
    const run = ferry(['--store', dir, '--agent', url, 'checkpoint', 'mine', '--priority', '5']);
    await until(() => /queued \(position 1 of 2\)/.test(run.stderr()), 'the CLI\'s job to go ahead of the lower one');
    const mine = (await client.jobs()).find((j) => j.state === 'queued' && j.queuePosition === 1);
    assert.equal((mine as { priority?: number } | undefined)?.priority, 5);
    openFirst();
    assert.equal((await run.done).code, 0);
    const local = await ferry(['--store', dir, 'checkpoint', 'mine', '--priority', '5']).done;
    assert.equal(local.code, 2);
    assert.match(local.stderr, /--priority orders jobs on an agent/);
    const bad = await ferry(['--store', dir, '--agent', url, 'restore', 'x', '--priority', 'high']).done;
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--priority must be a whole number from -1000 to 1000/);
  });
});
