// The request loop over recorded CRIU exchanges: no root, no CRIU. The fixtures in
// test/fixtures/criu/ were recorded from real runs (client.e2e.test.ts with FERRY_RECORD=1);
// the synthetic ones below cover what a healthy CRIU rarely does.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PROJECT_ROOT } from './binary.js';
import { CriuClient } from './client.js';
import { CriuOperationError, CriuTransportError } from './errors.js';
import { ReplayTransport, type Recording } from './replay.js';
import { withTempDir } from '../testing/processes.js';

const fixtures = join(PROJECT_ROOT, 'test', 'fixtures', 'criu');
const load = (name: string) => ReplayTransport.load(join(fixtures, name));

describe('request loop, replayed from real recordings', () => {
  it('the fixtures exist (recorded from real CRIU runs)', () => {
    const names = readdirSync(fixtures);
    for (const f of ['version.json', 'features.json', 'dump-restore.json', 'dump-no-such-pid.json']) assert.ok(names.includes(f), f);
  });

  it('VERSION', async () => {
    const t = await load('version.json');
    const v = await new CriuClient({ transport: t }).version();
    assert.equal(v.major, 4);
    assert.ok(v.minor >= 2);
    assert.equal(t.remaining, 0);
  });

  it('FEATURE_CHECK on a kernel without soft-dirty', async () => {
    const t = await load('features.json');
    const f = await new CriuClient({ transport: t }).features();
    assert.equal(f.memTrack, false);
    assert.equal(f.lazyPages, true);
  });

  it('DUMP with notifications, then RESTORE', async () => {
    await withTempDir('replay', async (dir) => {
      const t = await load('dump-restore.json');
      const client = new CriuClient({ transport: t });
      const seen: string[] = [];
      const dump = await client.dump({ pid: 1234, imagesDir: dir }, {
        'pre-dump': () => { seen.push('pre-dump'); },
        'post-dump': () => { seen.push('post-dump'); },
      });
      assert.deepEqual(seen, ['pre-dump', 'post-dump']);
      assert.deepEqual(dump.notifications, ['pre-dump', 'query-ext-files', 'post-dump']);
      let restoredPid: number | undefined;
      const restore = await client.restore({ imagesDir: dir }, { 'post-restore': ({ pid }) => { restoredPid = pid; } });
      assert.equal(restore.pid, restoredPid);
      assert.ok(restore.notifications.includes('post-resume'));
      assert.equal(t.remaining, 0);
    });
  });

  it('a failed DUMP becomes a CriuOperationError with the errno name; the harmless rlimit message is not the cause', async () => {
    await withTempDir('replay', async (dir) => {
      const t = await load('dump-no-such-pid.json');
      const err = await new CriuClient({ transport: t }).dump({ pid: 999_999, imagesDir: dir }).catch((e: unknown) => e);
      assert.ok(err instanceof CriuOperationError);
      assert.equal(err.request, 'DUMP');
      assert.equal(err.errno, 'ESRCH');
      assert.match(err.message, /ESRCH: the target process does not exist/);
      assert.doesNotMatch(err.message, /RLIMIT_NOFILE/);
      assert.equal(err.logPath, join(dir, 'dump.log'));
    });
  });

  it('a request that differs from the recording is caught', async () => {
    await withTempDir('replay', async (dir) => {
      const t = await load('dump-restore.json');
      await assert.rejects(
        new CriuClient({ transport: t }).dump({ pid: 1234, imagesDir: dir, leaveRunning: true }),
        (e: unknown) => e instanceof CriuTransportError && /differs from the recording/.test(e.message),
      );
    });
  });
});

/** Builds a one-connection recording: JSON forms of criu_req/criu_resp as protobuf-es writes them. */
function script(messages: Recording['connections'][number]['messages']): ReplayTransport {
  return new ReplayTransport({ about: 'synthetic', connections: [{ messages, end: { exitCode: 0, signal: null, stdout: '', stderr: '' } }] });
}
const dumpRequest = { type: 'DUMP', opts: { imagesDirFd: 0, pid: 1, logLevel: 4, logFile: 'dump.log', notifyScripts: true } };

describe('request loop, synthetic exchanges', () => {
  it('an unknown notify script is refused (ack false) and fails the operation loudly', async () => {
    await withTempDir('replay', async (dir) => {
      const t = script([
        { dir: 'send', request: dumpRequest },
        { dir: 'recv', response: { type: 'NOTIFY', success: true, notify: { script: 'brand-new-script' } } },
        { dir: 'send', request: { type: 'NOTIFY', notifySuccess: false } },
        { dir: 'recv', response: { type: 'DUMP', success: false, crErrno: 0 } },
      ]);
      const err = await new CriuClient({ transport: t }).dump({ pid: 1, imagesDir: dir }, { 'pre-dump': () => undefined })
        .catch((e: unknown) => e);
      assert.ok(err instanceof CriuOperationError);
      assert.equal((err.cause as { code?: string }).code, 'ERR_CRIU_UNKNOWN_NOTIFY');
    });
  });

  it('a handler that throws is answered with notify_success=false', async () => {
    await withTempDir('replay', async (dir) => {
      const t = script([
        { dir: 'send', request: dumpRequest },
        { dir: 'recv', response: { type: 'NOTIFY', success: true, notify: { script: 'post-dump' } } },
        { dir: 'send', request: { type: 'NOTIFY', notifySuccess: false } },
        { dir: 'recv', response: { type: 'DUMP', success: false, crErrno: 0 } },
      ]);
      await assert.rejects(new CriuClient({ transport: t }).dump({ pid: 1, imagesDir: dir }, {
        'post-dump': () => { throw new Error('destination not ready'); },
      }), CriuOperationError);
    });
  });

  it('query-ext-files can answer with external resources', async () => {
    await withTempDir('replay', async (dir) => {
      const t = script([
        { dir: 'send', request: dumpRequest },
        { dir: 'recv', response: { type: 'NOTIFY', success: true, notify: { script: 'query-ext-files' } } },
        { dir: 'send', request: { type: 'NOTIFY', notifySuccess: true, opts: { imagesDirFd: -1, external: ['unix[42]'] } } },
        { dir: 'recv', response: { type: 'DUMP', success: true } },
      ]);
      const r = await new CriuClient({ transport: t }).dump({ pid: 1, imagesDir: dir }, {
        'query-ext-files': () => ({ external: ['unix[42]'] }),
      });
      assert.deepEqual(r.notifications, ['query-ext-files']);
    });
  });

  it('CRIU dying mid-conversation is a transport error, not an operation error', async () => {
    await withTempDir('replay', async (dir) => {
      const t = new ReplayTransport({ about: 'synthetic', connections: [{
        messages: [{ dir: 'send', request: dumpRequest }, { dir: 'eof' }],
        end: { exitCode: null, signal: 'SIGABRT', stdout: '', stderr: 'BUG at criu/mem.c:45' },
      }] });
      const err = await new CriuClient({ transport: t }).dump({ pid: 1, imagesDir: dir }, { 'pre-dump': () => undefined })
        .catch((e: unknown) => e);
      assert.ok(err instanceof CriuTransportError);
      assert.equal(err.code, 'ERR_CRIU_TRANSPORT');
      assert.equal(err.signal, 'SIGABRT');
      assert.match(err.detail ?? '', /BUG at criu\/mem\.c:45/);
    });
  });

  it('a reply of the wrong type is a transport error', async () => {
    const t = script([
      { dir: 'send', request: { type: 'VERSION' } },
      { dir: 'recv', response: { type: 'DUMP', success: true } },
    ]);
    await assert.rejects(new CriuClient({ transport: t }).version(), CriuTransportError);
  });

  it('pre-dump is refused up front when the kernel has no memory tracking', async () => {
    const t = script([
      { dir: 'send', request: { type: 'FEATURE_CHECK', features: { memTrack: true, lazyPages: true, pidfdStore: true } } },
      { dir: 'recv', response: { type: 'FEATURE_CHECK', success: true, features: { memTrack: false, lazyPages: true, pidfdStore: true } } },
    ]);
    await assert.rejects(new CriuClient({ transport: t }).preDump({ pid: 1, imagesDir: '/tmp' }), { code: 'ERR_CRIU_FEATURE' });
  });
});
