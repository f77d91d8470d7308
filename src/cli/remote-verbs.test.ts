// Which verbs go through an agent, with the real CLI (bin/ferry) against an agent app on a
// loopback socket in this process (fake engine): ps and snapshots inspect/rm through it; verbs
// about this machine run locally when the URL comes only from $FERRY_AGENT, and an explicit
// --agent on them is refused.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createAdaptorServer } from '@hono/node-server';
import { createAgentApp } from '../agent/app.js';
import { PE_PRESENT } from '../criu/images/pagemap.js';
import { Jobs } from '../engine/jobs.js';
import { FERRY } from '../testing/ferry-cli.js';
import { FakeEngine } from '../testing/fake-engine.js';
import { PID, writeDump } from '../testing/synthetic-dump.js';

function ferry(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(FERRY, args, { env: { ...process.env, FERRY_AGENT: '', ...env }, timeout: 30_000 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

describe('the CLI\'s remote verbs', { timeout: 60_000 }, () => {
  let dir = '';
  let local = '';
  let engine: FakeEngine;
  let jobs: Jobs;
  let agent: ReturnType<typeof createAgentApp>;
  let server: Server;
  let url = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-remote-verbs-'));
    local = join(dir, 'local-store');
    engine = new FakeEngine(join(dir, 'agent-store'));
    jobs = new Jobs({ engine });
    agent = createAgentApp({ engine, jobs });
    server = createAdaptorServer({ fetch: agent.app.fetch }) as Server;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const done = await jobs.settled(jobs.submit('checkpoint', { target: 'w1', name: 'synth' }).id);
    assert.equal(done?.state, 'succeeded');
    const images = join(dir, 'images');
    await mkdir(images);
    await writeDump(images, PE_PRESENT);
    engine.snapshots.get('synth')!.dir = images;
  });
  after(async () => {
    await jobs.close();
    agent.dispose();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  it('ps goes through the agent: its store\'s workloads, printed as locally', async () => {
    const viaEnv = await ferry(['--store', local, 'ps'], { FERRY_AGENT: url });
    assert.equal(viaEnv.code, 0, viaEnv.stderr);
    assert.equal(viaEnv.stdout, `no workloads in ${join(dir, 'agent-store', 'workloads')} (start one with \`ferry run --name NAME -- CMD\`)\n`);
    const json = await ferry(['--store', local, '--agent', url, 'ps', '--json']);
    assert.deepEqual(JSON.parse(json.stdout), { workloads: [] });
    const here = await ferry(['--store', local, 'ps']);
    assert.match(here.stdout, new RegExp(`no workloads in ${join(local, 'workloads')}`));
  });

  it('snapshots inspect and rm go through the agent', async () => {
    const json = await ferry(['--store', local, '--agent', url, 'snapshots', 'inspect', 'synth', '--json']);
    assert.equal(json.code, 0, json.stderr);
    const report = JSON.parse(json.stdout) as { manifest: { id: string }; images: { processes: { pid: number }[] }; environmentValues: string };
    assert.equal(report.manifest.id, 'synth');
    assert.equal(report.images.processes[0]?.pid, PID);
    const human = await ferry(['--store', local, '--agent', url, 'snapshots', 'inspect', 'synth']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^snapshot synth {2}\(disk tier, 40\.0 KiB/);
    assert.match(human.stdout, new RegExp(`^ {2}${PID} \\(ppid 0\\) 1 thread\\(s\\) {2}/bin/prog`, 'm'));
    const missing = await ferry(['--store', local, '--agent', url, 'snapshots', 'inspect', 'nope']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^ferry: error: no snapshot 'nope'/);
    const removed = await ferry(['--store', local, '--agent', url, 'snapshots', 'rm', 'synth']);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(removed.stdout, 'removed synth\n');
    assert.equal(engine.snapshots.has('synth'), false);
    const gc = await ferry(['--store', local, '--agent', url, 'snapshots', 'gc']);
    assert.equal(gc.code, 2);
    assert.match(gc.stderr, /`ferry snapshots gc` does not run through an agent yet/);
  });

  it('a verb about this machine runs locally with the URL only in $FERRY_AGENT, and refuses an explicit --agent', async () => {
    // `stop` of an unknown workload: the local command's own refusal (exit 1), not remote mode's.
    const viaEnv = await ferry(['--store', local, 'stop', 'no-such-workload'], { FERRY_AGENT: url });
    const plain = await ferry(['--store', local, 'stop', 'no-such-workload']);
    assert.equal(viaEnv.code, plain.code);
    assert.equal(viaEnv.stderr, plain.stderr);
    assert.notEqual(plain.code, 2);
    const explicit = await ferry(['--store', local, '--agent', url, 'stop', 'no-such-workload']);
    assert.equal(explicit.code, 2);
    assert.match(explicit.stderr, /^ferry: error: `ferry stop` does not run through an agent: it works on the machine it runs on/);
    assert.match(explicit.stderr, /\nhint: .*\$FERRY_AGENT/);
  });
});
