import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ALL_AT_ONCE, CONCURRENCY_ARMS, defaultPolicy, percentile, policyArms, scheduledName, STAGGERED_POLICIES, summarizeConcurrency, targets, type ConcurrencySample } from './concurrency.js';

const sample = (arm: string, rep: number, makespanMs: number, frozen: number[]): ConcurrencySample => ({
  arm, n: 4, rep, makespanMs,
  jobs: frozen.map((f, index) => ({ index, latencyMs: makespanMs, startMs: 0, endMs: makespanMs, frozenMs: f, criuMs: undefined })),
});

describe('bench concurrency: summary and targets', () => {
  it('percentile is the nearest rank', () => {
    assert.equal(percentile([5, 1, 3, 2, 4], 0.5), 3);
    assert.equal(percentile(Array.from({ length: 20 }, (_, i) => i + 1), 0.95), 19);
    assert.equal(percentile([7], 0.95), 7);
    assert.ok(Number.isNaN(percentile([], 0.5)));
  });

  it('checks each scheduled arm against all at once: median makespan ratio ≤ 1.05 and p95 frozen ratio ≤ 0.3', () => {
    const s1 = scheduledName({ dumps: 1 });
    const s2 = scheduledName({ dumps: 2 });
    const samples = [
      sample(ALL_AT_ONCE, 0, 1000, [900, 950, 1000, 1000]),
      sample(ALL_AT_ONCE, 1, 1000, [900, 950, 1000, 1000]),
      sample(s1, 0, 1040, [200, 250, 250, 300]),
      sample(s1, 1, 1040, [200, 250, 250, 300]),
      sample(s2, 0, 1100, [200, 250, 250, 300]),
      sample(s2, 1, 1000, [400, 450, 500, 500]),
    ];
    const t = targets(samples, 4, [ALL_AT_ONCE, s1, s2]);
    assert.deepEqual(t, [
      { n: 4, arm: s1, makespanRatio: 1.04, frozenP95Ratio: 0.3, met: true },
      { n: 4, arm: s2, makespanRatio: 1.05, frozenP95Ratio: 0.5, met: false },
    ]);
    const r = summarizeConcurrency(samples, { counts: [4], mib: 1, reps: 2, arms: [CONCURRENCY_ARMS[0]!, { name: s1, run: () => Promise.resolve([]) }, { name: s2, run: () => Promise.resolve([]) }] });
    assert.deepEqual(r.summary['targets'], t);
    assert.equal(r.tables[0]!.rows.length, 3);
    assert.equal(r.tables[0]!.rows[0]![4], 1000, 'p95 frozen of all at once');
  });

  it('the default arms are all at once, one after another and the scheduled default', () => {
    assert.deepEqual(CONCURRENCY_ARMS.map((a) => a.name), [ALL_AT_ONCE, 'one after another', scheduledName(defaultPolicy())]);
  });

  it('the full run measures the staggered policies beside one and two at once, each under its own name', () => {
    assert.equal(scheduledName({ dumps: 2, stagger: 0.7, staggerBy: 'pages' }), 'scheduled, 2 dumps at once, staggered at 70 % of pages');
    assert.equal(scheduledName({ dumps: 2, stagger: 0.5, staggerBy: 'time' }), 'scheduled, 2 dumps at once, staggered at 50 % of time');
    const names = [...CONCURRENCY_ARMS, ...policyArms()].map((a) => a.name);
    for (const p of [{ dumps: 1 }, { dumps: 2 }, ...STAGGERED_POLICIES]) assert.ok(names.includes(scheduledName(p)), scheduledName(p));
    assert.equal(new Set(names).size, names.length, 'no arm twice');
  });
});
