import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Watchdog } from './watchdog.js';

function aborted(signal: AbortSignal, within: number): Promise<Error> {
  return new Promise((ok, bad) => {
    const t = setTimeout(() => bad(new Error(`not aborted within ${within} ms`)), within);
    signal.addEventListener('abort', () => { clearTimeout(t); ok(signal.reason as Error); }, { once: true });
  });
}

describe('the CRIU watchdog', () => {
  let dir: string;
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'ferry-wd-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  it('a hold (a checkpoint waiting for its freeze slot) ends with the reason when the target dies meanwhile', async () => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    const wd = await new Watchdog({ pid: child.pid!, label: 'pid Y (sleep)', workDir: dir, imagesDir: dir }).start();
    const held = wd.hold(() => new Promise<never>(() => undefined)); // a slot that never comes
    const alive = setTimeout(() => undefined, 5000); // (the watchdog's timer does not keep the loop up)
    child.kill('SIGKILL');
    await assert.rejects(held, (e: Error & { code?: string }) => e.code === 'ERR_TARGET_DIED' && /pid Y/.test(e.message));
    clearTimeout(alive);
    wd.stop();
  });

  it('ends the operation when the target dies, naming it', async () => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    const wd = await new Watchdog({ pid: child.pid!, label: 'pid X (sleep)', workDir: dir, imagesDir: dir }).start();
    child.kill('SIGKILL');
    const err = await aborted(wd.kill, 3000) as Error & { code?: string };
    assert.equal(err.code, 'ERR_TARGET_DIED');
    assert.match(err.message, /pid X \(sleep\) died while CRIU was dumping it/);
    wd.stop();
  });

  it('does not fire once disarmed (after post-dump CRIU may end the target itself)', async () => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    const wd = await new Watchdog({ pid: child.pid!, label: 'x', workDir: dir, imagesDir: dir, stallMs: 60_000 }).start();
    wd.disarm();
    child.kill('SIGKILL');
    await assert.rejects(aborted(wd.kill, 700), /not aborted/);
    wd.stop();
  });

  it('ends a CRIU that makes no progress, and not one that does', async () => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    const growing = join(dir, 'dump.log');
    let n = 0;
    const writer = setInterval(() => { void writeFile(growing, 'x'.repeat(++n)); }, 50);
    const busy = await new Watchdog({ pid: child.pid!, label: 'busy', workDir: dir, imagesDir: dir, stallMs: 500 }).start();
    await assert.rejects(aborted(busy.kill, 1200), /not aborted/);
    clearInterval(writer);
    busy.stop();
    const err = await aborted((await new Watchdog({ pid: child.pid!, label: 'idle', workDir: dir, imagesDir: dir, stallMs: 400 }).start()).kill, 3000) as Error & { code?: string };
    assert.equal(err.code, 'ERR_CRIU_STALLED');
    child.kill('SIGKILL');
  });
});
