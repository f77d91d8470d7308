// The disk cache of facts about a CRIU binary: keyed by the binary's identity, never an error.
import assert from 'node:assert/strict';
import diagnostics_channel from 'node:diagnostics_channel';
import { appendFileSync, copyFileSync, existsSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { cacheBinaryFact, cachedBinaryFact, PROJECT_ROOT } from './binary.js';
import { CriuClient } from './client.js';
import { withTempDir } from '../testing/processes.js';

const FAKE_OLD_CRIU = join(PROJECT_ROOT, 'test', 'fixtures', 'fake-criu-old.py');

describe('CRIU binary facts cache', () => {
  it('remembers a fact per binary and forgets it when the binary changes', async () => {
    await withTempDir('bincache', (dir) => {
      const env = { FERRY_CACHE_DIR: join(dir, 'cache') };
      const bin = join(dir, 'criu');
      writeFileSync(bin, 'one');
      assert.equal(cachedBinaryFact(bin, 'version', env), undefined, 'nothing cached yet');
      cacheBinaryFact(bin, 'version', { text: '4.2.1' }, env);
      assert.deepEqual(cachedBinaryFact(bin, 'version', env), { text: '4.2.1' });
      assert.equal(cachedBinaryFact(bin, 'other', env), undefined);
      // Rebuilt in place: a new mtime, the same size and content.
      utimesSync(bin, new Date(), new Date(Date.now() + 5000));
      assert.equal(cachedBinaryFact(bin, 'version', env), undefined, 'a new mtime is a new binary');
      cacheBinaryFact(bin, 'version', { text: '4.2.1' }, env);
      appendFileSync(bin, 'x');
      assert.equal(cachedBinaryFact(bin, 'version', env), undefined, 'a new size is a new binary');
      assert.equal(cachedBinaryFact(join(dir, 'missing'), 'version', env), undefined);
      return Promise.resolve();
    });
  });

  it('off, unwritable or corrupt: never an error, only "not cached"', async () => {
    await withTempDir('bincache', (dir) => {
      const bin = join(dir, 'criu');
      writeFileSync(bin, 'one');
      for (const off of ['off', '']) {
        cacheBinaryFact(bin, 'version', 1, { FERRY_CACHE_DIR: off });
        assert.equal(cachedBinaryFact(bin, 'version', { FERRY_CACHE_DIR: off }), undefined);
      }
      const unwritable = { FERRY_CACHE_DIR: join(bin, 'not-a-dir') };
      assert.doesNotThrow(() => cacheBinaryFact(bin, 'version', 1, unwritable));
      assert.equal(cachedBinaryFact(bin, 'version', unwritable), undefined);
      const env = { FERRY_CACHE_DIR: join(dir, 'cache') };
      cacheBinaryFact(bin, 'version', 1, env);
      const file = join(dir, 'cache', 'criu-binaries.json');
      writeFileSync(file, '{"truncated": ');
      assert.equal(cachedBinaryFact(bin, 'version', env), undefined, 'a corrupt file reads as empty');
      cacheBinaryFact(bin, 'version', 2, env);
      assert.equal(cachedBinaryFact(bin, 'version', env), 2, 'and the next write repairs it');
      assert.ok(!readFileSync(file, 'utf8').includes('truncated'));
      return Promise.resolve();
    });
  });

  it('CriuClient asks a binary for its VERSION once, then answers from the cache', async () => {
    await withTempDir('bincache', async (dir) => {
      // A private copy of the fake (swrk-speaking) CRIU 3.17.1, so its identity is this test's own.
      const bin = join(dir, 'criu');
      copyFileSync(FAKE_OLD_CRIU, bin);
      const saved = { criu: process.env['FERRY_CRIU'], cache: process.env['FERRY_CACHE_DIR'] };
      process.env['FERRY_CRIU'] = bin;
      process.env['FERRY_CACHE_DIR'] = join(dir, 'cache');
      let starts = 0;
      const onStart = (): void => { starts++; };
      diagnostics_channel.subscribe('ferry:criu:start', onStart);
      try {
        const first = await new CriuClient().version();
        assert.equal(first.text, '3.17.1');
        assert.equal(starts, 1, 'the first client asks CRIU');
        assert.ok(existsSync(join(dir, 'cache', 'criu-binaries.json')));
        const second = await new CriuClient().version();
        assert.deepEqual(second, first);
        assert.equal(starts, 1, 'the second client does not start CRIU');
        await assert.rejects(new CriuClient().requireVersion([4, 2, 0], 'checkpoints'), /CRIU 3\.17\.1 is too old/, 'a cached version is still gated');
        utimesSync(bin, new Date(), new Date(Date.now() + 5000));
        await new CriuClient().version();
        assert.equal(starts, 2, 'a changed binary is asked again');
        process.env['FERRY_CACHE_DIR'] = 'off';
        await new CriuClient().version();
        await new CriuClient().version();
        assert.equal(starts, 4, 'with the cache off, every client asks');
      } finally {
        diagnostics_channel.unsubscribe('ferry:criu:start', onStart);
        for (const [k, v] of [['FERRY_CRIU', saved.criu], ['FERRY_CACHE_DIR', saved.cache]] as const) {
          if (v === undefined) delete process.env[k];
          else process.env[k] = v;
        }
      }
    });
  });
});
