/**
 * AF_UNIX SOCK_SEQPACKET sockets, which Node core cannot create or use, for talking to
 * `criu swrk <fd>`. A thin typed layer over the C addon in native/ (ferry_native.node):
 * I/O never blocks the event loop (libuv polling), one send or receive is one whole record,
 * and fds travel with SCM_RIGHTS.
 */
import { createRequire } from 'node:module';
import { FerryError, errnoCode } from '../util/errors.js';

export interface ReceivedMessage {
  data: Buffer;
  /** Descriptors passed with the record (CLOEXEC). The receiver owns them and must close them. */
  fds: number[];
}

interface NativeBinding {
  socketpair(): [number, number];
  setNonblocking(fd: number): void;
  send(fd: number, data: Uint8Array, fds?: readonly number[]): Promise<void>;
  receive(fd: number): Promise<ReceivedMessage | null>;
  close(fd: number): void;
  readonly maxFds: number;
  hashBlocks(fd: number, offset: number, length: number, blockSize: number, mapped?: boolean, background?: boolean): Promise<Buffer>;
  hash128(data: Uint8Array): Buffer;
  hashEach(data: Uint8Array, blockSize: number, out: Buffer, outOffset: number): number;
}

/** Relative to the compiled file, dist/native/index.js. */
const ADDON_PATH = '../../native/build/Release/ferry_native.node';
const BUILD_HINT = 'ferry\'s setup builds it (scripts/setup.sh); where ferry is installed as a package, `npm rebuild ferry` does';

let loaded: NativeBinding | undefined;

/** Loads the addon on first use, so that importing this module never fails by itself. */
function native(): NativeBinding {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  let resolved: string;
  try {
    resolved = require.resolve(ADDON_PATH);
  } catch (err) {
    throw new FerryError('ERR_NATIVE_MISSING', 'ferry\'s native addon (ferry_native.node) is not built', {
      hint: BUILD_HINT,
      cause: err,
    });
  }
  try {
    loaded = require(resolved) as NativeBinding;
  } catch (err) {
    throw new FerryError('ERR_NATIVE_MISSING', `ferry's native addon could not be loaded (${resolved}): ${(err as Error).message}`, {
      hint: `it may have been built for another Node.js; ${BUILD_HINT}`,
      cause: err,
    });
  }
  return loaded;
}

function syscallOf(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'syscall' in err && typeof err.syscall === 'string') return err.syscall;
  return undefined;
}

function channelClosed(op: string, cause?: unknown): FerryError {
  return new FerryError('ERR_CHANNEL_CLOSED', `${op} on a closed CRIU channel`, cause === undefined ? {} : { cause });
}

/** The addon's errors carry `code` (errno name) and `syscall`; ECANCELED means "closed while pending". */
function ioError(op: 'sendmsg' | 'recvmsg' | 'close' | 'fcntl', err: unknown): FerryError {
  if (err instanceof FerryError) return err;
  const code = errnoCode(err);
  if (code === 'ECANCELED') return channelClosed(op, err);
  const syscall = syscallOf(err) ?? op;
  const what = code ?? (err instanceof Error ? err.message : String(err));
  return new FerryError('ERR_NATIVE_IO', `${syscall} on CRIU channel failed: ${what}`, { cause: err });
}

/**
 * A connected SEQPACKET socket pair.
 * ferryFd: nonblocking, CLOEXEC, for SeqpacketChannel. peerFd: blocking, CLOEXEC, to hand to a
 * child process (spawn's stdio array dup2()s it, which clears CLOEXEC in the child); close it in
 * the parent once the child has it.
 */
export function seqpacketPair(): { ferryFd: number; peerFd: number } {
  let pair: [number, number];
  try {
    pair = native().socketpair();
  } catch (err) {
    if (err instanceof FerryError) throw err;
    const code = errnoCode(err) ?? String(err);
    throw new FerryError('ERR_NATIVE_IO', `socketpair for a CRIU channel failed: ${code}`, { cause: err });
  }
  return { ferryFd: pair[0], peerFd: pair[1] };
}

/**
 * One end of a SEQPACKET socket. Sends and receives are whole records, served in call order
 * (concurrent calls queue). Errors are FerryErrors: ERR_NATIVE_IO (message names the syscall and
 * errno, e.g. "recvmsg on CRIU channel failed: ECONNRESET") or ERR_CHANNEL_CLOSED.
 */
export class SeqpacketChannel {
  readonly #fd: number;
  #closed = false;

  /** Takes ownership of `fd` (and sets O_NONBLOCK on it if it is not set). */
  constructor(fd: number) {
    if (!Number.isInteger(fd) || fd < 0) throw new TypeError(`not a file descriptor: ${fd}`);
    try {
      native().setNonblocking(fd);
    } catch (err) {
      throw ioError('fcntl', err);
    }
    this.#fd = fd;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sends `data` as one record, with `fds` (at most 32) passed by SCM_RIGHTS; they are
   * duplicated as needed, so the caller may close its copies once this returns.
   * An empty record is refused: SEQPACKET readers (CRIU too) cannot tell it from end-of-file.
   */
  async send(data: Uint8Array, fds: readonly number[] = []): Promise<void> {
    if (this.#closed) throw channelClosed('sendmsg');
    if (data.byteLength === 0) {
      throw new FerryError('ERR_NATIVE_IO', 'sendmsg on CRIU channel failed: EINVAL (an empty record reads as end-of-file)');
    }
    const binding = native();
    if (fds.length > binding.maxFds) {
      throw new FerryError('ERR_NATIVE_IO', `sendmsg on CRIU channel failed: EINVAL (${fds.length} fds; at most ${binding.maxFds} per record)`);
    }
    try {
      await binding.send(this.#fd, data, fds);
    } catch (err) {
      throw ioError('sendmsg', err);
    }
  }

  /**
   * The next record (any size), or null once the peer has closed its end (EOF; a zero-length
   * record reads the same, which is why send() refuses to send one).
   */
  async receive(): Promise<ReceivedMessage | null> {
    if (this.#closed) throw channelClosed('recvmsg');
    try {
      return await native().receive(this.#fd);
    } catch (err) {
      throw ioError('recvmsg', err);
    }
  }

  /** Closes the socket; pending sends and receives reject with ERR_CHANNEL_CLOSED. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      native().close(this.#fd);
    } catch (err) {
      throw ioError('close', err);
    }
  }
}

/**
 * XXH3-128 (canonical, 16 bytes each) of every `blockSize` block of `length` bytes of the file
 * open on `fd`, starting at `offset`; a short last block is hashed as it is. Runs on libuv's
 * thread pool (several calls in flight use several threads) and reads with pread, so the fd's
 * position is untouched. `mapped`: hash the range in place through a mapping (for files on a
 * huge-page tmpfs, where mapping is nearly free; offset must then be page-aligned). `background`:
 * run at the lowest CPU priority (beside a CRIU dump, which should not wait for it). I/O errors
 * are ERR_NATIVE_IO naming the syscall and errno.
 */
export async function hashBlocks(fd: number, offset: number, length: number, blockSize: number, mapped = false, background = false): Promise<Buffer> {
  try {
    return await native().hashBlocks(fd, offset, length, blockSize, mapped, background);
  } catch (err) {
    if (err instanceof FerryError) throw err;
    const code = errnoCode(err) ?? String(err);
    throw new FerryError('ERR_NATIVE_IO', `${syscallOf(err) ?? 'pread'} while hashing failed: ${code}`, { cause: err });
  }
}

/**
 * XXH3-128 (canonical) of every whole `blockSize` block of `data`, written into `out` from
 * `outOffset`, 16 bytes each, synchronously; returns how many blocks.
 */
export function hashEach(data: Uint8Array, blockSize: number, out: Buffer, outOffset: number): number {
  return native().hashEach(data, blockSize, out, outOffset);
}

/** XXH3-128 of `data` (canonical, 16 bytes), synchronously. */
export function hash128(data: Uint8Array): Buffer {
  return native().hash128(data);
}
