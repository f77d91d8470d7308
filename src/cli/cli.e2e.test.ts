// The ferry command line, run as a user runs it: bin/ferry in a child process.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PROJECT_ROOT } from '../criu/binary.js';
import { withTempDir } from '../testing/processes.js';

const FERRY = join(PROJECT_ROOT, 'bin', 'ferry');

function ferry(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(FERRY, args, { env: { ...process.env, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

interface DoctorJson { ok: boolean; criu: { version: string | null; path: string | null }; checks: { id: string; status: string; remedy?: string }[] }

describe('ferry CLI', () => {
  it('doctor --json: valid JSON, CRIU >= 4.2.0, ok: true, exit 0 — with a real checkpoint/restore', async () => {
    const r = await ferry(['doctor', '--json']);
    const report = JSON.parse(r.stdout) as DoctorJson;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(report.ok, true);
    const [maj, min] = (report.criu.version ?? '0.0').split('.').map(Number);
    assert.ok(maj! > 4 || (maj === 4 && min! >= 2), `CRIU ${report.criu.version}`);
    assert.equal(report.checks.find((c) => c.id === 'self-test')?.status, 'ok');
    assert.equal(report.checks.find((c) => c.id === 'pipe-max-size')?.status, 'ok', 'setup raises fs.pipe-max-size');
  });

  it('doctor with CRIU missing says how to get it and exits non-zero', async () => {
    const r = await ferry(['doctor', '--json'], { FERRY_CRIU: '/nonexistent/criu' });
    assert.notEqual(r.code, 0);
    const report = JSON.parse(r.stdout) as DoctorJson;
    assert.equal(report.ok, false);
    const criu = report.checks.find((c) => c.id === 'criu');
    assert.equal(criu?.status, 'fail');
    assert.match(criu?.remedy ?? '', /make setup/);
  });

  it('doctor with a CRIU older than 4.2 names the version and the remedy, exits non-zero', async () => {
    const r = await ferry(['doctor'], { FERRY_CRIU: join(PROJECT_ROOT, 'test', 'fixtures', 'fake-criu-old.py') });
    assert.equal(r.code, 1);
    assert.match(r.stdout, /FAIL\s+CRIU\s+3\.17\.1 .*too old/);
    assert.match(r.stdout, /make setup/);
  });

  it('a dump of a pid that does not exist: one-line cause, the CRIU log excerpt, exit 1, no stack trace', async () => {
    await withTempDir('cli', async (dir) => {
      const r = await ferry(['criu', 'dump', '--pid', '999999', '--images-dir', dir]);
      assert.equal(r.code, 1);
      const lines = r.stderr.split('\n');
      assert.match(lines[0]!, /^ferry: error: criu dump failed: .*999999.*ESRCH/);
      assert.ok(lines.some((l) => /^\s+\d+ \| .*Error \(/.test(l)), 'numbered log lines');
      assert.match(r.stderr, /full log: .*dump\.log/);
      assert.match(r.stderr, /hint: the process does not exist/);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    });
  });

  it('--json errors are JSON on stdout with a stable code', async () => {
    await withTempDir('cli', async (dir) => {
      const r = await ferry(['criu', 'dump', '--pid', '999999', '--images-dir', dir, '--json']);
      assert.equal(r.code, 1);
      const out = JSON.parse(r.stdout) as { ok: boolean; error: { code: string; errno: string; logPath: string } };
      assert.equal(out.ok, false);
      assert.equal(out.error.code, 'ERR_CRIU_OPERATION');
      assert.equal(out.error.errno, 'ESRCH');
      assert.equal(out.error.logPath, join(dir, 'dump.log'));
    });
  });

  it('bad input is a usage error (exit 2) with a hint, never a stack trace', async () => {
    for (const args of [['frobnicate'], ['criu', 'dump', '--pid', 'abc', '--images-dir', '/tmp'], ['doctor', '--bogus'], ['criu', 'dump']]) {
      const r = await ferry(args);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, /^ferry: error: /, args.join(' '));
      assert.match(r.stderr, /hint: /, args.join(' '));
      assert.doesNotMatch(r.stderr, /\n\s+at /, args.join(' '));
    }
  });

  it('`ferry help VERB` prints the verb\'s help, as `ferry VERB --help` does', async () => {
    const viaHelp = await ferry(['help', 'checkpoint']);
    const viaFlag = await ferry(['checkpoint', '--help']);
    assert.equal(viaHelp.code, 0, viaHelp.stderr);
    assert.match(viaHelp.stdout, /^usage: ferry checkpoint /m);
    assert.equal(viaHelp.stdout, viaFlag.stdout);
    const unknown = await ferry(['help', 'frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command 'frobnicate'/);
  });

  it('criu version and features answer in JSON', async () => {
    const v = JSON.parse((await ferry(['criu', 'version', '--json'])).stdout) as { major: number; text: string };
    assert.ok(v.major >= 4);
    const f = JSON.parse((await ferry(['criu', 'features', '--json'])).stdout) as Record<string, boolean>;
    assert.deepEqual(Object.keys(f).sort(), ['lazyPages', 'memTrack', 'pidfdStore']);
  });
});
