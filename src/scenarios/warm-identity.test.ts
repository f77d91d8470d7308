// What a warm key stands for, and the reasons a run boots cold (no root, no CRIU).
import assert from 'node:assert/strict';
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { identityChanges, runIdentity, type RunSpec } from './warm-identity.js';
import { parseReadyProbe } from './warm-ready.js';

describe('warm identity', () => {
  let dir: string;
  let input: string;
  const spec = (over: Partial<RunSpec> = {}): RunSpec => ({ command: ['/bin/sh', '-c', 'true'], env: { PATH: '/usr/bin:/bin', A: '1' }, cwd: dir, inputs: [input], ...over });
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-warm-id-'));
    input = join(dir, 'data');
    await writeFile(input, 'one');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('the same run has no changes; each kind of change is named', async () => {
    const base = await runIdentity(spec());
    assert.deepEqual(identityChanges(base, await runIdentity(spec())), []);
    assert.deepEqual(identityChanges(base, await runIdentity(spec({ command: ['/bin/sh', '-c', 'false'] }))), ['the arguments changed']);
    assert.deepEqual(identityChanges(base, await runIdentity(spec({ command: ['/bin/dash', '-c', 'true'] }))).filter((c) => c.startsWith('the executable')).length, 1);
    assert.deepEqual(identityChanges(base, await runIdentity(spec({ env: { PATH: '/usr/bin:/bin', A: '2', B: 'x' } }))), ['the environment changed: A (changed), B (added)']);
    assert.deepEqual(identityChanges(base, await runIdentity(spec({ env: { PATH: '/usr/bin:/bin' } }))), ['the environment changed: A (removed)']);
    assert.deepEqual(identityChanges(base, await runIdentity(spec({ cwd: '/' }))), [`the working directory changed (${dir} → /)`]);
    assert.deepEqual(identityChanges(base, await runIdentity(spec({ inputs: [] }))), [`input ${input} is no longer given`]);
  });

  it('shell bookkeeping (_) and ferry\'s own FERRY_* settings are not compared; values are kept as digests only', async () => {
    const a = await runIdentity(spec({ env: { PATH: '/bin', _: '/usr/bin/time', FERRY_STORE: '/a', SECRET: 'hunter2' } }));
    const b = await runIdentity(spec({ env: { PATH: '/bin', _: '/usr/bin/flock', FERRY_STORE: '/b', SECRET: 'hunter2' } }));
    assert.deepEqual(identityChanges(a, b), []);
    assert.ok(!JSON.stringify(a).includes('hunter2'), 'no value in the record');
  });

  it('an input is compared by content: rewritten with other bytes it changed, touched with the same bytes it did not', async () => {
    const base = await runIdentity(spec());
    await writeFile(input, 'two');
    assert.deepEqual(identityChanges(base, await runIdentity(spec(), base)), [`input ${input} changed (its content)`]);
    await writeFile(input, 'one');
    await utimes(input, new Date(), new Date(Date.now() + 5000));
    const again = await runIdentity(spec(), base);
    assert.deepEqual(identityChanges(base, again), []);
    assert.notEqual(again.inputs[0]?.stat, base.inputs[0]?.stat, 're-hashed because its stat moved');
    // Unchanged stat: the recorded digest is trusted (a deliberately wrong one shows it is not re-read).
    const fake = { ...again, inputs: again.inputs.map((i) => ({ ...i, sha256: 'f'.repeat(64) })) };
    assert.equal((await runIdentity(spec(), fake)).inputs[0]?.sha256, 'f'.repeat(64));
  });

  it('refuses a missing input and a command that cannot run', async () => {
    await assert.rejects(runIdentity(spec({ inputs: [join(dir, 'nope')] })), /--input .*nope cannot be read/);
    await assert.rejects(runIdentity(spec({ inputs: [dir] })), /is not a regular file/);
    await assert.rejects(runIdentity(spec({ command: ['/no/such/bin'] })), (e: Error & { code?: string }) => e.code === 'ERR_RUN_EXEC');
  });
});

describe('readiness probes', () => {
  it('parses each kind, and refuses with the reason', () => {
    assert.deepEqual(parseReadyProbe('tcp:6379'), { kind: 'tcp', host: '127.0.0.1', port: 6379 });
    assert.deepEqual(parseReadyProbe('tcp:10.0.0.5:80'), { kind: 'tcp', host: '10.0.0.5', port: 80 });
    assert.deepEqual(parseReadyProbe('file:/run/app/ready'), { kind: 'file', path: '/run/app/ready' });
    assert.deepEqual(parseReadyProbe("cmd:curl -fs localhost:8080/health"), { kind: 'cmd', shell: 'curl -fs localhost:8080/health' });
    const log = parseReadyProbe('log:Ready to accept: (tcp|unix)');
    assert.ok(log.kind === 'log' && log.regex.test('x\nReady to accept: tcp\n'));
    for (const [spec, re] of [['tcp:0', /not a TCP port/], ['tcp:70000', /not a TCP port/], ['file:rel', /absolute/], ['log:', /give a regular expression/], ['log:[', /not a regular expression/], ['cmd: ', /give a shell command/], ['http:80', /unknown probe 'http'/], ['tcp', /not a TCP port/]] as const) {
      assert.throws(() => parseReadyProbe(spec), (e: Error & { code?: string }) => e.code === 'ERR_USAGE' && re.test(e.message), spec);
    }
  });
});
