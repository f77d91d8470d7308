import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CriuClient } from '../criu/client.js';

/**
 * The proof that checkpoint/restore works here: dump a real process (which CRIU then kills),
 * restore it, and check the restored process is the same program, alive.
 */
export async function selfTest(client: CriuClient): Promise<{ ok: true; dumpMs: number; restoreMs: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-doctor-'));
  const child = spawn('sleep', ['600'], { detached: true, stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  let restoredPid: number | undefined;
  try {
    await new Promise<void>((resolve, reject) => { child.once('spawn', resolve); child.once('error', reject); });
    const pid = child.pid;
    if (pid === undefined) throw new Error('could not start a test process');
    const dump = await client.dump({ pid, imagesDir: dir });
    await exited; // CRIU killed it; wait until it is reaped so its pid is free again
    const restore = await client.restore({ imagesDir: dir });
    restoredPid = restore.pid;
    const comm = (await readFile(`/proc/${restore.pid}/comm`, 'utf8')).trim();
    if (comm !== 'sleep') throw new Error(`the restored pid ${restore.pid} runs '${comm}', not 'sleep'`);
    return { ok: true, dumpMs: dump.durationMs, restoreMs: restore.durationMs };
  } finally {
    if (restoredPid !== undefined) { try { process.kill(restoredPid, 'SIGKILL'); } catch { /* already gone */ } }
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
}
