import { execFile } from 'node:child_process';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError } from '../util/errors.js';
import { liveStartTime } from '../targets/process.js';

/** How long CRIU may go without writing a log line or an image byte before it counts as stalled. */
export const DEFAULT_STALL_MS = 120_000;
const POLL_MS = 200;

/**
 * Nothing may hang. While CRIU works on a target, the watchdog checks every 200 ms that the
 * target still lives (same pid, same start time: a reused pid does not fool it) and that CRIU
 * makes progress (its log or the images grow). When the target dies before CRIU is done (an OOM
 * kill, a SIGKILL) or CRIU stalls, it aborts `kill` with an error naming the cause; CriuClient
 * then ends CRIU. `disarm()` when the target may legitimately go (after post-dump CRIU kills it).
 */
export class Watchdog {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private armed = true;
  private lastSize = -1;
  private lastProgress = Date.now();
  private startTime: number | undefined;
  private checking = false;
  private held = 0;

  constructor(private readonly o: { pid: number; label: string; workDir: string; imagesDir: string; stallMs?: number }) {}

  get kill(): AbortSignal {
    return this.controller.signal;
  }

  async start(): Promise<this> {
    this.startTime = await liveStartTime(this.o.pid);
    this.timer = setInterval(() => { void this.check(); }, POLL_MS);
    this.timer.unref();
    return this;
  }

  /**
   * Runs `fn` while CRIU waits for ferry on purpose (a checkpoint queued at pre-dump for its
   * turn): that silence is not a stall. The target is still watched.
   */
  async hold<T>(fn: () => Promise<T>): Promise<T> {
    this.held++;
    // When the watchdog fires meanwhile (the target died), the hold ends with its reason at once:
    // CRIU is killed, but its client waits for this handler's answer before it notices, so an
    // unanswered wait (a freeze slot that is not coming) would keep the dead job queued.
    const signal = this.controller.signal;
    let onAbort: (() => void) | undefined;
    const fired = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal.reason as Error);
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
    fired.catch(() => undefined);
    try {
      return await Promise.race([fn(), fired]);
    } finally {
      signal.removeEventListener('abort', onAbort!);
      this.held--;
      this.lastProgress = Date.now();
    }
  }

  /** The target may die from now on (CRIU kills it after the dump); stall checks go on. */
  disarm(): void {
    this.armed = false;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private async check(): Promise<void> {
    if (this.checking || this.controller.signal.aborted) return;
    this.checking = true;
    try {
      if (this.armed) {
        const now = await liveStartTime(this.o.pid);
        // Disarmed while the look was under way (CRIU was told it may end the tree): not a death.
        if (this.armed && (now === undefined || (this.startTime !== undefined && now !== this.startTime))) {
          const oom = await oomKilled(this.o.pid);
          this.abort(new FerryError('ERR_TARGET_DIED', `${this.o.label} died while CRIU was dumping it${oom ? ': the kernel\'s OOM killer killed it' : ''}; CRIU was stopped`, {
            hint: oom ? 'the host ran out of memory: free memory (a memory-tier snapshot is RAM; `ferry snapshots ls` shows how much the tier holds), or checkpoint to --tier disk' : 'something killed the workload during the checkpoint; nothing was saved',
            ...(oom ? { detail: oom } : {}),
          }));
          return;
        }
      }
      const size = await progressSize(this.o.workDir, this.o.imagesDir);
      if (size !== this.lastSize) {
        this.lastSize = size;
        this.lastProgress = Date.now();
      } else if (this.held > 0) {
        this.lastProgress = Date.now();
      } else if (Date.now() - this.lastProgress > (this.o.stallMs ?? stallMs())) {
        this.abort(new FerryError('ERR_CRIU_STALLED', `CRIU made no progress on ${this.o.label} for ${Math.round((Date.now() - this.lastProgress) / 1000)} s; it was stopped`, {
          hint: `its log is in ${this.o.workDir}; the stall limit is FERRY_CRIU_STALL_MS (default ${DEFAULT_STALL_MS} ms)`,
        }));
      }
    } finally {
      this.checking = false;
    }
  }

  private abort(err: FerryError): void {
    this.stop();
    this.controller.abort(err);
  }
}

function stallMs(): number {
  const v = Number(process.env['FERRY_CRIU_STALL_MS']);
  return Number.isFinite(v) && v > 0 ? v : DEFAULT_STALL_MS;
}

/** Bytes in the work dir (CRIU's log) and the images dir: grows while CRIU works. */
async function progressSize(...dirs: string[]): Promise<number> {
  let total = 0;
  for (const d of dirs) {
    for (const n of await readdir(d).catch(() => [] as string[])) {
      total += await stat(join(d, n)).then((s) => s.size, () => 0);
    }
  }
  return total;
}

/** The kernel's line about an OOM kill of `pid`, when its log has one. */
async function oomKilled(pid: number): Promise<string | undefined> {
  const log = await new Promise<string>((ok) => {
    execFile('dmesg', [], { timeout: 2000, maxBuffer: 8 << 20 }, (_err, stdout) => ok(stdout ?? ''));
  });
  return log.split('\n').reverse().find((l) => new RegExp(`Killed process ${pid}\\b`).test(l) || new RegExp(`oom-kill:.*pid=${pid}\\b`).test(l))?.trim();
}
