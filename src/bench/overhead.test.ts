// Smoke test of `ferry bench overhead`: a tiny size, one pair of each, through the CLI with
// --json and --out. Checks the report's shape and that the figures are numbers; no thresholds.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PROJECT_ROOT } from '../criu/binary.js';
import type { OverheadReport } from './overhead.js';

describe('ferry bench overhead', () => {
  it('reports ratios, added ms and every sample as JSON (tiny size, 1 pair)', async () => {
    const out = await mkdtemp(join(tmpdir(), 'ferry-test-bench-'));
    try {
      const { stdout, stderr } = await new Promise<{ stdout: string; stderr: string }>((resolve, reject) => {
        execFile(join(PROJECT_ROOT, 'bin', 'ferry'), ['bench', 'overhead', '--quick', '--json', '--out', out,
          '--mib', '4', '--reps', '1', '--tiny-reps', '1', '--cli-reps', '1', '--warm-mib', '0'],
        { timeout: 120_000, maxBuffer: 16 << 20 }, (err, so, se) => (err ? reject(new Error(`${err.message}\n${se}`)) : resolve({ stdout: so, stderr: se })));
      });
      assert.match(stderr, /bench: /, 'progress lines go to stderr');
      const r = JSON.parse(stdout) as OverheadReport;
      for (const k of ['host', 'kernel', 'criuVersion'] as const) assert.equal(typeof r[k], 'string', k);
      assert.equal(r.workloadMiB, 4);
      assert.equal(r.reps.engine, 1);
      const pos = (x: unknown, what: string): void => assert.ok(typeof x === 'number' && Number.isFinite(x) && x > 0, `${what} is ${String(x)}`);
      const num = (x: unknown, what: string): void => assert.ok(typeof x === 'number' && Number.isFinite(x), `${what} is ${String(x)}`);
      pos(r.results.engineDumpRatio, 'engineDumpRatio');
      pos(r.results.engineRestoreRatio, 'engineRestoreRatio');
      pos(r.results.engineFrozenRatio, 'engineFrozenRatio');
      pos(r.results.detail['engineRestoreVerifyPagesMs']?.median, 'engineRestoreVerifyPagesMs');
      pos(r.results.nodeStartupMs, 'nodeStartupMs');
      num(r.results.tinyFixedOverheadMs.dump, 'tinyFixedOverheadMs.dump');
      num(r.results.tinyFixedOverheadMs.restore, 'tinyFixedOverheadMs.restore');
      num(r.results.cliAddedMs.dump, 'cliAddedMs.dump');
      num(r.results.cliAddedMs.restore, 'cliAddedMs.restore');
      // 3 phases × 2 arms × (dump, restore) + node start-up + the raw arm's one read of the images
      // (the physical floor of verify-before-restore) in the engine phase.
      assert.equal(r.samples.length, 14);
      assert.equal(r.samples.filter((s) => s.op === 'read').length, 1);
      pos(r.results.detail['engineReadOverRestore']?.median, 'engineReadOverRestore');
      for (const s of r.samples) pos(s.ms, `sample ${JSON.stringify(s)}`);
      const files = await readdir(out);
      assert.equal(files.length, 1);
      assert.match(files[0]!, /^overhead-.*\.json$/);
      assert.deepEqual(JSON.parse(await readFile(join(out, files[0]!), 'utf8')), r);
      const leftovers = (await readdir('/dev/shm')).filter((n) => n.startsWith('ferry-bench-'));
      assert.deepEqual(leftovers, [], 'the bench removes its tmpfs directory');
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});
