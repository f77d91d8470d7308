// The agent end to end (root, real CRIU): `bin/ferry agent` on a loopback socket with a token and
// a temporary store, a `ferry run` workload checkpointed through HTTP, followed over SSE; the
// job's result has the CLI's --json shape and /metrics counts it.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Job } from '../engine/jobs.js';
import { FERRY, ferryCli, ferryOk } from '../testing/ferry-cli.js';
import { agentListening } from '../testing/agent-process.js';
import { isAlive, killQuietly } from '../testing/processes.js';
import { memcheckWorkload } from '../testing/workloads.js';


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
    await writeFile(join(dir, 'agent.json'), JSON.stringify({ scheduler: { dumps: 1, memoryBytes: '1G', diskBandwidth: '2G' }, maxRunningJobs: 6 }));
    agent = spawn(FERRY, ['--store', store, 'agent', '--listen', '127.0.0.1:0', '--token-file', join(dir, 'token'), '--config', join(dir, 'agent.json'), '--log-file', join(dir, 'agent.log'), '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    url = await agentListening(agent);
    pid = (JSON.parse(await ferryOk(store, ['run', '--name', 'sleeper', '--json', '--', 'sleep', '1000'])) as { pid: number }).pid;
  });

  after(async () => {
    if (agent && agent.exitCode === null) {
      const exited = new Promise((r) => agent?.once('exit', r));
      agent.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (agent.exitCode === null) agent.kill('SIGKILL');
    }
    for (const w of ['sleeper', 'copy-remote', 'copy-local', 'env-run']) await ferryCli(store, ['stop', w]);
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

    const log = (await readFile(join(dir, 'agent.log'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { job?: string; state?: string; msg: string; budgets?: object });
    assert.ok(log.some((l) => l.job === job.id && l.state === 'succeeded'), 'the log has the job id on its lines');
    // --config set the scheduler's budgets (the rest from the host).
    assert.deepEqual(log.find((l) => l.msg === 'agent listening')?.budgets, { dumps: 1, memoryBytes: 2 ** 30, diskBandwidth: 2 * 2 ** 30 });
    await writeFile(join(dir, 'bad.json'), '{"scheduler":{"dumps":0}}');
    const bad = await ferryCli(store, ['agent', '--listen', '127.0.0.1:0', '--config', join(dir, 'bad.json')]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^ferry: error: the agent's config .*bad\.json is invalid: scheduler\.dumps/);
  });

  it('the CLI through the agent (--agent URL): checkpoint, restore, ps and snapshots ls/inspect/rm print and exit as the local commands do; machine verbs run locally under $FERRY_AGENT', async () => {
    const remote = (args: string[], env: Record<string, string> = {}) => ferryCli(store, ['--agent', url, ...args, '--token-file', join(dir, 'token')], env);
    const r = await remote(['checkpoint', 'sleeper', '--leave-running', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const viaAgent = JSON.parse(r.stdout) as Record<string, unknown>;
    const local = JSON.parse(await ferryOk(store, ['checkpoint', 'sleeper', '--leave-running', '--json'])) as Record<string, unknown>;
    assert.deepEqual(Object.keys(viaAgent).sort(), Object.keys(local).sort());
    assert.deepEqual(viaAgent['target'], local['target']);

    const human = await remote(['checkpoint', 'sleeper', '--leave-running']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^[0-9a-z][0-9a-z._-]*\n$/);
    assert.match(human.stderr, /^checkpointed pid \d+ \(sleep 1000\) in \d+ ms, frozen/m);

    // Failures: the same code, exit status and message as the local command.
    const [badRemote, badLocal] = [await remote(['checkpoint', 'no-such-workload']), await ferryCli(store, ['checkpoint', 'no-such-workload'])];
    assert.equal(badRemote.code, badLocal.code);
    assert.notEqual(badLocal.code, 0);
    assert.equal(badRemote.stderr.split('\n')[0], badLocal.stderr.split('\n')[0]);

    const snap = String(viaAgent['snapshot']);
    const rr = await remote(['restore', snap, '--as', 'copy-remote', '--json']);
    assert.equal(rr.code, 0, rr.stderr);
    const restoredRemote = JSON.parse(rr.stdout) as Record<string, unknown>;
    const restoredLocal = JSON.parse(await ferryOk(store, ['restore', snap, '--as', 'copy-local', '--json'])) as Record<string, unknown>;
    assert.deepEqual(Object.keys(restoredRemote).sort(), Object.keys(restoredLocal).sort());
    assert.equal(restoredRemote['name'], 'copy-remote');
    assert.ok(isAlive(restoredRemote['pid'] as number), 'the restored copy runs');

    // snapshots ls: the same listing (sizes and rows; host memory and ages move between calls).
    const lsRemote = JSON.parse((await remote(['snapshots', 'ls', '--json'])).stdout) as { snapshots: unknown[]; memoryTier: object };
    const lsLocal = JSON.parse(await ferryOk(store, ['snapshots', 'ls', '--json'])) as { snapshots: unknown[]; memoryTier: object };
    assert.deepEqual(Object.keys(lsRemote).sort(), Object.keys(lsLocal).sort());
    assert.deepEqual(lsRemote.snapshots, lsLocal.snapshots);
    assert.equal(lsRemote.snapshots.length, 5, 'two from the first test, three from this one');
    const lsHuman = await remote(['snapshots', 'ls']);
    assert.equal(lsHuman.code, 0, lsHuman.stderr);
    assert.equal(lsHuman.stdout.split('\n').slice(0, 5).join('\n'), (await ferryOk(store, ['snapshots', 'ls'])).split('\n').slice(0, 5).join('\n'));

    // snapshots inspect, ps: the same output (JSON and text) as the local commands.
    for (const args of [['snapshots', 'inspect', snap, '--json'], ['snapshots', 'inspect', snap], ['ps', '--json'], ['ps']]) {
      const [r1, l1] = [await remote(args), await ferryCli(store, args)];
      assert.equal(r1.code, 0, r1.stderr);
      assert.equal(r1.stdout, l1.stdout, args.join(' '));
    }
    // snapshots rm: one through the agent, one locally, printed alike; a missing one fails alike.
    const other = String(local['snapshot']);
    const [rmRemote, rmLocal] = [await remote(['snapshots', 'rm', snap, '--json']), await ferryCli(store, ['snapshots', 'rm', other, '--json'])];
    assert.equal(rmRemote.code, 0, rmRemote.stderr);
    assert.deepEqual(Object.keys(JSON.parse(rmRemote.stdout) as object).sort(), Object.keys(JSON.parse(rmLocal.stdout) as object).sort());
    assert.equal((JSON.parse(rmRemote.stdout) as { removed: string }).removed, snap);
    const [goneRemote, goneLocal] = [await remote(['snapshots', 'rm', snap]), await ferryCli(store, ['snapshots', 'rm', snap])];
    assert.equal(goneRemote.code, goneLocal.code);
    assert.notEqual(goneLocal.code, 0);
    assert.equal(goneRemote.stderr.split('\n')[0], goneLocal.stderr.split('\n')[0]);

    // No token: refused with the agent's code; a verb without remote mode refuses rather than run locally.
    const noToken = await ferryCli(store, ['--agent', url, 'checkpoint', 'sleeper', '--leave-running']);
    assert.equal(noToken.code, 1);
    assert.match(noToken.stderr, /^ferry: error: missing or wrong bearer token/);
    // A verb about this machine runs here when the URL is only in $FERRY_AGENT; an explicit --agent is refused.
    const run = await ferryCli(store, ['run', '--name', 'env-run', '--json', '--', 'sleep', '1000'], { FERRY_AGENT: url });
    assert.equal(run.code, 0, run.stderr);
    assert.ok(isAlive((JSON.parse(run.stdout) as { pid: number }).pid));
    assert.equal((await ferryCli(store, ['stop', 'env-run'], { FERRY_AGENT: url })).code, 0);
    const explicit = await ferryCli(store, ['--agent', url, 'stop', 'sleeper']);
    assert.equal(explicit.code, 2);
    assert.match(explicit.stderr, /`ferry stop` does not run through an agent/);
    assert.equal((await ferryCli(store, ['ps'], { FERRY_AGENT: '' })).code, 0, 'an empty FERRY_AGENT means local');
  });

  it('SIGTERM stops the agent gracefully: exit 0, the log ends with "agent stopped"', async () => {
    const a = agent!;
    const exited = new Promise<number | null>((r) => a.once('exit', (code) => r(code)));
    a.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 15_000))]);
    assert.equal(code, 0);
    const lines = (await readFile(join(dir, 'agent.log'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { msg: string; reason?: string });
    assert.equal(lines.at(-1)?.msg, 'agent stopped');
    assert.ok(lines.some((l) => l.msg.startsWith('agent stopping') && l.reason === 'SIGTERM'));
  });
  it('an agent killed (SIGKILL) in the middle of a checkpoint: restarted, it reports the job interrupted; the workload runs on and verifies; nothing half-written is listed', async () => {
    const inst = await memcheckWorkload({ mib: 200, seed: 5 }).prepare(dir);
    const big = (JSON.parse(await ferryOk(store, ['run', '--name', 'big', '--json', '--', ...inst.command])) as { pid: number }).pid;
    try {
      await inst.waitReady(60_000);
      const second = spawn(FERRY, ['--store', store, 'agent', '--listen', '127.0.0.1:0', '--token-file', join(dir, 'token'), '--log-file', join(dir, 'agent2.log'), '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
      url = await agentListening(second);
      const job = ((await (await api('/v1/checkpoints', { method: 'POST', body: JSON.stringify({ target: 'big' }) })).json()) as { job: Job }).job;
      // Kill it while CRIU writes the pages.
      const pending = join(store, 'snapshots');
      for (let i = 0; i < 6000; i++) {
        const tmp = (await readdir(pending).catch(() => [] as string[])).find((n) => n.startsWith('.tmp-'));
        const pages = tmp ? (await readdir(join(pending, tmp)).catch(() => [] as string[])).filter((n) => n.startsWith('pages-')) : [];
        const bytes = await Promise.all(pages.map((n) => stat(join(pending, tmp!, n)).then((x) => x.size, () => 0)));
        if (bytes.reduce((a, b) => a + b, 0) > 40 << 20) break;
        await new Promise((r) => setTimeout(r, 5));
      }
      const gone = new Promise((r) => second.once('exit', r));
      second.kill('SIGKILL');
      await gone;
      const third = spawn(FERRY, ['--store', store, 'agent', '--listen', '127.0.0.1:0', '--token-file', join(dir, 'token'), '--log-file', join(dir, 'agent3.log'), '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
      url = await agentListening(third);
      try {
        const after = ((await (await api(`/v1/jobs/${job.id}`)).json()) as { job: Job }).job;
        assert.equal(after.state, 'failed');
        assert.equal(after.error?.code, 'ERR_INTERRUPTED');
        // CRIU was never told to go on: it resumed the tree, and the partial snapshot is gone.
        assert.ok(isAlive(big), 'the workload runs on');
        await inst.verify(big);
        assert.deepEqual((await readdir(pending)).filter((n) => n.startsWith('.tmp-')), [], 'nothing half-written is left');
        const listed = (JSON.parse(await ferryOk(store, ['snapshots', 'ls', '--json'])) as { leftovers?: unknown[] }).leftovers ?? [];
        assert.deepEqual(listed, [], 'and nothing is listed as left over');
      } finally {
        const exited = new Promise((r) => third.once('exit', r));
        third.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
        if (third.exitCode === null) third.kill('SIGKILL');
      }
    } finally {
      killQuietly(big);
    }
  });
});
