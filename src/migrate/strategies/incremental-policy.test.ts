// The incremental strategy's round policy on recorded figures (1 GiB memcheck over the testbed's
// 1 Gbit/s link, and 64 MiB on loopback; bytes as sent, ms as measured).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { INCREMENTAL_LIMITS, incrementalNext, type RoundRecord } from './incremental-policy.js';

const MiB = 2 ** 20;
const r = (mib: number, sendMs: number, frozenMs: number): RoundRecord => ({ bytes: mib * MiB, sendMs, frozenMs });

describe('incremental rounds policy', () => {
  it('always makes a first round', () => {
    assert.equal(incrementalNext([]).again, true);
  });

  it('1 GiB, a steady 5 % dirtied: the whole first round, a second of what changed meanwhile, then the frozen round', () => {
    const rounds = [r(1030, 9400, 520)];
    assert.equal(incrementalNext(rounds).again, true, 'after the whole first round');
    rounds.push(r(52, 480, 510));
    const d = incrementalNext(rounds);
    // 52 MiB after 1030 converges fast (×0.05), but the third round would take ≈ 456 ms off the
    // frozen round and pause the workload ≈ 510 ms: it does not pay.
    assert.equal(d.again, false);
    assert.match(d.because, /does not pay/);
  });

  it('a fast link and a large remainder: rounds go on while they shrink and pay', () => {
    const rounds = [r(1024, 9000, 100), r(300, 2600, 100)];
    const d = incrementalNext(rounds);
    assert.equal(d.again, true, d.because);
    rounds.push(r(90, 800, 100));
    assert.equal(incrementalNext(rounds).again, true);
  });

  it('stops once what is left is small', () => {
    const d = incrementalNext([r(64, 600, 40), r(3.2, 40, 35)]);
    assert.equal(d.again, false);
    assert.match(d.because, /frozen round is short/);
  });

  it('stops when the workload rewrites memory as fast as the rounds move it', () => {
    const d = incrementalNext([r(1024, 9000, 100), r(700, 6100, 100)]);
    assert.equal(d.again, false);
    assert.match(d.because, /as fast as the rounds move it/);
  });

  it('stops at the round limit', () => {
    const rounds = Array.from({ length: INCREMENTAL_LIMITS.maxRounds }, (_, i) => r(1024 / 2 ** i, 9000 / 2 ** i, 10));
    const d = incrementalNext(rounds);
    assert.equal(d.again, false);
    assert.match(d.because, /the limit/);
    assert.equal(incrementalNext(rounds.slice(0, -1)).again, true);
  });

  it('the limits can be changed', () => {
    assert.equal(incrementalNext([r(64, 600, 40)], { maxRounds: 1, bytesLeft: 0, convergence: 0.5 }).again, false);
    assert.equal(incrementalNext([r(64, 600, 40)], { maxRounds: 4, bytesLeft: 128 * MiB, convergence: 0.5 }).again, false);
  });
});
