// `ferry run --ready PROBE [--warm KEY]`: real redis-server (loading an RDB) and a JVM program
// booted cold, snapshotted at readiness and restored warm with their state intact; a changed
// argument or input file boots cold; a damaged snapshot falls back to a cold boot; probes and
// their refusals.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, describe, it } from 'node:test';
import { ferryCli, ferryOk, ferryRefused } from '../testing/ferry-cli.js';
import { isAlive, OwnedPids } from '../testing/processes.js';
import { buildNativeWorkloads, pickFreePort, WORKLOADS_BUILD_DIR } from '../testing/workloads.js';
import { tcpAsk } from '../bench/harness.js';

const exec = promisify(execFile);
const pids = new OwnedPids();
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  pids.killAll();
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

async function tempDir(base: string, prefix: string): Promise<string> {
  const d = await mkdtemp(join(base, `ferry-warm-${prefix}-`));
  cleanups.push(() => rm(d, { recursive: true, force: true }));
  return d;
}

interface RunJson { pid: number; name: string; warm: boolean; readyMs: number; snapshot?: string; coldReasons?: string[]; snapshotError?: unknown }

async function runJson(store: string, env: Record<string, string>, args: string[]): Promise<RunJson> {
  const r = JSON.parse(await ferryOk(store, ['run', '--json', ...args], env)) as RunJson;
  pids.add(r.pid);
  return r;
}

async function snapshotIds(store: string, env: Record<string, string>): Promise<string[]> {
  return (JSON.parse(await ferryOk(store, ['snapshots', 'ls', '--json'], env)) as { snapshots: { id: string }[] }).snapshots.map((s) => s.id);
}

async function setup(): Promise<{ store: string; env: Record<string, string> }> {
  return { store: await tempDir(tmpdir(), 'store'), env: { FERRY_MEMORY_TIER: await tempDir('/dev/shm', 'mem') } };
}

const redisCli = async (port: number, ...args: string[]): Promise<string> => (await exec('redis-cli', ['-p', String(port), ...args], { timeout: 20_000 })).stdout.trim();

describe('ferry run --warm (real redis-server and JVM, real CRIU)', () => {
  it('redis-server loading an RDB: cold, then warm with its dataset and run_id; a changed argument and a changed input file boot cold', async () => {
    const { store, env } = await setup();
    const data = await tempDir(tmpdir(), 'redis');
    const port = await pickFreePort();
    const keys = 200_000;
    // The dataset: DEBUG POPULATE into a scratch server, saved as the RDB every boot loads.
    const scratch = await runJson(store, env, ['--name', 'scratch', '--ready', `cmd:redis-cli -p ${port} ping | grep -q PONG`, '--', 'redis-server', '--port', String(port), '--dir', data, '--save', '', '--appendonly', 'no', '--enable-debug-command', 'yes']);
    await redisCli(port, 'DEBUG', 'POPULATE', String(keys), 'key', '64');
    await redisCli(port, 'SAVE');
    await ferryOk(store, ['stop', scratch.name, '--timeout', '0'], env);

    const cmd = ['redis-server', '--port', String(port), '--bind', '127.0.0.1', '--dir', data, '--dbfilename', 'dump.rdb', '--save', '', '--appendonly', 'no', '--enable-debug-command', 'yes'];
    const warmArgs = ['--name', 'cache', '--warm', 'redis', '--ready', 'log:Ready to accept connections', '--input', join(data, 'dump.rdb')];
    const cold = await runJson(store, env, [...warmArgs, '--', ...cmd]);
    assert.equal(cold.warm, false);
    assert.deepEqual(cold.coldReasons, ['no warm snapshot for key redis yet']);
    assert.ok(cold.snapshot, 'a warm snapshot was taken');
    assert.equal(await redisCli(port, 'DBSIZE'), String(keys));
    const runId = /run_id:(\w+)/.exec(await redisCli(port, 'INFO', 'server'))?.[1];
    assert.ok(runId);
    await ferryOk(store, ['stop', 'cache', '--timeout', '0'], env);

    const warm = await runJson(store, env, [...warmArgs, '--', ...cmd]);
    assert.equal(warm.warm, true);
    assert.equal(warm.snapshot, cold.snapshot);
    assert.notEqual(warm.pid, cold.pid);
    assert.ok(warm.readyMs < cold.readyMs, `warm ${warm.readyMs} ms < cold ${cold.readyMs} ms`);
    // The same server, not a new boot: its run_id and its whole dataset.
    assert.equal(/run_id:(\w+)/.exec(await redisCli(port, 'INFO', 'server'))?.[1], runId);
    assert.equal(await redisCli(port, 'DBSIZE'), String(keys));
    // DEBUG POPULATE pads each value to the size asked for with NULs.
    assert.match(await redisCli(port, 'GET', 'key:4242'), /^value:4242\0*$/);
    await ferryOk(store, ['stop', 'cache', '--timeout', '0'], env);

    // A changed argument: cold, a fresh snapshot, the old one removed.
    const argCmd = [...cmd, '--maxmemory-policy', 'noeviction'];
    const changed = await runJson(store, env, [...warmArgs, '--', ...argCmd]);
    assert.equal(changed.warm, false);
    assert.deepEqual(changed.coldReasons, ['the arguments changed']);
    assert.notEqual(changed.snapshot, cold.snapshot);
    assert.deepEqual(await snapshotIds(store, env), [changed.snapshot]);
    // A changed input file (the running server saves a bigger dataset over it): cold again.
    await redisCli(port, 'DEBUG', 'POPULATE', String(keys + 1000), 'key', '64');
    await redisCli(port, 'SAVE');
    await ferryOk(store, ['stop', 'cache', '--timeout', '0'], env);
    const input = await runJson(store, env, [...warmArgs, '--', ...argCmd]);
    assert.equal(input.warm, false);
    assert.deepEqual(input.coldReasons, [`input ${join(data, 'dump.rdb')} changed (its content)`]);
    assert.equal(await redisCli(port, 'DBSIZE'), String(keys + 1000));
    await ferryOk(store, ['stop', 'cache', '--timeout', '0'], env);
    const again = await runJson(store, env, [...warmArgs, '--', ...argCmd]);
    assert.equal(again.warm, true);
    assert.equal(await redisCli(port, 'DBSIZE'), String(keys + 1000));
    await ferryOk(store, ['stop', 'cache', '--timeout', '0'], env);

    // warm ls / rm: the key and its snapshot go; the next run boots cold.
    const ls = JSON.parse(await ferryOk(store, ['warm', 'ls', '--json'], env)) as { keys: { key: string; snapshot: string; snapshotPresent: boolean }[] };
    assert.deepEqual(ls.keys.map((k) => [k.key, k.snapshot, k.snapshotPresent]), [['redis', input.snapshot, true]]);
    await ferryOk(store, ['warm', 'rm', 'redis'], env);
    assert.deepEqual(await snapshotIds(store, env), []);
    await ferryRefused(store, ['warm', 'rm', 'redis'], /no warm key 'redis'/, env);
  });

  it('a JVM program: warm answers with the index it built cold (same checksum), much sooner', async () => {
    await buildNativeWorkloads();
    const { store, env } = await setup();
    const port = await pickFreePort();
    const cmd = ['java', '-XX:-UsePerfData', '-Xshare:off', '-cp', WORKLOADS_BUILD_DIR, 'SlowBoot', String(port), '300000'];
    const args = ['--name', 'jvm', '--warm', 'jvm', '--ready', `tcp:${port}`, '--ready-timeout', '60s', '--', ...cmd];
    const cold = await runJson(store, env, args);
    assert.equal(cold.warm, false);
    assert.ok(cold.snapshot);
    const line = await tcpAsk(port, undefined, /\n/);
    assert.match(line, /^ready 300000 [0-9a-f]+/);
    await ferryOk(store, ['stop', 'jvm', '--timeout', '0'], env);
    const warm = await runJson(store, env, args);
    assert.equal(warm.warm, true);
    assert.equal(await tcpAsk(port, undefined, /\n/), line, 'the restored JVM holds the index it built');
    assert.ok(warm.readyMs * 2 < cold.readyMs, `warm ${warm.readyMs} ms well under cold ${cold.readyMs} ms`);
    await ferryOk(store, ['stop', 'jvm', '--timeout', '0'], env);
  });

  it('a damaged warm snapshot: the restore fails, the run boots cold and takes a fresh snapshot', async () => {
    const { store, env } = await setup();
    const dir = await tempDir(tmpdir(), 'sh');
    const ready = join(dir, 'ready');
    const script = join(dir, 'svc.sh');
    await writeFile(script, `#!/bin/sh\nsleep 0.3\necho up > ${ready}\nexec sleep 600\n`);
    await chmod(script, 0o755);
    const args = ['--name', 'svc', '--warm', 'svc', '--ready', `file:${ready}`, '--', script];
    const cold = await runJson(store, env, args);
    assert.equal(cold.warm, false);
    await ferryOk(store, ['stop', 'svc', '--timeout', '0'], env);
    // Damage every pages image of the snapshot (it lives in the memory tier).
    const [storeId] = readdirSync(env['FERRY_MEMORY_TIER']!);
    const snapDir = join(env['FERRY_MEMORY_TIER']!, storeId!, cold.snapshot!);
    for (const f of readdirSync(snapDir).filter((n) => /^pages-\d+\.img$/.test(n))) {
      const p = join(snapDir, f);
      const b = readFileSync(p);
      b[0] = (b[0] ?? 0) ^ 0xff;
      writeFileSync(p, b);
    }
    const fallback = await runJson(store, env, args);
    assert.equal(fallback.warm, false);
    assert.equal(fallback.coldReasons?.length, 1);
    assert.match(fallback.coldReasons?.[0] ?? '', new RegExp(`the restore of ${cold.snapshot} failed: .*`));
    assert.ok(fallback.snapshot && fallback.snapshot !== cold.snapshot);
    assert.deepEqual(await snapshotIds(store, env), [fallback.snapshot], 'the damaged snapshot was replaced');
    await ferryOk(store, ['stop', 'svc', '--timeout', '0'], env);
    const warm = await runJson(store, env, args);
    assert.equal(warm.warm, true);
    await ferryOk(store, ['stop', 'svc', '--timeout', '0'], env);
  });

  it('--ready without --warm: file, cmd and log probes; a timeout leaves the program running; an early exit is named; refusals', async () => {
    const { store, env } = await setup();
    const dir = await tempDir(tmpdir(), 'probe');
    const flag = join(dir, 'flag');
    const r1 = await runJson(store, env, ['--name', 'f', '--ready', `file:${flag}`, '--', 'sh', '-c', `sleep 0.2; touch ${flag}; exec sleep 600`]);
    assert.equal(r1.warm, false);
    assert.ok(r1.readyMs >= 200, `ready after the file appeared (${r1.readyMs} ms)`);
    const r2 = await runJson(store, env, ['--name', 'c', '--ready', `cmd:test -e ${flag}.2`, '--', 'sh', '-c', `sleep 0.2; touch ${flag}.2; exec sleep 600`]);
    assert.ok(r2.readyMs >= 200);
    const r3 = await runJson(store, env, ['--name', 'l', '--ready', 'log:^listening on \\d+$', '--', 'sh', '-c', 'sleep 0.2; echo listening on 42; exec sleep 600']);
    assert.ok(r3.readyMs >= 200);
    for (const n of ['f', 'c', 'l']) await ferryOk(store, ['stop', n, '--timeout', '0'], env);

    const t = await ferryCli(store, ['run', '--name', 'slow', '--ready', `file:${flag}.never`, '--ready-timeout', '500ms', '--json', '--', 'sleep', '600'], env);
    assert.equal(t.code, 1);
    const err = (JSON.parse(t.stdout) as { error: { code: string; message: string } }).error;
    assert.equal(err.code, 'ERR_NOT_READY');
    assert.match(err.message, /was not ready .* within 500 ms; it was left running/);
    const pid = Number(/pid (\d+)/.exec(err.message)?.[1]);
    pids.add(pid);
    assert.ok(isAlive(pid), 'left running');
    await ferryOk(store, ['stop', 'slow', '--timeout', '0'], env);
    await ferryRefused(store, ['run', '--name', 'early', '--ready', `file:${flag}.never`, '--', 'sh', '-c', 'sleep 0.3; exit 3'], /early \(pid \d+\) exited before it was ready/, env);

    const usage = async (args: string[], re: RegExp): Promise<void> => {
      const r = await ferryCli(store, ['run', ...args, '--', 'true'], env);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, re);
    };
    await usage(['--warm', 'k'], /--warm needs --ready/);
    await usage(['--ready', 'udp:1'], /unknown probe 'udp'/);
    await usage(['--ready', 'tcp:99999'], /not a TCP port/);
    await usage(['--ready', 'file:relative'], /must be absolute/);
    await usage(['--ready', 'log:('], /not a regular expression/);
    await usage(['--input', '/etc/hostname'], /--input applies to a warm start/);
    await usage(['--warm', 'bad/key', '--ready', 'tcp:1'], /invalid warm key/);
    await usage(['--ready-timeout', '1s'], /no --ready was given/);
  });
});
