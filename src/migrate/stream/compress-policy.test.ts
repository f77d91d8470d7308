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

  it('the policy samples first, measures the link after the first MiBs, then decides once', () => {
    const p = new CompressionPolicy('auto', 2, { sampleBytes: 4, linkFrom: 10, linkBytes: 100, backlog: 1 });
    assert.equal(p.compressing(), true, 'the sample is compressed');
    p.sampled(2, 1, 0.01);
    p.sampled(2, 1, 0.01); // 4 bytes in 0.02 ms: fast compressors
    assert.equal(p.compressing(), false, 'sampled; the link is not measured yet: raw');
    p.sent(10, 0, 0);
    p.sent(50, 0, 1);
    p.sent(50, 10, 2); // backlogged from here
    assert.match(p.report().reason, /too little data/);
    p.sent(50, 10, 500);
    p.sent(50, 10, 1002); // 100 bytes in 1 s behind a backlog: a very slow link
    const r = p.report();
    assert.equal(r.used, true, r.reason);
    assert.equal(p.compressing(), true);
    assert.equal(r.ratio, 0.5);
  });

  it('a link that never backlogs is not the bottleneck: not used', () => {
    const p = new CompressionPolicy('auto', 2, { sampleBytes: 4, linkFrom: 10, linkBytes: 100, backlog: 1 });
    p.sampled(4, 1, 0.01);
    for (let t = 0; t < 100; t++) p.sent(10, 0, t);
    const r = p.report();
    assert.equal(r.used, false);
    assert.match(r.reason, /kept up with the images/);
    assert.equal(r.ratio, 0.25);
  });

  it('forced and off are not measured', () => {
    assert.equal(new CompressionPolicy('forced', 2).compressing(), true);
    assert.equal(new CompressionPolicy('off', 0).compressing(), false);
    assert.match(new CompressionPolicy('off', 0).report().reason, /turned off/);
  });
});
