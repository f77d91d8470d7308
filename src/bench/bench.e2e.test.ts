// Smoke test of the harness: `ferry bench all --quick --out DIR --json` through the CLI, on real
// CRIU and real workloads. Checks the JSON and the HTML were written with every experiment, and
// that the report renders in headless chromium. No thresholds: only that numbers are numbers.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PROJECT_ROOT } from '../criu/binary.js';
import { EXPERIMENTS } from './experiments.js';
import { isSkipped, type BenchRun } from './harness.js';
import type { MemorySample } from './memory.js';
import { assertChartsRendered, openReport } from './report-check.js';

const ferry = (args: string[], timeout: number): Promise<{ code: number; stdout: string; stderr: string }> =>
  new Promise((resolve) => {
    execFile(join(PROJECT_ROOT, 'bin', 'ferry'), args, { timeout, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });

describe('ferry bench all --quick', () => {
  it('writes a JSON file with every experiment and raw samples, and an HTML report whose charts render', { timeout: 300_000 }, async () => {
    const out = await mkdtemp(join(tmpdir(), 'ferry-test-bench-all-'));
    try {
      const started = Date.now();
      const r = await ferry(['bench', 'all', '--quick', '--json', '--out', out], 280_000);
      assert.equal(r.code, 0, r.stderr.slice(-3000));
      process.stderr.write(`# bench all --quick took ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
      assert.match(r.stderr, /bench: \[\d\d:\d\d\] memory: /, 'progress on stderr');
      const run = JSON.parse(r.stdout) as BenchRun & { files: { json: string; html: string } };
      assert.deepEqual(run.experiments, [...EXPERIMENTS]);
      assert.deepEqual(run.results.map((e) => e.name), [...EXPERIMENTS]);
      for (const k of ['kernel', 'criuVersion', 'hostname'] as const) assert.ok(run.host[k].length > 0, k);
      assert.ok(run.noise.ms.n >= 3 && run.noise.ms.min <= run.noise.ms.max);
      const files = (await readdir(out)).sort();
      assert.equal(files.length, 2, files.join(' '));
      assert.ok(files[0]!.endsWith('.html') && files[1]!.endsWith('.json'));
      const { files: _files, ...written } = run;
      assert.deepEqual(JSON.parse(await readFile(join(out, files[1]!), 'utf8')), written, 'the JSON file is the run');

      for (const e of run.results) {
        if (e.name === 'dedup' && isSkipped(e)) continue; // the lead's dedup bench may not exist yet
        assert.ok(!isSkipped(e), `${e.name} ran`);
        if (isSkipped(e)) continue;
        assert.ok(e.samples.length > 0, `${e.name} has raw samples`);
        assert.ok(e.charts.length > 0, `${e.name} has charts`);
      }
      const mem = run.results.find((e) => e.name === 'memory');
      assert.ok(mem && !isSkipped(mem));
      const samples = mem.samples as MemorySample[];
      assert.deepEqual([...new Set(samples.map((s) => s.arm))].sort(), ['criu-cli', 'ferry-disk', 'ferry-memory']);
      for (const s of samples) {
        assert.ok(s.checkpointMs > 0 && s.restoreMs > 0 && s.imageBytes > s.mib * 2 ** 20 * 0.9, JSON.stringify(s));
        assert.ok(s.frozenMs !== undefined && s.cpuMeanPct !== undefined, 'CRIU stats and host telemetry recorded');
      }
      const html = await openReport(join(out, files[0]!));
      assertChartsRendered(html, run.results.reduce((n, e) => n + (isSkipped(e) ? 0 : e.charts.length), 0));
      const leftovers = (await readdir('/dev/shm')).filter((n) => n.startsWith('ferry-bench-'));
      assert.deepEqual(leftovers, [], 'the bench removes its tmpfs scratch');
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });

  it('refuses an unknown experiment with one line and a hint', async () => {
    const r = await ferry(['bench', 'memroy'], 30_000);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown benchmark 'memroy'/);
    assert.match(r.stderr, /hint: ferry bench memory\|concurrency/);
    assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, 'no stack trace');
  });
});
