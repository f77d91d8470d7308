/**
 * Copying ranges of pages images into a new pages image, the one loop dedup and folds share.
 * Synchronous reads and writes through one 4 MiB buffer: a rewrite copies thousands of short
 * runs (tmpfs, a few µs each), and an await per run would cost more than the copy.
 */
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { FerryError } from '../util/errors.js';

const BUFFER_BYTES = 4 << 20;

/** Writes `len` bytes of `buf` at the fd's position, however many writes it takes. */
export function writeAll(fd: number, buf: Buffer, len: number): void {
  for (let off = 0; off < len;) off += writeSync(fd, buf, off, len - off);
}

/** A new file (created, never overwritten) filled by `copy` calls, in order. */
export class PageCopier {
  private readonly dst: number;
  private readonly buf = Buffer.allocUnsafe(BUFFER_BYTES);
  private fill = 0;
  private readonly sources = new Map<string, number>();

  /** `short` says what is wrong when a source ends before a range it should hold. */
  constructor(to: string, private readonly short: (path: string) => string) {
    this.dst = openSync(to, 'wx', 0o600);
  }

  /** Appends `bytes` bytes of file `from` at byte `offset`. */
  copy(from: string, offset: number, bytes: number): void {
    let fd = this.sources.get(from);
    if (fd === undefined) { fd = openSync(from, 'r'); this.sources.set(from, fd); }
    while (bytes > 0) {
      if (this.fill === this.buf.length) this.flush();
      const got = readSync(fd, this.buf, this.fill, Math.min(this.buf.length - this.fill, bytes), offset);
      if (got === 0) throw new FerryError('ERR_SNAPSHOT_CORRUPT', this.short(from));
      this.fill += got; offset += got; bytes -= got;
    }
  }

  private flush(): void {
    writeAll(this.dst, this.buf, this.fill);
    this.fill = 0;
  }

  /** Writes what is buffered (when `ok`) and closes every file. */
  close(ok: boolean): void {
    try {
      if (ok) this.flush();
    } finally {
      closeSync(this.dst);
      for (const fd of this.sources.values()) closeSync(fd);
      this.sources.clear();
    }
  }
}

/** Runs `fill` with a copier into `to`, and closes it whatever happens. */
export function copyPages(to: string, short: (path: string) => string, fill: (c: PageCopier) => void): void {
  const c = new PageCopier(to, short);
  let ok = false;
  try {
    fill(c);
    ok = true;
  } finally {
    c.close(ok);
  }
}
