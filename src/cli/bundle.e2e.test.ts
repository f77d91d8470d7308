// The bundled CLI (scripts/build-cli.mjs → dist/bundle/ferry.cjs) as bin/ferry runs it: chosen
// only while every file it was built from is unchanged, compiled with V8's code cache, holding
// every verb (one copy of each module per process), and able to checkpoint and restore for real.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PROJECT_ROOT } from '../criu/binary.js';
import { isAlive, killQuietly, waitFor, withTempDir } from '../testing/processes.js';

const FERRY = join(PROJECT_ROOT, 'bin', 'ferry');
const BUNDLE_DIR = join(PROJECT_ROOT, 'dist', 'bundle');
/** One of the bundle's inputs (tsc's output of the `version` verb). */
const INPUT = join(PROJECT_ROOT, 'dist', 'cli', 'commands', 'version.js');

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: { ...process.env, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

async function build(): Promise<void> {
  const r = await run(process.execPath, [join(PROJECT_ROOT, 'scripts', 'build-cli.mjs')]);
  assert.equal(r.code, 0, r.stderr);
}

async function whichBuild(env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await run(FERRY, ['version', '--json'], env);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { build: string }).build;
}

describe('bundled CLI', () => {
  it('bin/ferry runs the bundle when it is fresh, tsc\'s output when asked or when the bundle is stale', async () => {
    await build();
    assert.equal(await whichBuild(), 'bundle');
    assert.equal(await whichBuild({ FERRY_BUNDLE: '0' }), 'dist');
    // tsc re-emitting one of its inputs (someone edited and ran tsc only) makes it stale.
    const st = statSync(INPUT);
    try {
      utimesSync(INPUT, st.atime, new Date(st.mtime.getTime() + 1000));
      assert.equal(await whichBuild(), 'dist');
    } finally {
      utimesSync(INPUT, st.atime, st.mtime); // (to the millisecond: the bundle stays stale)
    }
    await build();
    assert.equal(await whichBuild(), 'bundle', 'rebuilt: the bundle again');
  });

  it('V8 code cache: written at build, a corrupt one is replaced', async () => {
    await build();
    const cache = readdirSync(BUNDLE_DIR).find((f) => f.endsWith('.v8cache'));
    assert.ok(cache, 'build-cli leaves a code cache beside the bundle');
    const cacheFile = join(BUNDLE_DIR, cache);
    writeFileSync(cacheFile, 'not a code cache');
    assert.equal(await whichBuild(), 'bundle', 'a rejected cache is only slower');
    assert.ok(statSync(cacheFile).size > 1000, 'and that run wrote a good one');
  });

  it('every verb is in the bundle, one copy of each module: bench renders with its ES-module-only packages, its errors are FerryErrors', async () => {
    await build();
    // Nothing is loaded from tsc's output beside the bundle (which would be a second copy).
    assert.doesNotMatch(readFileSync(join(BUNDLE_DIR, 'ferry.cjs'), 'utf8'), /\b(?:require|import)\("\.\.?\//);
    await withTempDir('bundle-bench', async (dir) => {
      const runFile = join(dir, 'run.json');
      const chart = { id: 'c', title: 'T', caption: 'C', spec: { data: { values: [{ a: 1, b: 2 }, { a: 2, b: 3 }] }, mark: 'point', encoding: { x: { field: 'a', type: 'quantitative' }, y: { field: 'b', type: 'quantitative' } } } };
      writeFileSync(runFile, JSON.stringify({
        tool: 'ferry bench', format: 1, experiments: ['x'], quick: true, startedAt: '2026-01-01T00:00:00.000Z', durationMs: 1,
        host: { hostname: 't', kernel: '6', arch: 'x64', cpus: 2, cpuModel: 'c', memTotalBytes: 1, node: process.version, criuVersion: '4.2', criuPath: '/c' },
        noise: { what: 'n', ms: { median: 1, min: 1, max: 1, n: 1 }, spreadPct: 0 },
        results: [{ name: 'x', title: 'X', question: 'q', params: {}, durationMs: 1, summary: {}, tables: [], notes: [], charts: [chart] }],
      }));
      for (const env of [{}, { FERRY_CODE_CACHE: '0' }]) {
        assert.equal(await whichBuild(env), 'bundle');
        const out = join(dir, `out${Object.keys(env).length}`);
        const r = await run(FERRY, ['bench', 'report', runFile, '--out', out, '--json'], env);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stderr, '', 'no warnings');
        const html = readFileSync((JSON.parse(r.stdout) as { html: string }).html, 'utf8');
        assert.match(html, /<svg/, 'vega and vega-lite (import()ed by the bundle) drew the chart');
        assert.doesNotMatch(html, /could not be rendered/);
        // A FerryError thrown by bench's modules is recognised by the CLI's boundary (one class).
        const bad = await run(FERRY, ['bench', 'report', join(PROJECT_ROOT, 'package.json')], env);
        assert.equal(bad.code, 2, bad.stderr);
        assert.match(bad.stderr, /^ferry: error: .*package\.json is not a ferry bench result\nhint: /);
      }
    });
  });

  it('checkpoint and restore of a `ferry run` workload through the bundle; errors stay one line', async () => {
    await build();
    await withTempDir('bundle-cli', async (dir) => {
      const env = { FERRY_STORE: join(dir, 'store'), FERRY_MEMORY_TIER: join(dir, 'memory') };
      const started = await run(FERRY, ['run', '--json', '--', 'sleep', '1000'], env);
      assert.equal(started.code, 0, started.stderr);
      const pid = (JSON.parse(started.stdout) as { pid: number }).pid;
      let restored: number | undefined;
      try {
        const c = await run(FERRY, ['checkpoint', String(pid), '--tier', 'memory', '--json'], env);
        assert.equal(c.code, 0, c.stderr);
        const snap = (JSON.parse(c.stdout) as { snapshot: string }).snapshot;
        await waitFor(() => !isAlive(pid), 10_000, `pid ${pid} to exit after the checkpoint`);
        const r = await run(FERRY, ['restore', snap, '--json'], env);
        assert.equal(r.code, 0, r.stderr);
        restored = (JSON.parse(r.stdout) as { pid: number }).pid;
        assert.ok(isAlive(restored), 'the restored tree runs');
        const missing = await run(FERRY, ['restore', 'no-such-snapshot'], env);
        assert.equal(missing.code, 1);
        assert.match(missing.stderr, /^ferry: error: /);
        assert.doesNotMatch(missing.stderr, /\n\s+at /, 'no stack trace');
      } finally {
        killQuietly(pid);
        killQuietly(restored);
      }
    });
  });
});
