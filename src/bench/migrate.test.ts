import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { splitDowntime } from './migrate-ferry.js';
import { migrateResult, summarizeWorkload } from './migrate-report.js';
import { migrateDefaults, type MigrateSample } from './migrate.js';

// A migration job's timeline as h1's agent reported it (64 MiB memcheck on the testbed).
const TIMELINE = [
  { name: 'preflight', startedAt: '2026-12-01T18:01:54.022Z', ms: 57 },
  { name: 'resolve', startedAt: '2026-12-01T18:01:54.090Z', ms: 9 },
  { name: 'criu', startedAt: '2026-12-01T18:01:54.144Z', ms: 1083 },
  { name: 'handoff', startedAt: '2026-12-01T18:01:54.323Z', ms: 896 },
  { name: 'transfer', startedAt: '2026-12-01T18:01:54.323Z', ms: 761 },
  { name: 'restore', startedAt: '2026-12-01T18:01:55.084Z', ms: 135 },
  { name: 'commit', startedAt: '2026-12-01T18:01:55.228Z', ms: 55 },
  { name: 'seal', startedAt: '2026-12-01T18:01:55.229Z', ms: 26 },
];
const RESULT = { downtimeMs: 1014, phases: { preflight: 57, transfer: 761, restore: 135, commit: 55 } };

describe('splitDowntime', () => {
  it('splits the downtime by the job timeline: the steps add up to it', () => {
    const { phases, timeline } = splitDowntime(RESULT, TIMELINE);
    assert.equal(timeline, true);
    // commit ends at 55.283; the freeze was 1014 ms before (54.269); images complete at 54.323.
    assert.equal(phases.dump, 54);
    // handoff ends at 55.219, the commit starts at 55.228.
    assert.equal(phases.sourceEnd, 9);
    assert.deepEqual([phases.transfer, phases.restore, phases.commit, phases.preflight], [761, 135, 55, 57]);
    assert.equal(phases.dump + phases.transfer + phases.restore + phases.sourceEnd + phases.commit + phases.other, 1014);
  });

  it('without a timeline, the dump is what the reported phases leave of the downtime', () => {
    const { phases, timeline } = splitDowntime(RESULT, undefined);
    assert.equal(timeline, false);
    assert.equal(phases.dump, 1014 - 761 - 135 - 55);
    assert.equal(phases.other, 0);
  });
});

const sample = (arm: 'ferry' | 'raw', pair: number, downtimeMs: number, bytes = 64e6): MigrateSample => ({
  workload: 'memcheck', arm, pair, mib: 64, downtimeMs, totalMs: downtimeMs + 100, bytes, verified: 'ok',
  phases: arm === 'ferry'
    ? { preflight: 10, dump: 50, transfer: downtimeMs - 150, restore: 80, sourceEnd: 5, commit: 15, other: 0 }
    : { dump: 70, wire: downtimeMs - 140, restore: 70 },
  ...(arm === 'ferry' ? { cliMs: downtimeMs + 300, leftovers: [] } : { frozenMs: 40 }),
});

describe('summarizeWorkload', () => {
  it('takes the ratio pair by pair and checks it against the target', () => {
    const s = summarizeWorkload([sample('ferry', 0, 1100), sample('raw', 0, 1000), sample('raw', 1, 2000), sample('ferry', 1, 2000)], 'memcheck');
    assert.deepEqual(s.ratio, { median: 1.05, min: 1, max: 1.1, n: 2 });
    assert.equal(s.target.met, true);
    assert.equal(s.downtimeMs.ferry.median, 1550);
    assert.equal(s.ferrySteps.transfer.median, 1400);
    assert.equal(s.rawSteps.wire.median, 1360);
    assert.deepEqual(s.verified, { ferry: 2, raw: 2 });
    assert.equal(s.linkMBps.raw.max, 74.4); // 64 MB in 860 ms
  });

  it('a slower ferry misses the target; a pair with one arm only gives no ratio', () => {
    const s = summarizeWorkload([sample('ferry', 0, 1300), sample('raw', 0, 1000), sample('ferry', 1, 900)], 'memcheck');
    assert.equal(s.ratio.n, 1);
    assert.equal(s.target.met, false);
    assert.equal(summarizeWorkload([], 'redis').target.met, false);
  });
});

describe('migrateResult', () => {
  it('is an experiment with its tables, one chart and every sample', () => {
    const samples = [sample('ferry', 0, 1100), sample('raw', 0, 1000)];
    const r = migrateResult({ ...migrateDefaults(true), workloads: ['memcheck'] }, samples);
    assert.equal(r.name, 'migrate');
    assert.equal(r.samples, samples);
    assert.equal(r.charts.length, 1);
    assert.equal(r.tables[0]!.rows.length, 1);
    assert.equal(r.tables[0]!.rows[0]![3], '1.100 (1.100–1.100)');
    assert.ok(r.tables[1]!.rows.some((row) => row[1] === '= downtime' && row[2] === '1100' && row[3] === '1000'));
  });
});
