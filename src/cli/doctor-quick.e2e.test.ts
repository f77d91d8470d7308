// `ferry doctor --quick` says what it checked and that it did not try checkpoint/restore.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ferryCli } from '../testing/ferry-cli.js';
import { withTempDir } from '../testing/processes.js';

describe('ferry doctor --quick', () => {
  it('does not claim checkpoint/restore works: the self-test is reported as skipped (text and JSON)', async () => {
    await withTempDir('doctor-quick', async (store) => {
      const j = await ferryCli(store, ['doctor', '--quick', '--json']);
      assert.equal(j.code, 0, j.stderr);
      const report = JSON.parse(j.stdout) as { ok: boolean; selfTest: string; checks: { id: string; status: string; value: string }[] };
      assert.equal(report.selfTest, 'skipped');
      const self = report.checks.find((c) => c.id === 'self-test');
      assert.equal(self?.status, 'warn');
      assert.match(self?.value ?? '', /skipped \(--quick\)/);
      const t = await ferryCli(store, ['doctor', '--quick']);
      assert.equal(t.code, 0, t.stderr);
      assert.doesNotMatch(t.stdout, /checkpoint\/restore works on this host/);
      assert.match(t.stdout, /checkpoint\/restore itself was NOT tried/);
    });
  });
});
