// The incremental strategy's round policy on recorded figures (1 GiB memcheck over the testbed's
// 1 Gbit/s link: bytes as sent, ms as measured) and on constructed cases for each limit.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { INCREMENTAL_LIMITS, incrementalNext, type RoundRecord } from './incremental-policy.js';

const MiB = 2 ** 20;
const r = (mib: number, sendMs: number, frozenMs: number): RoundRecord => ({ bytes: mib * MiB, sendMs, frozenMs });

describe('incremental rounds policy', () => {
  it('always makes a first round', () => {
    assert.equal(incrementalNext([]).again, true);
  });

  it('recorded: 1 GiB memcheck rewriting 1000 pages/s, testbed 1 Gbit/s — a whole first round, a second of what changed, then the freeze', () => {
    // `ferry bench migrate --strategies incremental --sizes 1G --runs 1` (two runs, details.rounds).
    for (const run of [
      [{ bytes: 1079113588, sendMs: 10429, frozenMs: 879 }, { bytes: 55600859, sendMs: 536, frozenMs: 552 }],
      [{ bytes: 1079113570, sendMs: 13348, frozenMs: 943 }, { bytes: 68423329, sendMs: 927, frozenMs: 1040 }],
    ]) {
      assert.equal(incrementalNext(run.slice(0, 1)).again, true, 'after the whole first round');
      const d = incrementalNext(run);
      // ×0.05 converges, but a third round would take ≈ 0.5–0.9 s off the frozen round and pause
      // the workload as long again: it does not pay.
      assert.equal(d.again, false);
      assert.match(d.because, /does not pay/);
    }
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
