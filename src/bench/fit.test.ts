import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { linearFit } from './fit.js';

describe('linearFit', () => {
  it('recovers an exact line with R² = 1', () => {
    const f = linearFit([64, 128, 256, 512], [64 * 0.5 + 20, 128 * 0.5 + 20, 256 * 0.5 + 20, 512 * 0.5 + 20]);
    assert.ok(Math.abs(f.slope - 0.5) < 1e-12);
    assert.ok(Math.abs(f.intercept - 20) < 1e-9);
    assert.ok(Math.abs(f.r2 - 1) < 1e-12);
    assert.equal(f.n, 4);
  });
  it('gives R² below 1 for noisy points, and near 0 for no relation', () => {
    const noisy = linearFit([1, 2, 3, 4, 5, 6], [2.1, 3.9, 6.2, 7.8, 10.1, 12.3]);
    assert.ok(noisy.r2 > 0.99 && noisy.r2 < 1, `r2 ${noisy.r2}`);
    assert.ok(Math.abs(noisy.slope - 2.03) < 0.05);
    const none = linearFit([1, 2, 3, 4, 5, 6], [5, 1, 5, 1, 5, 1].map((y, i) => (i % 3 === 0 ? y : 3)));
    assert.ok(none.r2 < 0.3, `r2 ${none.r2}`);
  });
  it('refuses too few points, mismatched lengths and a constant x', () => {
    assert.throws(() => linearFit([1], [1]), /at least 2/);
    assert.throws(() => linearFit([1, 2], [1]), /2 x values but 1/);
    assert.throws(() => linearFit([3, 3, 3], [1, 2, 3]), /same/);
  });
});
