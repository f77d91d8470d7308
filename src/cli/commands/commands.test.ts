// The CLI's commands run in-process with an output sink: no spawn, no root, no CRIU.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { CommandContext } from '../command.js';
import { command as checkpoint } from './checkpoint.js';
import { command as restore } from './restore.js';

function ctxFor(store: string): CommandContext & { written: { stdout: string; stderr: string } } {
  const written = { stdout: '', stderr: '' };
  return { json: true, debug: false, store, written, out: { stdout: (t) => { written.stdout += t; }, stderr: (t) => { written.stderr += t; } } };
}

describe('commands in-process', () => {
  let store: string;
  before(async () => { store = await mkdtemp(join(tmpdir(), 'ferry-cmd-')); });
  after(async () => { await rm(store, { recursive: true, force: true }); });

  it('restore of an unknown snapshot: ERR_NO_SNAPSHOT, nothing written', async () => {
    const ctx = ctxFor(store);
    await assert.rejects(restore.run(['nope'], ctx), (e: Error & { code?: string }) => e.code === 'ERR_NO_SNAPSHOT' && /no snapshot 'nope'/.test(e.message));
    assert.equal(ctx.written.stdout, '');
  });

  it('usage errors are refused at the edge, before anything runs', async () => {
    const ctx = ctxFor(store);
    await assert.rejects(checkpoint.run(['1', '--tier', 'cloud'], ctx), /--tier must be memory or disk, not 'cloud'/);
    await assert.rejects(checkpoint.run(['1', '--dedup', 'forward', '--no-dedup'], ctx), /contradict/);
    await assert.rejects(checkpoint.run(['web', '--runtime', 'runc'], ctx), /apply to container:<id> targets only/);
    await assert.rejects(restore.run(['a', '--as', 'x', '--clone'], ctx), /no snapshot 'a'|contradict/);
  });

  it('a pid that does not exist: refused with the reason, and the store holds nothing partial', async () => {
    const ctx = ctxFor(store);
    await assert.rejects(checkpoint.run(['4194000'], ctx), (e: Error & { code?: string }) => e.code === 'ERR_NO_PROCESS');
  });
});
