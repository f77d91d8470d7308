// Real round trips with CRIU through ferry's RPC client (needs root and CRIU >= 4.2; you are
// root here, and `make test` installs CRIU first). Set FERRY_RECORD=1 to refresh the replay
// fixtures in test/fixtures/criu/ from these runs.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { PROJECT_ROOT, resolveCriuBinary } from './binary.js';
import { CriuClient } from './client.js';
import { CriuOperationError } from './errors.js';
import { probeKernelFeature } from './kernel-check.js';
import { isHarmlessError } from './log.js';
import { RecordingTransport } from './replay.js';
import { SwrkTransport } from './swrk.js';
import { comm, isAlive, killQuietly, startWorkload, waitFor, withTempDir } from '../testing/processes.js';

const bin = resolveCriuBinary();
const record = process.env['FERRY_RECORD'] === '1';
const fixtures = join(PROJECT_ROOT, 'test', 'fixtures', 'criu');

function recordingClient(): { client: CriuClient; rec: RecordingTransport } {
  if (!bin) throw new Error('CRIU is not installed: run `make setup`');
  const rec = new RecordingTransport(new SwrkTransport(bin.path));
  return { client: new CriuClient({ transport: rec }), rec };
}

/** A python counter: increments in memory, writes the value to a file every 20 ms. */
const COUNTER = `
import sys, time
n = 0
while True:
    n += 1
    with open(sys.argv[1] + '.tmp', 'w') as f:
        f.write(str(n))
    import os; os.replace(sys.argv[1] + '.tmp', sys.argv[1])
    time.sleep(0.02)
`;
const readCounter = (path: string): number => (existsSync(path) ? Number(readFileSync(path, 'utf8')) : 0);

describe('CRIU RPC client against real CRIU', { concurrency: false }, () => {
  const cleanup: (number | undefined)[] = [];
  after(() => cleanup.forEach(killQuietly));

  it('VERSION reports CRIU >= 4.2 and is cached per client', async () => {
    const { client, rec } = recordingClient();
    const v = await client.version();
    assert.ok(v.major > 4 || (v.major === 4 && v.minor >= 2), `CRIU ${v.text} should be >= 4.2`);
    assert.match(v.text, /^\d+\.\d+\.\d+$/);
    await client.version();
    assert.equal(rec.connections.length, 1, 'the second call must come from the cache');
    if (record) await rec.save(join(fixtures, 'version.json'), `VERSION against CRIU ${v.text}`);
  });

  it('FEATURE_CHECK agrees with `criu check --feature`', async () => {
    const { client, rec } = recordingClient();
    const f = await client.features();
    const memTrack = await probeKernelFeature(bin!.path, 'mem_dirty_track');
    const pidfd = await probeKernelFeature(bin!.path, 'pidfd_store');
    assert.equal(f.memTrack, memTrack.supported);
    assert.equal(f.pidfdStore, pidfd.supported);
    assert.equal(typeof f.lazyPages, 'boolean');
    if (record) await rec.save(join(fixtures, 'features.json'), 'FEATURE_CHECK on a kernel without soft-dirty');
  });

  it('CHECK passes on this host', async () => {
    const client = new CriuClient();
    const r = await client.check();
    assert.equal(r.ok, true, `criu check failed: ${r.firstError}`);
  });

  it('DUMP calls the notify handlers in order, then RESTORE brings the process back with its state', async () => {
    await withTempDir('dump', async (dir) => {
      const counterFile = join(dir, 'counter');
      const w = await startWorkload('python3', ['-c', COUNTER, counterFile]);
      cleanup.push(w.pid);
      await waitFor(() => readCounter(counterFile) > 5, 5000, 'the counter to start');
      const { client, rec } = recordingClient();
      const seen: string[] = [];
      const dump = await client.dump({ pid: w.pid, imagesDir: dir }, {
        'pre-dump': () => { seen.push('pre-dump'); },
        'post-dump': () => { seen.push('post-dump'); },
      });
      assert.deepEqual(seen, ['pre-dump', 'post-dump']);
      assert.ok(dump.notifications.includes('query-ext-files'), `notifications: ${dump.notifications.join(',')}`);
      assert.ok(existsSync(dump.logPath) && dump.logPath.endsWith('dump.log'));
      assert.ok(existsSync(join(dir, 'stats-dump')), 'CRIU writes stats-dump after a successful dump');
      await w.exited; // CRIU kills the dumped tree by default
      const atDump = readCounter(counterFile);
      assert.ok(atDump > 5);

      let postRestorePid: number | undefined;
      const restore = await client.restore({ imagesDir: dir }, {
        'post-restore': ({ pid }) => { postRestorePid = pid; },
      });
      cleanup.push(restore.pid);
      assert.equal(postRestorePid, restore.pid, 'post-restore carries the restored root pid');
      assert.ok(restore.notifications.includes('pre-restore'));
      assert.equal(comm(restore.pid), 'python3');
      // Memory state survived: the counter continues from where it was, not from 0.
      await waitFor(() => readCounter(counterFile) > atDump + 3, 5000, 'the restored counter to advance');
      assert.ok(isAlive(restore.pid));
      killQuietly(restore.pid);
      if (record) await rec.save(join(fixtures, 'dump-restore.json'), 'DUMP with pre-dump/post-dump handlers, then RESTORE, of a python counter');
    });
  });

  it('a dump of a pid that does not exist fails with CRIU\'s first error, a log excerpt and a hint', async () => {
    await withTempDir('nopid', async (dir) => {
      const { client, rec } = recordingClient();
      const err = await client.dump({ pid: 999_999, imagesDir: dir }).then(
        () => assert.fail('the dump must fail'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof CriuOperationError, String(err));
      assert.equal(err.code, 'ERR_CRIU_OPERATION');
      assert.equal(err.request, 'DUMP');
      assert.ok(err.firstError && !isHarmlessError(err.firstError), `firstError: ${err.firstError}`);
      assert.match(err.firstError, /999999/);
      assert.ok(err.excerpt.length > 3);
      assert.ok(err.excerpt.some((l) => l.text.includes(err.firstError!)), 'the excerpt shows the first error');
      // The excerpt and the tail together reach the end of the log (the tail never repeats the excerpt).
      assert.match((err.tail.at(-1) ?? err.excerpt.at(-1))!.text, /Dumping FAILED/);
      assert.equal(err.logPath, join(dir, 'dump.log'));
      assert.ok(existsSync(err.logPath));
      assert.match(err.hint ?? '', /does not exist/);
      assert.ok(err.durationMs >= 0);
      assert.match(err.detail ?? '', /full log: /);
      if (record) await rec.save(join(fixtures, 'dump-no-such-pid.json'), 'DUMP of pid 999999, which does not exist');
    });
  });

  it('a failing post-dump handler makes CRIU resume the process instead of killing it', async () => {
    await withTempDir('postdump', async (dir) => {
      const w = await startWorkload('sleep', ['600']);
      cleanup.push(w.pid);
      const client = new CriuClient();
      const err = await client.dump({ pid: w.pid, imagesDir: dir }, {
        'post-dump': () => { throw new Error('destination refused'); },
      }).then(() => assert.fail('the dump must fail'), (e: unknown) => e);
      assert.ok(err instanceof CriuOperationError);
      assert.match(String((err.cause as Error).message), /post-dump handler failed/);
      assert.equal(((err.cause as Error).cause as Error).message, 'destination refused');
      assert.ok(isAlive(w.pid), 'the workload must still run');
      killQuietly(w.pid);
    });
  });

  it('a failing pre-dump handler aborts before freezing; the process keeps running', async () => {
    await withTempDir('predump', async (dir) => {
      const w = await startWorkload('sleep', ['600']);
      cleanup.push(w.pid);
      const client = new CriuClient();
      await assert.rejects(client.dump({ pid: w.pid, imagesDir: dir }, { 'pre-dump': () => { throw new Error('no'); } }), CriuOperationError);
      assert.ok(isAlive(w.pid));
      assert.ok(!existsSync(join(dir, 'stats-dump')), 'no images are written');
      killQuietly(w.pid);
    });
  });

  it('a missing images directory is refused before CRIU runs', async () => {
    const client = new CriuClient();
    await assert.rejects(client.dump({ pid: 999_999, imagesDir: '/nonexistent/ferry' }), { code: 'ERR_BAD_DIRECTORY' });
  });
});
