// The HTML report in a real browser: headless Debian chromium opens reports built from every
// experiment's summarizer, and each chart must render with a non-zero box and marks.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CONCURRENCY_ARMS, summarizeConcurrency, type ConcurrencySample } from './concurrency.js';
import type { BenchRun, ExperimentResult } from './harness.js';
import { summarizeMemory, type MemorySample } from './memory.js';
import { assertChartsRendered, openReport } from './report-check.js';
import { renderReport } from './report.js';
import { summarizeWarmstart } from './warmstart.js';

function run(results: BenchRun['results']): BenchRun {
  return {
    tool: 'ferry bench', format: 1, experiments: results.map((r) => r.name), quick: true, startedAt: new Date().toISOString(), durationMs: 1234,
    host: { hostname: 'test', kernel: '6.x', arch: 'x64', cpus: 2, cpuModel: 'cpu', memTotalBytes: 2 ** 34, node: process.version, criuVersion: '4.2.1', criuPath: '/criu' },
    noise: { what: 'dd of 128 MiB into tmpfs, 3 times', ms: { median: 80, min: 60, max: 100, n: 3 }, spreadPct: 50 },
    results,
  };
}

function memorySamples(): MemorySample[] {
  const out: MemorySample[] = [];
  for (const [arm, k] of [['ferry-memory', 1.1], ['ferry-disk', 1.6], ['criu-cli', 1]] as const) {
    for (const mib of [64, 128, 256, 512]) {
      out.push({ arm, mib, rep: 0, checkpointMs: 30 + k * mib, restoreMs: 40 + 0.4 * mib, imageBytes: mib * 2 ** 20, frozenMs: k * mib * 0.8, memdumpMs: 1, memwriteMs: 1, criuRestoreMs: 30, cpuMeanPct: 60, cpuMaxPct: 90, memUsedMaxBytes: 2 ** 31 + mib * 2 ** 21, rssBytes: mib * 2 ** 20 });
    }
  }
  return out;
}

function concurrencySamples(): ConcurrencySample[] {
  return [1, 2, 4].flatMap((n) => CONCURRENCY_ARMS.map((a, i) => ({
    arm: a.name, n, rep: 0, makespanMs: 100 * n * (i ? 1.2 : 1),
    jobs: Array.from({ length: n }, (_, j) => ({ index: j, startMs: i ? j * 100 : 0, endMs: (j + 1) * 100, latencyMs: i ? 100 : 100 * n, frozenMs: i ? 30 : 30 * n, criuMs: 80 })),
  })));
}

describe('bench HTML report in headless chromium', () => {
  let dir: string;
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'ferry-test-report-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  it('renders every chart of every experiment, with marks, and fetches nothing', async () => {
    const results: ExperimentResult[] = [
      summarizeMemory(memorySamples(), { sizesMiB: [64, 128, 256, 512], reps: 1 }),
      summarizeConcurrency(concurrencySamples(), { counts: [1, 2, 4], mib: 256, reps: 1, arms: CONCURRENCY_ARMS }),
      summarizeWarmstart([
        { program: 'redis', rep: 0, order: 'warm-first', coldMs: 2000, warmMs: 300, coldReadyMs: 1900, warmReadyMs: 150, coldCliMs: 3000, warmCliMs: 310, imageBytes: 5e8 },
        { program: 'jvm', rep: 0, order: 'warm-first', coldMs: 3000, warmMs: 500, coldReadyMs: 2900, warmReadyMs: 350, coldCliMs: 3600, warmCliMs: 510, imageBytes: 3e8 },
      ], { redis: '1 key', jvm: '1 entry' }, [], 1),
    ];
    const file = join(dir, 'report.html');
    await writeFile(file, await renderReport(run([...results, { name: 'dedup', skipped: true, reason: 'not built' }])));
    const r = await openReport(file);
    assert.match(r.title, /ferry bench/);
    const expected = results.flatMap((e) => e.charts.map((c) => c.id));
    assert.deepEqual(r.charts.map((c) => c.id), expected);
    assertChartsRendered(r, expected.length);
    for (const c of r.charts) assert.ok(c.width > 100 && c.height > 100, `${c.id} is ${c.width}×${c.height}`);
    assert.deepEqual(r.skipped, ['exp-dedup'], 'a skipped experiment is shown as such');
  });

  it('fails the check when a chart did not render', async () => {
    const broken: ExperimentResult = {
      name: 'broken', title: 'Broken', question: '?', params: {}, durationMs: 0, summary: {}, tables: [], notes: [], samples: [],
      charts: [
        { id: 'empty', title: 'no data', caption: '', spec: { data: { values: [] }, mark: 'point', encoding: { x: { field: 'x', type: 'quantitative' } } } },
        { id: 'invalid', title: 'bad spec', caption: '', spec: { data: { values: [{ x: 1 }] }, mark: 'no-such-mark' } },
      ],
    };
    const file = join(dir, 'broken.html');
    await writeFile(file, await renderReport(run([broken])));
    const r = await openReport(file);
    assert.throws(() => assertChartsRendered(r), (err: Error) => /chart empty: .*0 marks/.test(err.message) && /chart invalid: no SVG/.test(err.message));
  });
});
