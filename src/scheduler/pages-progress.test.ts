import assert from 'node:assert/strict';
import { appendFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pagesProgress } from './pages-progress.js';

describe('pagesProgress', () => {
  it('is the share of the expected bytes in the pages images, growing as they are appended to', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-test-pages-'));
    try {
      const p = pagesProgress(dir, 1000);
      assert.equal(p(), 0, 'nothing written yet');
      writeFileSync(join(dir, 'pagemap-1.img'), Buffer.alloc(500));
      writeFileSync(join(dir, 'pages-1.img'), Buffer.alloc(300));
      assert.equal(p(), 0.3, 'only pages-N.img count');
      appendFileSync(join(dir, 'pages-1.img'), Buffer.alloc(200));
      writeFileSync(join(dir, 'pages-2.img'), Buffer.alloc(100));
      assert.equal(p(), 0.6);
      writeFileSync(join(dir, 'pages-3.img'), Buffer.alloc(900));
      assert.equal(p(), 1, 'capped at 1 when the estimate was low');
      assert.equal(pagesProgress(join(dir, 'gone'), 1000)(), 0, 'an unreadable dir reads as nothing written');
      assert.equal(pagesProgress(dir, 0)(), 1, 'nothing expected: done');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
