import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { PROJECT_ROOT } from '../../criu/binary.js';
import { FerryError } from '../../util/errors.js';
import { lazyPages, lazyRuns, writeLazyFile } from './lazy-runs.js';

/**
 * ferry-uffd (native/uffd_handler.c), the destination's post-copy page handler, as a child
 * process: it listens on the restore's lazy-pages.socket, takes the restored tasks'
 * userfaultfds, and fills their lazy memory from the source's CRIU over the page stream it is
 * given as fd 3. It reports JSON lines; this wraps them.
 */

export const HANDLER_PATH = join(PROJECT_ROOT, 'native', 'build', 'Release', 'ferry_uffd');

/** How long the source may stay silent, with pages asked for, before it counts as lost. */
export const DEFAULT_STALL_MS = 3_000;

export interface PostcopyProgress {
  state: 'waiting' | 'moving' | 'done' | 'lost' | 'failed';
  totalPages: number;
  donePages: number;
  /** Pages still on the source (what a lost source takes with it). */
  remainingPages: number;
  bytes: number;
  faults: number;
  /** From the handler's start (the restore) to now, or to its end. */
  ms: number;
  /** From "go" (the commit) to the last page. */
  windowMs?: number;
  reason?: string;
}

interface HandlerLine {
  event: string;
  ms?: number; donePages?: number; totalPages?: number; pages?: number; bytes?: number; faults?: number;
  remainingPages?: number; reason?: string;
}

export class PageHandler {
  private readonly child: ChildProcess;
  private state: PostcopyProgress;
  private goAt: number | undefined;
  readonly ended: Promise<PostcopyProgress>;

  private constructor(child: ChildProcess, totalPages: number, listening: () => void) {
    this.child = child;
    this.state = { state: 'waiting', totalPages, donePages: 0, remainingPages: totalPages, bytes: 0, faults: 0, ms: 0 };
    let lastError: string | undefined;
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (l) => {
      let e: HandlerLine;
      try { e = JSON.parse(l) as HandlerLine; } catch { return; }
      this.onLine(e, listening);
      if (e.event === 'error' || e.event === 'lost') lastError = e.reason;
    });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (c: string) => { stderr = (stderr + c).slice(-2000); });
    this.ended = new Promise((resolve) => {
      child.on('close', (code, signal) => {
        const s = this.state;
        if (code === 0) s.state = 'done';
        else if (code === 3) s.state = 'lost';
        else {
          s.state = 'failed';
          s.reason = lastError ?? (stderr.trim() || `ferry-uffd ended with ${signal ?? `status ${String(code)}`}`);
        }
        if (s.state === 'lost') s.reason = lastError ?? 'the source was lost';
        resolve({ ...s });
      });
    });
    this.ended.catch(() => undefined);
  }

  /** Starts the handler in the restore's work dir, before CRIU restores (it must be listening). */
  static async start(o: { workDir: string; imagesDir: string; source: Socket; stallMs?: number }): Promise<PageHandler> {
    if (!existsSync(HANDLER_PATH)) {
      throw new FerryError('ERR_NATIVE_MISSING', `ferry's post-copy page handler is not built (${HANDLER_PATH})`, { hint: 'ferry\'s setup builds it with the native addon (scripts/setup.sh)' });
    }
    const runs = await lazyRuns(o.imagesDir);
    const lazyFile = join(o.workDir, 'lazy-runs.txt');
    await writeLazyFile(lazyFile, runs);
    // The socket path is relative: the work dir's absolute path may be too long for a unix socket.
    const child = spawn(HANDLER_PATH, [
      '--dir', '.', '--lazy', lazyFile, '--source-fd', '3', '--wait-go', '1', '--progress-ms', '250',
      '--stall-ms', String(o.stallMs ?? DEFAULT_STALL_MS),
    ], { cwd: o.workDir, stdio: ['pipe', 'pipe', 'pipe', o.source] });
    // The child has its own copy of the stream now; Node's must not read from it.
    o.source.destroy();
    let listening!: () => void;
    const ready = new Promise<void>((resolve) => { listening = resolve; });
    const h = new PageHandler(child, lazyPages(runs), listening);
    const first = await Promise.race([ready.then(() => true), h.ended.then(() => false)]);
    if (!first) {
      const s = await h.ended;
      throw new FerryError('ERR_POSTCOPY', `the post-copy page handler did not start: ${s.reason ?? s.state}`);
    }
    return h;
  }

  private onLine(e: HandlerLine, listening: () => void): void {
    const s = this.state;
    if (e.event === 'listening') listening();
    if (e.ms !== undefined) s.ms = e.ms;
    if (e.event === 'progress') {
      s.donePages = e.donePages ?? s.donePages;
      s.totalPages = Math.max(s.totalPages, e.totalPages ?? 0);
      s.bytes = e.bytes ?? s.bytes;
      s.faults = e.faults ?? s.faults;
      s.remainingPages = Math.max(0, s.totalPages - s.donePages);
    }
    if (e.event === 'done') {
      s.donePages = e.pages ?? s.totalPages;
      s.totalPages = Math.max(s.totalPages, s.donePages);
      s.remainingPages = 0;
      s.bytes = e.bytes ?? s.bytes;
      s.faults = e.faults ?? s.faults;
      if (this.goAt !== undefined) s.windowMs = Date.now() - this.goAt;
    }
    if (e.event === 'lost' || e.event === 'error') {
      s.remainingPages = e.remainingPages ?? s.remainingPages;
      s.donePages = e.donePages ?? s.donePages;
      if (this.goAt !== undefined) s.windowMs = Date.now() - this.goAt;
    }
  }

  /** The commit: the restored copy runs; pages flow. Should the source be lost, `pid` is killed first. */
  go(pid: number | undefined): void {
    this.goAt = Date.now();
    if (this.state.state === 'waiting') this.state.state = 'moving';
    this.child.stdin?.write(`${pid !== undefined && pid > 1 ? `kill ${pid}\n` : ''}go\n`);
  }

  progress(): PostcopyProgress {
    return { ...this.state, ...(this.goAt !== undefined && this.state.windowMs === undefined ? { windowMs: Date.now() - this.goAt } : {}) };
  }

  /** Stops the handler (it kills the copy it was told of first); waits for it, up to 5 s. */
  async stop(): Promise<PostcopyProgress> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    try { return await this.ended; } finally { clearTimeout(t); }
  }
}
