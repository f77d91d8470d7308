// Smoke test of `ferry bench migrate --quick` through the CLI (root, real CRIU, a real testbed):
// 64 MiB memcheck, one sample per arm. Checks the shape of the run, that both arms' copies
// verified on h2 and ferry left no snapshot, and that the testbed is gone afterwards — also when
// the benchmark is interrupted mid-run. No timing assertions: targets live in the benchmark.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { FERRY } from '../testing/ferry-cli.js';
import { testbedDown } from '../testbed/testbed.js';
import { isSkipped, type BenchRun } from './harness.js';
import { BENCH_PREFIX } from './migrate-hosts.js';
import type { CaseSummary } from './migrate-report.js';
import { availableStrategies } from '../migrate/strategies/index.js';
import type { MigrateSample } from './migrate.js';

interface Ran { code: number | null; signal?: NodeJS.Signals | null; stdout: string; stderr: string }

const ferry = (args: string[], timeout: number): Promise<Ran> => new Promise((resolve) => {
  execFile(FERRY, args, { timeout, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
    resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
});

const benchNamespaces = async (): Promise<string[]> => {
  const r = await new Promise<string>((resolve) => execFile('ip', ['netns', 'list'], (_e, out) => resolve(out)));
  return r.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith(BENCH_PREFIX));
};

describe('ferry bench migrate --quick', { timeout: 240_000 }, () => {
  before(async () => {
    // Leftovers of a killed earlier run of this test (its prefix only).
    if ((await benchNamespaces()).length) {
      const dir = await mkdtemp(join(tmpdir(), 'ferry-tbb-clean-'));
      await testbedDown({ dir, prefix: BENCH_PREFIX });
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('moves 64 MiB memcheck once each way, both copies verified, and leaves nothing behind', async () => {
    const out = await mkdtemp(join(tmpdir(), 'ferry-test-bench-migrate-'));
    try {
      // Every strategy built here (the default), each once: the quick smoke of each.
      const r = await ferry(['bench', 'migrate', '--quick', '--workload', 'memcheck', '--json', '--out', out], 300_000);
      assert.equal(r.code, 0, r.stderr.slice(-3000));
      const run = JSON.parse(r.stdout) as BenchRun & { files: { json: string; html: string } };
      assert.deepEqual(run.experiments, ['migrate']);
      const e = run.results[0];
      assert.ok(e && !isSkipped(e), 'migrate ran');
      assert.deepEqual(e.params['workloads'], ['memcheck']);
      assert.deepEqual(e.params['sizes'], [64]);
      assert.deepEqual(e.params['strategies'], [...availableStrategies(), 'auto']);
      const samples = e.samples as MigrateSample[];
      assert.deepEqual(samples.map((s) => s.arm).sort(), ['raw', 'auto', ...availableStrategies()].sort());
      for (const s of samples) {
        assert.equal(s.workload, 'memcheck');
        assert.match(s.verified, /pages=16384 bad_pages=0/, `${s.arm}: every page of the moved copy verified`);
        assert.ok(s.downtimeMs > 0 && s.bytes > 64 * 2 ** 20 * 0.9, JSON.stringify(s));
        const steps = Object.values(s.phases);
        assert.ok(steps.length >= 3 && steps.every((v) => Number.isFinite(v)), JSON.stringify(s.phases));
      }
      const f = samples.find((s) => s.arm === 'cold')!;
      assert.deepEqual(f.leftovers, [], 'ferry left no snapshot on either host');
      assert.equal(f.timeline, true, 'the downtime was split by the agent\'s job timeline');
      const raw = samples.find((s) => s.arm === 'raw')!;
      assert.deepEqual(Object.keys(raw.phases).sort(), ['dump', 'restore', 'wire']);
      assert.ok(raw.frozenMs !== undefined && raw.frozenMs > 0, 'CRIU\'s frozen time read');
      const sum = (e.summary as Record<string, CaseSummary>)['memcheck-64']!;
      assert.equal(sum.raw.verified, 1);
      for (const a of sum.arms) {
        assert.equal(a.verified, 1, a.strategy);
        assert.equal(a.ratio.n, 1, a.strategy);
        assert.ok(Number.isFinite(a.ratio.median), a.strategy);
        if (a.strategy !== 'auto') assert.equal(typeof a.target?.met, 'boolean', a.strategy);
      }
      for (const s of samples.filter((x) => x.arm !== 'raw')) assert.deepEqual(s.leftovers, [], `${s.arm} left no snapshot on either host`);
      const auto = sum.arms.find((x) => x.strategy === 'auto')!;
      assert.equal(auto.picked.length, 1, 'the auto arm says what it picked');
      assert.ok((availableStrategies() as string[]).includes(auto.picked[0]!.strategy) && auto.picked[0]!.because.length > 0, JSON.stringify(auto.picked));
      assert.ok(e.tables.some((t) => t.title.startsWith('What auto picked') && t.rows.length === 1), 'the report shows auto\'s choice');
      for (const s of samples) assert.ok(s.cpuS && s.cpuS.machine > 0 && (s.arm === 'raw' || (s.cpuS.source ?? 0) > 0), `${s.arm}: CPU measured: ${JSON.stringify(s.cpuS)}`);
      const files = (await readdir(out)).sort();
      assert.equal(files.length, 2, files.join(' '));
      assert.match(await readFile(run.files.html, 'utf8'), /data-chart="migrate-downtime"/);
      assert.deepEqual(await benchNamespaces(), [], 'the testbed is down');
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });

  it('an interrupt mid-run takes the testbed down and exits non-zero', async () => {
    const out = await mkdtemp(join(tmpdir(), 'ferry-test-bench-migrate-'));
    try {
      const child = spawn(FERRY, ['bench', 'migrate', '--strategies', 'cold', '--quick', '--workload', 'memcheck', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      const ended = new Promise<Ran>((resolve) => child.once('close', (code, signal) => resolve({ code, signal, stdout: '', stderr })));
      const watchdog = setTimeout(() => child.kill('SIGKILL'), 120_000);
      child.stderr.on('data', (d: Buffer) => {
        const before = stderr;
        stderr += d.toString();
        // While `ferry migrate` runs (a job on h1's agent; the arm is named after its strategy).
        if (!/cold: moving/.test(before) && /cold: moving/.test(stderr)) setTimeout(() => child.kill('SIGINT'), 300);
      });
      const r = await ended;
      clearTimeout(watchdog);
      assert.notEqual(r.code, 0, r.stderr);
      assert.match(r.stderr, /SIGINT received/);
      assert.match(r.stderr, /interrupted/);
      assert.deepEqual(await benchNamespaces(), [], `the testbed is down:\n${r.stderr}`);
      assert.deepEqual(await readdir(out).catch(() => []), [], 'no result written');
      const shm = (await readdir('/dev/shm')).filter((n) => n.startsWith('ferry-bench-'));
      assert.deepEqual(shm, [], 'the bench removed its tmpfs scratch');
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});
