// The memory sample `--strategy auto` takes before the freeze (root: /proc/PID/mem of a running
// workload): a memcheck workload of random pages rewritten at a known rate, and a Python process
// idling on a compressible heap.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { memcheckWorkload } from '../testing/workloads.js';
import { treeRssBytes } from '../targets/process.js';
import { pickPages, sampleMemory, writableRanges } from './memory-sample.js';

describe('memory sample (dirty rate and compressibility, by content)', () => {
  let dir = '';
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'ferry-memsample-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  it('finds writable private mappings and picks pages in proportion to their size', () => {
    const maps = [
      '55d0c0000000-55d0c0001000 r--p 00000000 08:01 123 /usr/bin/x',
      '55d0c0001000-55d0c0003000 rw-p 00001000 08:01 123 /usr/bin/x',
      '7f0000000000-7f0000400000 rw-p 00000000 00:00 0 ',
      '7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]',
      '7ffd00100000-7ffd00102000 r--p 00000000 00:00 0 [vvar]',
    ].join('\n');
    const ranges = writableRanges(maps);
    assert.deepEqual(ranges.map((r) => r.end - r.start), [0x2000, 0x400000]);
    let seed = 1;
    const pages = pickPages(ranges, 200, () => ((seed = (seed * 16807) % 2147483647) / 2147483647));
    assert.equal(pages.length, 200);
    const inSmall = pages.filter((p) => p < 0x7f0000000000).length;
    assert.ok(inSmall <= 3, `the 2-page mapping gets about 2/1026 of the picks, got ${inSmall}`);
    assert.deepEqual(pickPages([], 10), []);
  });

  it('memcheck (random pages, 2000 rewritten a second): incompressible, dirty rate about right', async () => {
    const inst = await memcheckWorkload({ mib: 64, rate: 2000 }).prepare(dir);
    try {
      const child = spawn(inst.command[0]!, inst.command.slice(1), { stdio: 'ignore' });
      await inst.waitReady();
      const rss = await treeRssBytes(child.pid!);
      const s = await sampleMemory(child.pid!, rss, { pages: 2048, intervalMs: 500 });
      child.kill('SIGKILL');
      assert.ok(s, 'sampled');
      assert.ok(s.compressRatio < 1.1, `random data: ratio ${s.compressRatio}`);
      // 2000 pages/s of 4 KiB = 8.2 MB/s; sampling is rough: within a factor of 3.
      assert.ok(s.dirtyBytesPerSec > 8.2e6 / 3 && s.dirtyBytesPerSec < 8.2e6 * 3, `dirty ${s.dirtyBytesPerSec} B/s from ${s.changed}/${s.pages} pages`);
    } finally {
      await inst.cleanup();
    }
  });

  it('an idle process with a hex heap: compressible, nothing rewritten; a gone process gives nothing', async () => {
    const py = spawn('python3', ['-c', 'import os,sys,time\nx=[os.urandom(512).hex() for _ in range(40000)]\nprint("ready",flush=True)\ntime.sleep(60)'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      await new Promise<void>((resolve) => py.stdout.once('data', () => resolve()));
      const s = await sampleMemory(py.pid!, await treeRssBytes(py.pid!), { intervalMs: 300 });
      assert.ok(s, 'sampled');
      assert.ok(s.compressRatio > 1.5, `hex text: ratio ${s.compressRatio}`);
      assert.ok(s.changed <= s.pages * 0.02, `an idle process rewrites (almost) nothing: ${s.changed}/${s.pages}`);
    } finally {
      py.kill('SIGKILL');
    }
    assert.equal(await sampleMemory(2 ** 22 + 1, 1), undefined);
  });
});
