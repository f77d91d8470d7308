// Edges that used to mislead: inspect showing environment values, export blaming the output for a damaged snapshot.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, open, readdir, rm, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ferryOk, ferryRefused } from '../testing/ferry-cli.js';
import { isAlive, OwnedPids, waitFor, withTempDir } from '../testing/processes.js';

const pids = new OwnedPids();
let store = '';
let snap = '';
let done: (() => void) | undefined;
let finished: Promise<void> | undefined;

describe('inspect and export edges (real snapshot)', () => {
  before(async () => {
    // One temporary store for the suite, removed by withTempDir when `after` releases it.
    await new Promise<void>((ready) => {
      finished = withTempDir('edges', async (dir) => {
        store = dir;
        ready();
        await new Promise<void>((r) => { done = r; });
      });
    });
    const pid = (JSON.parse(await ferryOk(store, ['run', '--name', 'env', '--json', '--', 'sleep', '600'], { FERRY_TEST_SECRET: 'hunter2-do-not-show' })) as { pid: number }).pid;
    pids.add(pid);
    snap = (JSON.parse(await ferryOk(store, ['checkpoint', 'env', '--json'])) as { snapshot: string }).snapshot;
    await waitFor(() => !isAlive(pid), 5000, 'the checkpointed workload to exit');
  });
  after(async () => {
    pids.killAll();
    done?.();
    await finished;
  });

  it('inspect hides environment values unless --show-env (text and JSON), keeping the names', async () => {
    const text = await ferryOk(store, ['snapshots', 'inspect', snap]);
    const json = await ferryOk(store, ['snapshots', 'inspect', snap, '--json']);
    for (const out of [text, json]) {
      assert.match(out, /FERRY_TEST_SECRET/);
      assert.doesNotMatch(out, /hunter2-do-not-show/);
    }
    assert.match(json, /"environmentValues": "hidden/);
    assert.match(await ferryOk(store, ['snapshots', 'inspect', snap, '--show-env']), /FERRY_TEST_SECRET=hunter2-do-not-show/);
    const shown = await ferryOk(store, ['snapshots', 'inspect', snap, '--json', '--show-env']);
    assert.match(shown, /"FERRY_TEST_SECRET=hunter2-do-not-show"/);
    assert.match(shown, /"environmentValues": "shown"/);
  });

  it('export of a damaged snapshot names the snapshot and the file, writes nothing', async () => {
    const dir = join(store, 'snapshots', snap);
    const out = join(store, 'out.ferry');
    const pages = (await readdir(dir)).find((n) => /^pages-\d+\.img$/.test(n))!;
    const backup = join(store, 'pages.bak');
    await copyFile(join(dir, pages), backup);
    const refuse = (why: RegExp) => ferryRefused(store, ['export', snap, out], new RegExp(`export: snapshot ${snap} is damaged: ${why.source}`));

    await truncate(join(dir, pages), 100);
    let r = await refuse(new RegExp(`${pages} has 100 bytes`));
    assert.doesNotMatch(r.stderr, /cannot write|out\.ferry|writable/, 'the output is not blamed');
    await copyFile(backup, join(dir, pages));

    const fh = await open(join(dir, pages), 'r+');
    await fh.write(Buffer.from([0x5a]), 0, 1, 10);
    await fh.close();
    r = await refuse(new RegExp(`${pages} fails its checksum`));
    await copyFile(backup, join(dir, pages));

    await copyFile(join(dir, 'core-1.img'), join(store, 'core.bak'));
    await rm(join(dir, 'core-1.img'));
    await refuse(/core-1\.img is missing/);
    await copyFile(join(store, 'core.bak'), join(dir, 'core-1.img'));
    assert.ok(!existsSync(out), 'no archive left behind');
    assert.deepEqual((await readdir(store)).filter((n) => n.includes('out.ferry')), [], 'no temporary file either');
    // The output's own failure is still the output's.
    await ferryRefused(store, ['export', snap, join(store, 'no-such-dir', 'x.ferry')], /export: cannot write .*no-such-dir\/x\.ferry/);
    await ferryOk(store, ['export', snap, out]);
    assert.ok(existsSync(out), 'the repaired snapshot exports');
  });
});
