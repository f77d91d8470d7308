import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createXXHash128 } from 'hash-wasm';
import { FerryError } from '../util/errors.js';

/** The hash of every image file: XXH3-128 (hash-wasm's WASM build), as 32 hex digits. */
export const HASH_ALGORITHM = 'xxh3-128';
export type HashAlgorithm = typeof HASH_ALGORITHM;

export type FileSums = Record<string, { size: number; hash: string }>;

/** Files of a snapshot that are not images: ferry's manifest and CRIU's logs (which it appends to). */
const NOT_CHECKSUMMED = /^(manifest\.json|.*\.log)$/;

const CHUNK = 4 << 20;

type Hasher = Awaited<ReturnType<typeof createXXHash128>>;
/** Idle hashers with their read buffers: a WASM instance costs milliseconds, a snapshot has dozens of files. */
const idle: { h: Hasher; bufs: [Buffer, Buffer] }[] = [];

/** Compiles a hasher ahead of time (e.g. while CRIU is still writing), so hashing starts at once. */
export async function prewarmHasher(): Promise<void> {
  if (idle.length === 0) idle.push({ h: await createXXHash128(), bufs: [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)] });
}

/**
 * XXH3-128 of a file, read once: two reused buffers, the next read in flight while the current
 * chunk is hashed (reuse also spares the first-touch cost of fresh buffers on these VMs).
 */
export async function hashFile(path: string): Promise<string> {
  const slot = idle.pop() ?? { h: await createXXHash128(), bufs: [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)] as [Buffer, Buffer] };
  const { h, bufs } = slot;
  h.init();
  const fh = await open(path, 'r');
  try {
    let i = 0;
    let pending = fh.read(bufs[0], 0, CHUNK, null);
    for (;;) {
      const { bytesRead } = await pending;
      if (bytesRead === 0) break;
      const cur = bufs[i]!;
      i ^= 1;
      // A short read is the end of the file (regular files on local file systems).
      pending = bytesRead === CHUNK ? fh.read(bufs[i]!, 0, CHUNK, null) : Promise.resolve({ bytesRead: 0, buffer: cur });
      h.update(bytesRead === CHUNK ? cur : cur.subarray(0, bytesRead));
    }
    return h.digest('hex');
  } finally {
    await fh.close();
    idle.push(slot);
  }
}

/** XXH3-128 and size of every image file in `dir`. */
export async function checksumDir(dir: string): Promise<FileSums> {
  const out: FileSums = {};
  const names = (await readdir(dir)).filter((n) => !NOT_CHECKSUMMED.test(n)).sort();
  for (const name of names) {
    const p = join(dir, name);
    const s = await stat(p);
    if (!s.isFile()) continue;
    out[name] = { size: s.size, hash: await hashFile(p) };
  }
  return out;
}

/** Throws ERR_SNAPSHOT_CORRUPT naming the first file that differs from the manifest. */
export async function verifyChecksums(dir: string, expected: FileSums, id: string, algorithm: string = HASH_ALGORITHM): Promise<void> {
  const corrupt = (what: string) => new FerryError('ERR_SNAPSHOT_CORRUPT', `snapshot ${id} is damaged: ${what}`, {
    hint: 'the images changed after the checkpoint; restore another snapshot, or take a new one',
  });
  if (algorithm !== HASH_ALGORITHM) {
    throw new FerryError('ERR_SNAPSHOT_INCOMPATIBLE', `snapshot ${id} was checksummed with ${algorithm}; this ferry checks ${HASH_ALGORITHM}`, {
      hint: 'take a new snapshot with this version of ferry',
    });
  }
  const actual = await checksumDir(dir);
  for (const [name, e] of Object.entries(expected)) {
    const a = actual[name];
    if (!a) throw corrupt(`${name} is missing`);
    if (a.size !== e.size) throw corrupt(`${name} has ${a.size} bytes, expected ${e.size}`);
    if (a.hash !== e.hash) throw corrupt(`${name} fails its checksum (${HASH_ALGORITHM} ${a.hash.slice(0, 12)}…, expected ${String(e.hash).slice(0, 12)}…)`);
  }
  for (const name of Object.keys(actual)) if (!(name in expected)) throw corrupt(`${name} was added after the checkpoint`);
}
