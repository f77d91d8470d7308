import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chooseStrategy, type AutoFacts } from './auto.js';
import { precopyNext } from './precopy-policy.js';

const MiB = 2 ** 20;
const base: AutoFacts = {
  bytes: 1024 * MiB, linkBytesPerSec: 125e6, linkMeasured: false, lazyPages: true, memTrack: false,
  driver: 'process', available: ['cold', 'stream', 'incremental', 'postcopy'],
};

describe('auto strategy choice', () => {
  const cases: { name: string; facts: Partial<AutoFacts>; want: string; says: RegExp }[] = [
    { name: 'runc always cold', facts: { driver: 'runc', dirtyBytesPerSec: 0 }, want: 'cold', says: /runc runs CRIU itself/ },
    { name: 'small workload: cold', facts: { bytes: 16 * MiB }, want: 'cold', says: /cold is already short/ },
    { name: 'small on a slow link is not small', facts: { bytes: 64 * MiB, linkBytesPerSec: 12.5e6, dirtyBytesPerSec: 1e5 }, want: 'incremental', says: /converge/ },
    { name: 'slow dirtier: incremental', facts: { dirtyBytesPerSec: 5 * MiB }, want: 'incremental', says: /rewrites 4 %/ },
    { name: 'fast dirtier: postcopy', facts: { dirtyBytesPerSec: 200 * MiB }, want: 'postcopy', says: /would not converge/ },
    { name: 'unknown dirty rate: postcopy', facts: {}, want: 'postcopy', says: /dirty rate is unknown/ },
    { name: 'no userfaultfd: stream', facts: { lazyPages: false, dirtyBytesPerSec: 200 * MiB }, want: 'stream', says: /overlaps/ },
    { name: 'compressible data is said', facts: { lazyPages: false, compressRatio: 3.2 }, want: 'stream', says: /compresses 3\.2×/ },
    { name: 'only cold built', facts: { available: ['cold'] }, want: 'cold', says: /only strategy available/ },
    { name: 'incremental missing, slow dirtier, no uffd: stream', facts: { available: ['cold', 'stream'], dirtyBytesPerSec: 1e5, lazyPages: false }, want: 'stream', says: /streaming/ },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = chooseStrategy({ ...base, ...c.facts });
      assert.equal(r.strategy, c.want);
      assert.match(r.because, c.says);
    });
  }
  it('never picks a strategy that is not available', () => {
    for (const available of [['cold'], ['cold', 'stream'], ['cold', 'incremental'], ['cold', 'postcopy']] as AutoFacts['available'][]) {
      for (const dirty of [undefined, 0, 1e6, 1e9]) {
        const r = chooseStrategy({ ...base, available, dirtyBytesPerSec: dirty });
        assert.ok(available.includes(r.strategy), `${r.strategy} from ${available.join(',')}`);
      }
    }
  });
});

describe('precopy convergence policy (pages written per pre-dump round)', () => {
  it('goes on while rounds shrink', () => assert.deepEqual(precopyNext([262144, 40000]), { again: true }));
  it('starts with a first round', () => assert.deepEqual(precopyNext([]), { again: true }));
  it('stops once a round is small', () => assert.match(stop(precopyNext([262144, 20000, 3000])), /3000 pages/));
  it('stops when the workload dirties as fast as it is copied', () => assert.match(stop(precopyNext([262144, 90000, 85000])), /as fast as it is copied/));
  it('stops at the round limit', () => assert.match(stop(precopyNext([9e5, 8e5, 6e5, 4e5, 3e5, 2e5, 1.5e5, 1e5])), /8 rounds/));
});

function stop(d: ReturnType<typeof precopyNext>): string {
  assert.equal(d.again, false);
  return d.again ? '' : d.because;
}
