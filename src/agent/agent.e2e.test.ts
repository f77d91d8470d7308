// The agent end to end (root, real CRIU): `bin/ferry agent` on a loopback socket with a token and
// a temporary store, a `ferry run` workload checkpointed through HTTP, followed over SSE; the
// job's result has the CLI's --json shape and /metrics counts it.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Job } from '../engine/jobs.js';
import { FERRY, ferryCli, ferryOk } from '../testing/ferry-cli.js';
import { isAlive, killQuietly } from '../testing/processes.js';

/** Resolves with the agent's --json start-up line, or rejects when it exits first or takes over 20 s. */
function started(child: ChildProcess): Promise<{ listening: string }> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`the agent did not start within 20 s: ${out}`)), 20_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      try {
        resolve(JSON.parse(out) as { listening: string });
        clearTimeout(timer);
      } catch { /* not complete yet */ }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`the agent exited (${code}) before listening: ${out}`)); });
  });
}

describe('ferry agent over a real socket', { timeout: 180_000 }, () => {
  let dir = '';
  let store = '';
  let agent: ChildProcess | undefined;
  let url = '';
  let token = '';
  let pid: number | undefined;
  const api = (path: string, init: RequestInit = {}) => fetch(url + path, { ...init, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...(init.headers as Record<string, string> | undefined) }, signal: AbortSignal.timeout(120_000) });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-agent-e2e-'));
    store = join(dir, 'store');
    token = randomBytes(24).toString('hex');
    await writeFile(join(dir, 'token'), `${token}\n`, { mode: 0o600 });
    agent = spawn(FERRY, ['--store', store, 'agent', '--listen', '127.0.0.1:0', '--token-file', join(dir, 'token'), '--log-file', join(dir, 'agent.log'), '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    url = (await started(agent)).listening;
    pid = (JSON.parse(await ferryOk(store, ['run', '--name', 'sleeper', '--json', '--', 'sleep', '1000'])) as { pid: number }).pid;
  });

  after(async () => {
    if (agent && agent.exitCode === null) {
      const exited = new Promise((r) => agent?.once('exit', r));
      agent.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (agent.exitCode === null) agent.kill('SIGKILL');
    }
    await ferryCli(store, ['stop', 'sleeper']);
    killQuietly(pid);
    await rm(dir, { recursive: true, force: true });
  });

  it('checkpoints a workload as a job: SSE shows the phases, the result has the CLI shape, /metrics counts it', async () => {
    assert.equal((await fetch(`${url}/v1/health`)).status, 401, 'no token');
    const health = await (await api('/v1/health')).json() as { ok: boolean; criu: { version: string } };
    assert.equal(health.ok, true);
    assert.match(health.criu.version, /^\d+\.\d+/);

    const sub = await api('/v1/checkpoints', { method: 'POST', body: JSON.stringify({ target: 'sleeper', leaveRunning: true }) });
    assert.equal(sub.status, 202);
    const { job } = await sub.json() as { job: Job };
    assert.equal(job.kind, 'checkpoint');

    const events = await api(`/v1/jobs/${job.id}/events`);
    assert.equal(events.status, 200);
    const text = await events.text(); // the stream ends after the final state
    // Server-sent events: blocks separated by a blank line, one `field: value` a line.
    const parsed = text.split('\n\n').filter((b) => b.trim()).map((block) => {
      const f = Object.fromEntries(block.split('\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]));
      return { event: f['event'], data: JSON.parse(f['data'] ?? '{}') as { state: string; phase?: string } };
    });
    const states = parsed.filter((e) => e.event === 'state').map((e) => e.data.state);
    assert.deepEqual(states, ['queued', 'running', 'succeeded'], text.slice(0, 2000));
    const phases = new Set(parsed.filter((e) => e.event === 'phase').map((e) => e.data.phase));
    assert.ok(phases.size >= 2, `phases: ${[...phases].join(', ')}`);

    const got = (await (await api(`/v1/jobs/${job.id}`)).json() as { job: Job }).job;
    assert.equal(got.state, 'succeeded');
    assert.ok(got.phases.length >= 2 && got.phases.every((p) => p.state === 'done'));
    assert.ok(isAlive(pid!), 'leaveRunning: the workload still runs');
    const result = got.result ?? {};
    const cli = JSON.parse(await ferryOk(store, ['checkpoint', 'sleeper', '--leave-running', '--json'])) as Record<string, unknown>;
    assert.deepEqual(Object.keys(result).sort(), Object.keys(cli).sort(), 'the job result has the CLI --json keys');
    assert.deepEqual(Object.keys(result['target'] as object).sort(), Object.keys(cli['target'] as object).sort());
    assert.deepEqual(result['target'], cli['target']);
    const snaps = (await (await api('/v1/snapshots')).json() as { snapshots: { id: string }[] }).snapshots.map((s) => s.id);
    assert.ok(snaps.includes(result['snapshot'] as string) && snaps.includes(cli['snapshot'] as string));

    const metrics = await (await api('/metrics')).text();
    for (const line of metrics.split('\n')) {
      if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
      assert.match(line, /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*\})? -?(?:\d+(?:\.\d+)?(?:e[+-]?\d+)?|NaN|\+Inf|-Inf)$/, `not Prometheus text: ${line}`);
    }
    assert.match(metrics, /^ferry_jobs_total\{kind="checkpoint",outcome="succeeded"\} 1$/m);
    assert.match(metrics, /^ferry_checkpoint_bytes_written_total [1-9]/m);
    assert.match(metrics, /^ferry_checkpoint_frozen_seconds_count 1$/m);

    const log = (await readFile(join(dir, 'agent.log'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { job?: string; state?: string });
    assert.ok(log.some((l) => l.job === job.id && l.state === 'succeeded'), 'the log has the job id on its lines');
  });
});
