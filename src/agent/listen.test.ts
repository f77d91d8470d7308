import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ferryCli, ferryRefused } from '../testing/ferry-cli.js';
import { isFerryError } from '../util/errors.js';
import { checkListenSafety, DEFAULT_PORT, isLoopback, parseListen } from './listen.js';
import { bearerMatches } from './auth.js';

describe('agent start-up checks', () => {
  it('parses --listen', () => {
    assert.deepEqual(parseListen(undefined), { host: '127.0.0.1', port: DEFAULT_PORT });
    assert.deepEqual(parseListen('0.0.0.0:80'), { host: '0.0.0.0', port: 80 });
    assert.deepEqual(parseListen('[::1]:9000'), { host: '::1', port: 9000 });
    assert.deepEqual(parseListen(':9000'), { host: '127.0.0.1', port: 9000 });
    assert.deepEqual(parseListen('localhost'), { host: 'localhost', port: DEFAULT_PORT });
    for (const bad of ['1.2.3.4:99999', 'a b:1', '1.2.3.4:x', '[::1:80']) assert.throws(() => parseListen(bad), (e) => isFerryError(e, 'ERR_USAGE'), bad);
  });

  it('knows loopback from the rest', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost', '::ffff:127.0.0.1']) assert.equal(isLoopback(h), true, h);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.1', 'example.com', '::ffff:10.0.0.1']) assert.equal(isLoopback(h), false, h);
  });

  it('a non-loopback address without a token refuses to start; with one, or on loopback, it may', () => {
    assert.throws(() => checkListenSafety({ host: '0.0.0.0', port: 1 }, false), (e) => isFerryError(e, 'ERR_LISTEN_UNSAFE'));
    assert.throws(() => checkListenSafety({ host: '::', port: 1 }, false), (e) => isFerryError(e, 'ERR_LISTEN_UNSAFE'));
    checkListenSafety({ host: '0.0.0.0', port: 1 }, true);
    checkListenSafety({ host: '127.0.0.1', port: 1 }, false);
  });

  it('`ferry agent --listen 0.0.0.0:PORT` without --token-file exits 1 with the reason and the remedy', async () => {
    const store = await mkdtemp(join(tmpdir(), 'ferry-agent-cli-'));
    try {
      await ferryRefused(store, ['agent', '--listen', '0.0.0.0:7387'], /refusing to listen on 0\.0\.0\.0:7387 without a token[\s\S]*--token-file/);
    } finally {
      await rm(store, { recursive: true, force: true });
    }
  });

  it('a missing or short token file refuses to start (exit 2, what is wrong with it)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-agent-tok-'));
    try {
      const missing = await ferryCli(dir, ['agent', '--listen', '127.0.0.1:0', '--token-file', join(dir, 'none')]);
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, /^ferry: error: cannot read the token file .*none/);
      await writeFile(join(dir, 'short'), 'abc\n');
      const short = await ferryCli(dir, ['agent', '--listen', '127.0.0.1:0', '--token-file', join(dir, 'short')]);
      assert.equal(short.code, 2);
      assert.match(short.stderr, /shorter than 16 characters/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('compares bearer tokens whole', () => {
    assert.equal(bearerMatches('Bearer abcdefghijklmnop', 'abcdefghijklmnop'), true);
    for (const h of [undefined, '', 'Bearer ', 'Bearer abcdefghijklmno', 'Bearer abcdefghijklmnopq', 'bearer abcdefghijklmnop', 'Basic abcdefghijklmnop', 'Bearer abcdefghijklmnop x']) {
      assert.equal(bearerMatches(h, 'abcdefghijklmnop'), false, String(h));
    }
  });
});
