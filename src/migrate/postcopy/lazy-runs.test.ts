import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { lazyPages, writeLazyFile } from './lazy-runs.js';

describe('the page handler\'s lazy runs', () => {
  it('are written one a line as ferry-uffd reads them (pid, hex address, pages) and counted', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-lazy-runs-'));
    try {
      const runs = [{ pid: 1, vaddr: 0x7f0000001000n, pages: 3 }, { pid: 12, vaddr: 0x55aa00000000n, pages: 262144 }];
      await writeLazyFile(join(dir, 'lazy'), runs);
      assert.equal(await readFile(join(dir, 'lazy'), 'utf8'), '1 7f0000001000 3\n12 55aa00000000 262144\n');
      assert.equal(lazyPages(runs), 262147);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
