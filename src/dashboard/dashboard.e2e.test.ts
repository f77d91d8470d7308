// The dashboard in a real browser (Debian's Chromium through playwright-core, as the bench report's
// test), on a real testbed (root, real CRIU): h1's agent serves the page; the browser runs inside
// h1's network namespace (the machine's own namespace has no route to the testbed). Without the
// token the page shows nothing and does nothing; with it: the hosts, a `ferry run` memcheck
// checkpointed from the page with its phases streaming in, its snapshot listed and deleted, then
// migrated to h2 from the page after the preflight's verdict, the timeline ending in commit and
// the workload verified on h2. Last, h1's agent is stopped: the page says it is unreachable.
// Screenshots of each view (1280×800) go to $FERRY_TEST_OUTPUT/dashboard, else dist/test-output/dashboard.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { CHROMIUM } from '../bench/report-check.js';
import { PROJECT_ROOT } from '../criu/binary.js';
import { FERRY } from '../testing/ferry-cli.js';
import { memcheckWorkload, type WorkloadInstance } from '../testing/workloads.js';
import { netnsPath } from '../testbed/netns.js';
import { hostNetnsOf } from '../testbed/plan.js';
import { isSameProcess, processStartTime } from '../testbed/proc.js';
import { testbedDown, testbedUp, type UpResult } from '../testbed/testbed.js';

const PREFIX = 'ferry-dash-';
const OUT = join(process.env['FERRY_TEST_OUTPUT'] ?? join(PROJECT_ROOT, 'dist', 'test-output'), 'dashboard');

interface Ran { code: number; stdout: string; stderr: string }

describe('the dashboard in Chromium on the testbed: sign-in, checkpoint, snapshots, migrate h1 → h2', { timeout: 240_000 }, () => {
  let dir = '';
  let tb: UpResult | undefined;
  let token = '';
  let context: BrowserContext | undefined;
  let inst: WorkloadInstance | undefined;
  const env = () => ({ ...process.env, FERRY_TESTBED_DIR: dir, FERRY_TESTBED_PREFIX: PREFIX });
  const on = (host: string, cmd: string[]): Promise<Ran> => new Promise((resolve) => {
    // (FERRY_AGENT cleared: these run on the host itself, not through its agent)
    execFile(FERRY, ['testbed', 'exec', host, '--', 'env', 'FERRY_AGENT=', ...cmd], { env: env(), timeout: 60_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
  const ok = async (host: string, cmd: string[]): Promise<string> => {
    const r = await on(host, cmd);
    assert.equal(r.code, 0, `${host}: ${cmd.join(' ')}\n${r.stdout}${r.stderr}`);
    return r.stdout;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), PREFIX));
    await rm(OUT, { recursive: true, force: true });
    await mkdir(OUT, { recursive: true });
    tb = await testbedUp({ dir, prefix: PREFIX, hosts: 2 });
    token = (await readFile(tb.token, 'utf8')).split('\n')[0]!.trim();
    inst = await memcheckWorkload({ mib: 96, seed: 7 }).prepare(join(dir, 'w'));
    await ok('h1', [FERRY, 'run', '--name', 'mc', '--json', '--', ...inst.command]);
    await inst.waitReady();
    // Chromium inside h1's network namespace (nsenter --net only, as `ferry testbed exec`).
    const wrapper = join(dir, 'chromium-in-h1');
    await writeFile(wrapper, `#!/bin/sh\nexec nsenter --net=${netnsPath(hostNetnsOf(PREFIX, 'h1'))} -- ${CHROMIUM} "$@"\n`);
    await chmod(wrapper, 0o755);
    context = await chromium.launchPersistentContext(join(dir, 'profile'), {
      executablePath: wrapper, headless: true, viewport: { width: 1280, height: 800 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });

  after(async () => {
    await context?.close().catch(() => undefined);
    if (tb) await testbedDown({ dir, prefix: PREFIX });
    await rm(dir, { recursive: true, force: true });
  });

  /** A screenshot into the output directory, after checking the view fits 1280 px (no sideways scrolling). */
  const shot = async (page: Page, name: string, fullPage = false) => {
    const width = await page.evaluate<number>('document.documentElement.scrollWidth');
    assert.ok(width <= 1280, `${name}: the page is ${width} px wide at a 1280 px viewport`);
    await page.screenshot({ path: join(OUT, `${name}.png`), fullPage });
  };
  /** Every form control of the page has a label (its own <label> or an aria-label). */
  const unlabelled = (page: Page) => page.evaluate<string[]>(`Array.from(document.querySelectorAll('input, select, textarea'))
    .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')).map((el) => el.outerHTML.slice(0, 80))`);

  it('refuses without the token, then checkpoints and migrates from the page; says when the agent is unreachable', async (t) => {
    const h1 = tb!.hosts.find((h) => h.name === 'h1')!;
    const page = await context!.newPage();
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    // Every phase and state the page ever shows, recorded as it appears (the stream, not only its end;
    // 96 MiB makes CRIU's phase long enough that it is on screen while it runs).
    await page.addInitScript(`window.__seen = [];
      new MutationObserver(() => {
        for (const el of document.querySelectorAll('li[data-phase]')) {
          const s = el.getAttribute('data-phase') + ':' + el.getAttribute('data-state');
          if (window.__seen[window.__seen.length - 1] !== s && !window.__seen.includes(s)) window.__seen.push(s);
        }
      }).observe(document, { subtree: true, childList: true, attributes: true });`);

    // Without the token: only the sign-in form; the API refuses the page's own unauthenticated call.
    await page.goto(`${h1.agent}/`);
    await page.getByLabel('Agent token').waitFor();
    assert.equal(await page.getByRole('navigation').count(), 0, 'no views without the token');
    assert.equal(await page.getByRole('button', { name: /Checkpoint|Migrate|Delete|Restore/ }).count(), 0, 'no actions without the token');
    assert.equal(await page.evaluate<number>(`fetch('/v1/workloads').then((r) => r.status)`), 401);
    assert.deepEqual(await unlabelled(page), []);
    await shot(page, '01-sign-in');
    await page.getByLabel('Agent token').fill('not-the-token-of-this-agent');
    await page.getByRole('button', { name: 'Open the dashboard' }).click();
    const refused = page.getByRole('alert');
    await refused.waitFor();
    assert.match(await refused.innerText(), /ERR_UNAUTHORIZED: missing or wrong bearer token\s+hint: send Authorization: Bearer/);
    assert.equal(await page.getByRole('navigation').count(), 0);
    await shot(page, '02-wrong-token');

    // With it: the hosts (this agent and its peer, both up).
    await page.getByLabel('Agent token').fill(token);
    await page.getByRole('button', { name: 'Open the dashboard' }).click();
    await page.getByRole('heading', { name: 'Hosts' }).waitFor();
    await page.locator('tr[data-host="h2"]').waitFor();
    assert.match(await page.locator('tr[data-host="h1"]').innerText(), /h1\s+this agent.*up/s);
    assert.match(await page.locator('tr[data-host="h2"]').innerText(), /up/);
    assert.equal(await page.evaluate<string | null>(`sessionStorage.getItem('ferry.dashboard.token')`), token, 'kept in the tab');
    await shot(page, '03-hosts');

    // Keyboard: the views are links in order; Enter opens one; a dialog takes the focus and Escape closes it.
    await page.getByRole('link', { name: 'Workloads' }).focus();
    await page.keyboard.press('Enter');
    const row = page.locator('tr[data-workload="mc"]');
    await row.waitFor();
    assert.match(await row.innerText(), /running/, 'the state is a word, not a colour only');
    await shot(page, '04-workloads');
    await page.getByRole('button', { name: 'Checkpoint mc' }).focus();
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog', { name: 'Checkpoint mc' });
    await dialog.waitFor();
    assert.equal(await page.evaluate<boolean>(`!!document.activeElement && !!document.activeElement.closest('dialog')`), true, 'focus moved into the dialog');
    assert.deepEqual(await unlabelled(page), []);
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });

    // Checkpoint from the page (leave it running): the job's phases stream in, then its result and charts.
    await page.getByRole('button', { name: 'Checkpoint mc' }).click();
    await dialog.getByLabel('Leave the workload running', { exact: false }).check();
    await shot(page, '05-checkpoint-dialog');
    await dialog.getByRole('button', { name: 'Checkpoint', exact: true }).click();
    await page.waitForURL(/#jobs\/j-[0-9a-f]{16}$/);
    const jobId = /#jobs\/(j-[0-9a-f]{16})$/.exec(page.url())![1]!;
    const detail = page.locator('.detail');
    await detail.locator('.state-succeeded, .state-failed').first().waitFor({ timeout: 60_000 });
    assert.match(await detail.locator('h3').innerText(), /checkpoint j-[0-9a-f]{16}\s+✔ succeeded/, await detail.innerText());
    const seen = await page.evaluate<string[]>('window.__seen');
    assert.ok(seen.some((s) => s.endsWith(':running')), `a phase was shown running before it ended: ${seen.join(', ')}`);
    assert.ok(seen.includes('criu:done'), `CRIU's phase ended: ${seen.join(', ')}`);
    assert.match(await detail.locator('[data-fact="frozen"]').innerText(), /^\d+(\.\d)? (ms|s)$/);
    for (const id of ['timeline', 'cpu', 'memory', 'phases']) {
      const marks = detail.locator(`figure[data-chart="${id}"] svg g.role-mark > *`);
      await marks.first().waitFor({ timeout: 15_000 });
      assert.ok(await marks.count() > 0, `chart ${id} has marks`);
    }
    const job = await page.evaluate<{ result: { snapshot: string } }>(`fetch('/v1/jobs/${jobId}', { headers: { authorization: 'Bearer ' + sessionStorage.getItem('ferry.dashboard.token') } }).then((r) => r.json()).then((b) => b.job)`);
    const snapshot = job.result.snapshot;
    await shot(page, '06-job', true);

    // Snapshots: the new one in its chain; deleted from the page behind a confirmation.
    await page.getByRole('link', { name: 'Snapshots' }).click();
    const snapRow = page.locator(`tr[data-snapshot="${snapshot}"]`);
    await snapRow.waitFor();
    assert.match(await snapRow.innerText(), /mc\s+disk\s+[\d.]+ MiB/);
    await shot(page, '07-snapshots');
    // Restored from the page as a second workload (its own pid namespace: the first runs on), then the snapshot deleted.
    await page.getByRole('button', { name: `Restore ${snapshot}` }).click();
    const rdialog = page.getByRole('dialog', { name: `Restore ${snapshot}` });
    await rdialog.getByLabel('Restore as workload name', { exact: false }).fill('mc2');
    await rdialog.getByRole('button', { name: 'Restore', exact: true }).click();
    await page.waitForURL(/#jobs\/j-[0-9a-f]{16}$/);
    await detail.locator('.state-succeeded, .state-failed').first().waitFor({ timeout: 60_000 });
    assert.match(await detail.locator('h3').innerText(), /restore j-[0-9a-f]{16}\s+✔ succeeded/, await detail.innerText());
    const restoredPid = Number(await detail.locator('[data-fact="restored-pid"]').innerText());
    assert.ok(restoredPid > 0);
    assert.match(await inst!.verify(restoredPid), /bad_pages=0/, 'the restored copy verifies');
    await page.getByRole('link', { name: 'Snapshots' }).click();
    await snapRow.waitFor();
    await page.getByRole('button', { name: `Delete ${snapshot}` }).click();
    await page.getByRole('dialog', { name: `Delete ${snapshot}` }).getByRole('button', { name: 'Delete', exact: true }).click();
    await page.getByRole('status').filter({ hasText: `Deleted ${snapshot}` }).waitFor();
    await snapRow.waitFor({ state: 'detached' });

    // Migrate to h2 from the page: the preflight's verdict first (nothing frozen), then the migration live to its commit.
    // First h2 refuses (a workload of the same name runs there): the destination's reason and hint, no migration possible.
    const blocker = await memcheckWorkload({ mib: 4, seed: 9 }).prepare(join(dir, 'blocker'));
    await ok('h2', [FERRY, 'run', '--name', 'mc', '--json', '--', ...blocker.command]);
    await page.getByRole('link', { name: 'Workloads' }).click();
    await page.getByRole('button', { name: 'Migrate mc', exact: true }).click();
    const mdialog = page.getByRole('dialog', { name: 'Migrate mc', exact: true });
    await mdialog.getByLabel('Destination', { exact: true }).locator('option[value="h2"]').waitFor({ state: 'attached' });
    assert.equal(await mdialog.getByRole('button', { name: 'Migrate now' }).isDisabled(), true, 'no migration before the preflight');
    await mdialog.getByRole('button', { name: /Run preflight/ }).click();
    const refusal = mdialog.getByRole('alert');
    await refusal.waitFor({ timeout: 30_000 });
    assert.match(await refusal.innerText(), /Preflight refused ERR_MIGRATE_REFUSED: the destination refused: a workload named 'mc' already runs here \(pid \d+\)\s+hint: stop it there first/);
    assert.equal(await mdialog.getByRole('button', { name: 'Migrate now' }).isDisabled(), true, 'no migration after a refusal');
    await shot(page, '08-migrate-refused');
    await ok('h2', [FERRY, 'stop', 'mc']);
    await mdialog.getByRole('button', { name: /Run preflight/ }).click();
    const verdict = mdialog.getByRole('status');
    await verdict.waitFor({ timeout: 30_000 });
    // (auto, the default, names the strategy it picked and why)
    assert.match(await verdict.innerText(), /Preflight passed: h2 \(.+\) can take pid \d+ \(memcheck\).*Strategy \w+: .+About [\d.]+ MiB to move.*Nothing was frozen/s);
    assert.deepEqual(await unlabelled(page), []);
    await shot(page, '09-migrate-dialog');
    await mdialog.getByRole('button', { name: 'Migrate now' }).click();
    await page.waitForURL(/#migration\/j-[0-9a-f]{16}$/);
    const outcome = page.locator('[data-outcome]');
    await page.locator('[data-outcome="committed"], [data-outcome="rolled back"], [data-outcome="uncertain"]').waitFor({ timeout: 90_000 });
    assert.equal(await outcome.getAttribute('data-outcome'), 'committed', await page.locator('.detail').innerText());
    const text = await outcome.innerText();
    const h2 = tb!.hosts.find((h) => h.name === 'h2')!;
    const where = /runs on .+ \((http:\/\/[^)]+)\), pid (\d+)/.exec(text);
    assert.equal(where?.[1], h2.agent, text);
    const pid = Number(where?.[2]);
    assert.ok(pid > 0, text);
    assert.match(await page.locator('[data-fact="downtime"]').innerText(), /^\d+(\.\d)? (ms|s)$/);
    assert.match(await page.locator('[data-fact="bytes"]').innerText(), /MiB/);
    assert.match(await page.locator('[data-fact="strategy"]').innerText(), /^\w+ — .+/);
    const phases = await page.evaluate<string[]>(`Array.from(document.querySelectorAll('.detail li[data-phase]')).map((e) => e.getAttribute('data-phase') + ':' + e.getAttribute('data-state'))`);
    assert.deepEqual(phases.filter((p) => ['preflight', 'transfer', 'restore', 'commit'].includes(p.split(':')[0]!)), ['preflight:done', 'transfer:done', 'restore:done', 'commit:done'], phases.join(', '));
    await page.locator('figure[data-chart="migration-timeline"] svg g.role-mark > *').first().waitFor({ timeout: 15_000 });
    await shot(page, '10-migration', true);

    // The workload runs on h2, its memory intact; h1 has it no more.
    const ps2 = JSON.parse(await ok('h2', [FERRY, 'ps', '--json'])) as { workloads: { name: string; state: string; pid: number }[] };
    assert.deepEqual(ps2.workloads.filter((w) => w.name === 'mc').map((w) => [w.state, w.pid]), [['running', pid]]);
    // (verify rejects on a bad page; the same instance id: the migrated process, not a restarted one)
    const verified = await inst!.verify(pid);
    assert.match(verified, /bad_pages=0 .*instance=(\w+)/);
    assert.equal(/instance=(\w+)/.exec(verified)?.[1], inst!.readyInfo()['instance']);
    const ps1 = JSON.parse(await ok('h1', [FERRY, 'ps', '--json'])) as { workloads: { name: string; state: string }[] };
    assert.notEqual(ps1.workloads.find((w) => w.name === 'mc')?.state, 'running');

    // The token never left the header: not in a URL, not in the agent's log.
    assert.ok(requests.length > 10);
    assert.deepEqual(requests.filter((u) => u.includes(token)), []);
    assert.ok(!(await readFile(join(dir, 'hosts', 'h1', 'agent.log'), 'utf8')).includes(token), 'the token is not in the agent log');

    // The agent goes away: the page says so, with the code and hint the CLI gives.
    const start = await processStartTime(h1.agentPid);
    process.kill(h1.agentPid, 'SIGTERM');
    for (const end = Date.now() + 15_000; start !== undefined && await isSameProcess(h1.agentPid, start) && Date.now() < end;) await new Promise((r) => setTimeout(r, 50));
    await page.getByRole('button', { name: 'Refresh' }).click();
    const gone = page.getByRole('alert').filter({ hasText: 'The agent does not answer' });
    await gone.waitFor({ timeout: 15_000 });
    assert.match(await gone.innerText(), /ERR_AGENT_UNREACHABLE: cannot reach the agent at http:\/\/[\d.]+:7387: .*\s+hint: is `ferry agent` running there/s);
    await shot(page, '11-unreachable');
    assert.deepEqual(pageErrors, [], 'no uncaught error in the page');
    t.diagnostic(`screenshots in ${OUT}`);
  });
});
