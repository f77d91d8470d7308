/**
 * Follows a CRIU images directory while CRIU writes it, as segments (segments.ts) ready to send:
 * the pages images (the bulk: CRIU appends to them, in order, as it drains the tree's memory)
 * are sent as they grow, in segments of whole chunks; once the dump is complete (`complete()`, at
 * CRIU's post-dump notification) every file's rest follows — the pages' tails and every other
 * file whole. A file grows only by appends while CRIU dumps (a pages image is written once, in
 * order), and a byte below the size the file reports has been written: reading up to it is safe.
 */
import { lstat, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError, errnoCode } from '../../util/errors.js';
import { badFileName, MAX_CHUNK } from '../wire.js';

export interface Segment {
  /** The image file. */
  file: string;
  path: string;
  offset: number;
  size: number;
  /** The file's last segment (it is complete after it). */
  last: boolean;
}

export interface TailOptions {
  /** Files sent as they grow. */
  follow?: RegExp;
  /** How often a growing file is looked at (ms). */
  everyMs?: number;
  /** A segment of a growing file is at least this long (whole chunks) … */
  minSegment?: number;
  /** … and at most this long. */
  maxSegment?: number;
}

const DEFAULTS = { follow: /^pages-\d+\.img$/, everyMs: 5, minSegment: 2 * MAX_CHUNK, maxSegment: 64 * MAX_CHUNK };

export class ImageTail {
  private readonly o: typeof DEFAULTS;
  private readonly sent = new Map<string, number>();
  private done = false;
  private stopped: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(readonly dir: string, o: TailOptions = {}) {
    this.o = { ...DEFAULTS, ...o };
  }

  /** The dump is complete: what is left of every file follows. */
  complete(): void {
    this.done = true;
    this.wake?.();
  }

  /** Stop following (the migration failed): `segments()` throws `reason`. */
  stop(reason: Error): void {
    this.stopped ??= reason;
    this.wake?.();
  }

  /** Bytes handed out in segments so far. */
  get bytes(): number {
    let n = 0;
    for (const v of this.sent.values()) n += v;
    return n;
  }

  async *segments(): AsyncGenerator<Segment> {
    while (!this.done) {
      this.check();
      let found = false;
      for (const name of (await this.names()).filter((n) => this.o.follow.test(n))) {
        const path = join(this.dir, name);
        const size = await stat(path).then((s) => s.size, () => 0);
        const from = this.sent.get(name) ?? 0;
        const whole = Math.floor((size - from) / MAX_CHUNK) * MAX_CHUNK;
        if (whole < this.o.minSegment) continue;
        const n = Math.min(whole, this.o.maxSegment);
        this.sent.set(name, from + n);
        found = true;
        yield { file: name, path, offset: from, size: n, last: false };
        this.check();
      }
      if (!found && !this.done) await this.pause();
    }
    this.check();
    // Complete: the rest of every file, in name order.
    for (const name of (await this.names()).sort()) {
      const path = join(this.dir, name);
      const st = await lstat(path).catch((err: unknown) => {
        throw new FerryError('ERR_BAD_DIRECTORY', `cannot read ${path}: ${errnoCode(err) ?? (err as Error).message}`, { cause: err });
      });
      if (!st.isFile()) throw new FerryError('ERR_BAD_DIRECTORY', `${path} is not a regular file; an image directory holds only files`);
      const from = this.sent.get(name) ?? 0;
      if (st.size < from) throw new FerryError('ERR_TRANSFER_INVALID', `${name} shrank to ${st.size} bytes after ${from} were sent`, { hint: 'image files must only grow while CRIU writes them' });
      this.sent.set(name, st.size);
      yield { file: name, path, offset: from, size: st.size - from, last: true };
      this.check();
    }
  }

  private check(): void {
    if (this.stopped !== undefined) throw this.stopped;
  }

  private async names(): Promise<string[]> {
    const all = await readdir(this.dir).catch((err: unknown) => {
      throw new FerryError('ERR_BAD_DIRECTORY', `cannot read the image directory ${this.dir}: ${errnoCode(err) ?? (err as Error).message}`, { cause: err });
    });
    const out: string[] = [];
    for (const n of all) {
      if (n === 'manifest.json') continue;
      if (n === 'parent') throw new FerryError('ERR_BAD_OPTION', `the images in ${this.dir} build on a parent snapshot: they cannot be streamed alone`, { hint: 'stream a flat dump (without dedup or pre-dump)' });
      const why = badFileName(n);
      if (why !== undefined) throw new FerryError('ERR_BAD_OPTION', `cannot send ${JSON.stringify(n)}: its name ${why}`);
      out.push(n);
    }
    return out;
  }

  private pause(): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(done, this.o.everyMs);
      function done(): void { clearTimeout(t); resolve(); }
      this.wake = done;
    }).finally(() => { this.wake = undefined; });
  }
}
