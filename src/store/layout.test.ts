import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { withTempDir } from '../testing/processes.js';
import { isFerryError } from '../util/errors.js';
import { ensureIdentity, operationDir, parseManifestText, readIdentity, readManifest, writeManifest } from './layout.js';
import { fakeManifest } from './testing-manifest.js';

describe('store layout', () => {
  it('operationDir: <root>/logs/<kind>-<id>; a path-like id is refused', () => {
    assert.equal(operationDir('/s', 'checkpoint', 'abc-1'), '/s/logs/checkpoint-abc-1');
    assert.throws(() => operationDir('/s', 'restore', '../x'), (e) => isFerryError(e, 'ERR_USAGE'));
  });

  it('writeManifest writes atomically (no temp file left) and reads back valid', async () => {
    await withTempDir('layout', async (dir) => {
      const m = fakeManifest('snap-1', 'disk');
      await writeManifest(dir, m);
      assert.deepEqual(await readdir(dir), ['manifest.json']);
      const r = await readManifest(dir, 'snap-1');
      assert.equal(r.state, 'ok');
      if (r.state === 'ok') assert.deepEqual(r.manifest, JSON.parse(JSON.stringify(m)));
      // refuses to write what would not read back
      await assert.rejects(writeManifest(dir, { ...m, bytes: -1 }), (e) => isFerryError(e, 'ERR_INTERNAL'));
    });
  });

  it('readManifest: absent, missing, not JSON, invalid fields, another id: each a readable reason', async () => {
    await withTempDir('layout', async (dir) => {
      assert.deepEqual(await readManifest(join(dir, 'nope')), { state: 'absent' });
      assert.deepEqual(await readManifest(dir), { state: 'damaged', reason: 'manifest.json is missing' });
      const cases: [string, RegExp][] = [
        ['{garbage', /manifest\.json is not JSON/],
        [JSON.stringify({ ...fakeManifest('a', 'disk'), files: { 'x.img': { size: 1, hash: 'zz' } } }), /invalid: files\.x\.img\.hash: not a hex hash/],
        [JSON.stringify({ ...fakeManifest('a', 'disk'), files: { '../etc': { size: 1, hash: '00' } } }), /invalid: files\.\.\.\/etc/],
        [JSON.stringify({ ...fakeManifest('a', 'disk'), tier: 'cloud' }), /invalid: tier/],
        [JSON.stringify({ ...fakeManifest('a', 'disk'), createdAt: 'yesterday' }), /invalid: createdAt: not a date/],
        [JSON.stringify({ ...fakeManifest('a', 'disk'), target: { kind: 'process' } }), /invalid: target\.pid/],
        [JSON.stringify(fakeManifest('other', 'disk')), /belongs to snapshot 'other'/],
        ['null', /invalid/],
      ];
      for (const [text, reason] of cases) {
        await writeFile(join(dir, 'manifest.json'), text);
        const r = await readManifest(dir, 'a');
        assert.equal(r.state, 'damaged', text);
        if (r.state === 'damaged') assert.match(r.reason, reason);
      }
    });
  });

  it('a manifest keeps fields it does not know; one without algorithm reads as sha256 (it predates the field)', () => {
    const { algorithm: _a, ...old } = fakeManifest('a', 'disk');
    const r = parseManifestText(JSON.stringify({ ...old, futureField: { x: 1 } }));
    assert.equal(r.state, 'ok');
    if (r.state === 'ok') {
      assert.equal(r.manifest.algorithm, 'sha256');
      assert.deepEqual((r.manifest as unknown as { futureField: unknown }).futureField, { x: 1 });
    }
  });

  it('store identity: created once, stable, validated', async () => {
    await withTempDir('layout', async (dir) => {
      const root = join(dir, 'store');
      assert.equal(readIdentity(root), undefined);
      const a = ensureIdentity(root);
      assert.match(a.id, /^[0-9a-f]{16}$/);
      assert.deepEqual(ensureIdentity(root), a);
      assert.deepEqual((await readdir(root)).sort(), ['store.json']);
      await writeFile(join(root, 'store.json'), '{"format":1,"id":"x"}');
      assert.throws(() => readIdentity(root), (e) => isFerryError(e, 'ERR_STORE_CORRUPT') && /store\.json is damaged: id: not a store id/.test(e.message));
      assert.match(await readFile(join(root, 'store.json'), 'utf8'), /"x"/);
    });
  });
});
