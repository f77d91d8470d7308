import { connect, createServer, type Socket } from 'node:net';
import { FerryError } from '../../util/errors.js';

/** A TCP port free on this host right now (for CRIU's lazy page server, which binds it itself). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '0.0.0.0', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/**
 * The source's end of the page stream: once CRIU serves the frozen memory on `port` (after its
 * post-dump answer), one local connection to it, spliced to the stream to the destination.
 * CRIU takes exactly one connection and then stops listening, so connecting at once also closes
 * the port to anyone else.
 */
export class PageRelay {
  private local: Socket | undefined;
  private closed = false;
  /** Settles when either side ends: how many bytes went to the destination, and why it ended. */
  readonly ended: Promise<{ bytes: number; error?: string }>;
  private endWith!: (r: { bytes: number; error?: string }) => void;
  private bytes = 0;
  /** Set at the commit: from then on an end of the stream lets CRIU end the tree (before it, CRIU must resume it). */
  private armed = false;

  constructor(private readonly port: number, private readonly stream: Socket) {
    this.ended = new Promise((resolve) => { this.endWith = resolve; });
  }

  /** Connects to CRIU (retrying while it is not yet listening, up to `withinMs`) and splices. */
  async start(withinMs = 10_000): Promise<void> {
    const deadline = Date.now() + withinMs;
    for (;;) {
      if (this.closed) return;
      try {
        this.local = await new Promise<Socket>((resolve, reject) => {
          const s = connect({ host: '127.0.0.1', port: this.port });
          s.once('connect', () => { s.removeAllListeners('error'); resolve(s); });
          s.once('error', reject);
        });
        break;
      } catch (e) {
        if (Date.now() > deadline) {
          this.finish(`CRIU's page server did not listen on port ${this.port}: ${e instanceof Error ? e.message : String(e)}`);
          throw new FerryError('ERR_POSTCOPY', `the source's CRIU did not start serving its memory (port ${this.port})`);
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    const local = this.local;
    local.setNoDelay(true);
    local.on('data', (c: Buffer) => { this.bytes += c.length; });
    // Not pipe()'s own end: a FIN passed on to CRIU reads as a finished session (it would end the
    // tree). Every end goes through finish(), which resets CRIU's side unless the commit is answered.
    local.pipe(this.stream, { end: false });
    this.stream.pipe(local, { end: false });
    this.stream.resume();
    local.on('end', () => this.finish());
    this.stream.on('end', () => this.finish());
    local.on('error', (e) => this.finish(`CRIU's side: ${e.message}`));
    this.stream.on('error', (e) => this.finish(`the destination's side: ${e.message}`));
    local.on('close', () => this.finish());
    this.stream.on('close', () => this.finish());
  }

  /** The commit goes out: the destination's copy is about to run. */
  arm(): void { this.armed = true; }

  private finish(error?: string): void {
    if (this.closed) return;
    this.closed = true;
    // CRIU counts a clean end of the session as success (it ends the tree) and a reset as a
    // failure (it resumes the tree): before the commit, the source must go on.
    if (this.armed) this.local?.destroy();
    else this.local?.resetAndDestroy();
    this.stream.destroy();
    this.endWith({ bytes: this.bytes, ...(error ? { error } : {}) });
  }

  close(): void { this.finish(); }

  /** Breaks the session (a reset, not an end): CRIU then counts the transfer failed and resumes the tree. */
  fail(): void {
    this.armed = false;
    this.finish('abandoned before the commit');
  }
}
