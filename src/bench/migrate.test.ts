import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { splitDowntime } from './migrate-ferry.js';
import { migrateResult, summarizeCase, targetFor } from './migrate-report.js';
import { parseSizes, parseStrategies } from '../cli/commands/bench-migrate.js';
import { migrateDefaults, type Arm, type MigrateSample } from './migrate.js';

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

const sample = (arm: Arm, pair: number, downtimeMs: number, bytes = 64e6): MigrateSample => ({
  workload: 'memcheck', arm, pair, mib: 64, downtimeMs, totalMs: downtimeMs + 100, bytes, verified: 'ok',
  phases: arm !== 'raw'
    ? { preflight: 50, dump: 100, transfer: downtimeMs - 300, restore: 150, sourceEnd: 10, commit: 40, other: 0 }
    : { dump: 80, wire: 860, restore: 60 },
  ...(arm !== 'raw' ? { cliMs: downtimeMs + 300, leftovers: [], wireBytes: bytes } : { frozenMs: 40 }),
});

describe('summarizeCase', () => {
  it('takes the ratio round by round and checks it against the strategy\'s target', () => {
    const s = summarizeCase([sample('cold', 0, 1100), sample('raw', 0, 1000), sample('raw', 1, 2000), sample('cold', 1, 2000)], 'memcheck', 64, ['cold']);
    const cold = s.arms[0]!;
    assert.deepEqual(cold.ratio, { median: 1.05, min: 1, max: 1.1, n: 2 });
    assert.equal(cold.target?.met, true);
    assert.equal(cold.downtimeMs.median, 1550);
    assert.equal(cold.steps.transfer.median, 1250); // (800 + 1700) / 2
    assert.equal(s.raw.steps.wire.median, 860);
    assert.equal(cold.verified, 2);
    assert.equal(s.raw.verified, 2);
    assert.equal(s.raw.linkMBps.max, 74.4); // 64 MB in 860 ms
  });

  it('a slower arm misses its target; a round with one arm only gives no ratio', () => {
    const s = summarizeCase([sample('cold', 0, 1300), sample('raw', 0, 1000), sample('cold', 1, 900)], 'memcheck', 64, ['cold']);
    assert.equal(s.arms[0]!.ratio.n, 1);
    assert.equal(s.arms[0]!.target?.met, false);
    assert.equal(summarizeCase([], 'redis', 64, ['cold']).arms[0]!.target?.met, false);
  });

  it('holds every strategy to its own target: ratios, or post-copy\'s bound in ms', () => {
    const s = summarizeCase([sample('raw', 0, 1000), sample('stream', 0, 800), sample('incremental', 0, 250), sample('postcopy', 0, 400)], 'memcheck', 64, ['stream', 'incremental', 'postcopy']);
    const by = Object.fromEntries(s.arms.map((a) => [a.strategy, a]));
    assert.equal(by['stream']!.target?.met, true, '0.8 ≤ 0.85');
    assert.equal(by['incremental']!.target?.met, false, '0.25 > 0.2');
    assert.equal(by['postcopy']!.target?.met, false, '400 ms > 300 ms');
    assert.equal(targetFor('stream', 'redis')?.ratio, 0.5, 'compressible data: half');
    assert.equal(targetFor('precopy', 'redis'), undefined);
  });
});

describe('migrateResult', () => {
  it('is an experiment with its tables, one chart and every sample', () => {
    const samples = [sample('cold', 0, 1100), sample('raw', 0, 1000)];
    const r = migrateResult({ ...migrateDefaults(true), strategies: ['cold'], workloads: ['memcheck'] }, samples);
    assert.equal(r.name, 'migrate');
    assert.equal(r.samples, samples);
    assert.equal(r.charts.length, 1);
    assert.equal(r.tables[0]!.rows.length, 1);
    assert.equal(r.tables[0]!.rows[0]![4], '1.100 (1.100–1.100)');
    assert.ok(r.tables[1]!.rows.some((row) => row[1] === '= downtime' && row[2] === '1100' && row[3] === '1000'));
  });
});

describe('bench migrate flags', () => {
  it('sizes take MiB or units', () => {
    assert.deepEqual(parseSizes('256M,1G,4G'), [256, 1024, 4096]);
    assert.deepEqual(parseSizes('64'), [64]);
    assert.throws(() => parseSizes('1T'), /bad size '1T'/);
    assert.throws(() => parseSizes(','), /empty/);
  });
  it('strategies must be built', () => {
    assert.deepEqual(parseStrategies('cold,cold'), ['cold']);
    assert.throws(() => parseStrategies('warp'), /unknown or unavailable strategy 'warp'/);
    assert.deepEqual(parseStrategies('cold,auto'), ['cold', 'auto'], 'auto is an arm: whatever it picks');
    assert.throws(() => parseStrategies('precopy'), /unavailable/, 'precopy only refuses here');
  });
});
