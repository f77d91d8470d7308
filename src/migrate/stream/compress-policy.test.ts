import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CompressionPolicy, decide } from './compress-policy.js';

describe('stream: when compression pays (recorded figures)', () => {
  it('redis-like data (2:1) on a 1 Gbit/s link with 2 cores: used', () => {
    // Figures measured here: zstd -1 on SHAKE-256 hex pages ≈ 0.52, ≈ 420 MB/s a core; link 117 MB/s.
    const d = decide({ ratio: 0.52, compressMBps: 420, workers: 2, linkMBps: 117 });
    assert.equal(d.used, true);
    assert.ok(d.saving > 0.4 && d.saving < 0.5, String(d.saving));
    assert.match(d.reason, /saves 48 % of the wire time/);
  });
  it('memcheck-like data (pseudo-random pages): not used, the data hardly compresses', () => {
    const d = decide({ ratio: 1, compressMBps: 900, workers: 2, linkMBps: 117 });
    assert.equal(d.used, false);
    assert.match(d.reason, /hardly compresses/);
  });
  it('a fast link (loopback, 10 Gbit/s): compressing is slower than the link', () => {
    const d = decide({ ratio: 0.5, compressMBps: 420, workers: 2, linkMBps: 1200 });
    assert.equal(d.used, false);
    assert.match(d.reason, /compressing is slower than the link/);
  });
  it('one slow core on a slow link still pays when it keeps up', () => {
    assert.equal(decide({ ratio: 0.5, compressMBps: 300, workers: 1, linkMBps: 117 }).used, true);
    // 100 MB/s of compression cannot feed a 117 MB/s link: slower than sending raw.
    assert.equal(decide({ ratio: 0.8, compressMBps: 100, workers: 1, linkMBps: 117 }).used, false);
  });

  it('the policy samples first, measures the link once the dump is complete, then decides once', () => {
    const p = new CompressionPolicy('auto', 2, { sampleBytes: 4, linkFrom: 10, linkBytes: 100 });
    assert.equal(p.compressing(), true, 'the sample is compressed');
    p.sampled(2, 1, 0.01);
    p.sampled(2, 1, 0.01); // 4 bytes in 0.02 ms: fast compressors
    assert.equal(p.compressing(), false, 'sampled; the link is not measured yet: raw');
    p.sent(500, 0); // while CRIU writes: the dump may set the pace, not measured
    assert.match(p.report().reason, /too little data/);
    p.linkOpen();
    p.sent(5, 0.5); // buffered before the link opened: not timed
    p.sent(5, 1); // the window starts here
    p.sent(50, 500);
    assert.equal(p.report().linkMBps, undefined);
    p.sent(50, 1001); // 100 bytes in 1 s: a very slow link
    const r = p.report();
    assert.equal(r.used, true, r.reason);
    assert.equal(p.compressing(), true);
    assert.equal(r.ratio, 0.5);
  });

  it('forced and off are not measured', () => {
    assert.equal(new CompressionPolicy('forced', 2).compressing(), true);
    assert.equal(new CompressionPolicy('off', 0).compressing(), false);
    assert.match(new CompressionPolicy('off', 0).report().reason, /turned off/);
  });
});
