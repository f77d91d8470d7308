import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError } from '../util/errors.js';

export type FileSums = Record<string, { size: number; sha256: string }>;

/** Files of a snapshot that are not images: ferry's manifest and CRIU's logs (which it appends to). */
const NOT_CHECKSUMMED = /^(manifest\.json|.*\.log)$/;

async function sha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** SHA-256 and size of every image file in `dir`. */
export async function checksumDir(dir: string): Promise<FileSums> {
  const out: FileSums = {};
  const names = (await readdir(dir)).filter((n) => !NOT_CHECKSUMMED.test(n)).sort();
  for (const name of names) {
    const p = join(dir, name);
    const s = await stat(p);
    if (!s.isFile()) continue;
    out[name] = { size: s.size, sha256: await sha256(p) };
  }
  return out;
}

/** Throws ERR_SNAPSHOT_CORRUPT naming the first file that differs from the manifest. */
export async function verifyChecksums(dir: string, expected: FileSums, id: string): Promise<void> {
  const actual = await checksumDir(dir);
  const corrupt = (what: string) => new FerryError('ERR_SNAPSHOT_CORRUPT', `snapshot ${id} is damaged: ${what}`, {
    hint: 'the images changed after the checkpoint; restore another snapshot, or take a new one',
  });
  for (const [name, e] of Object.entries(expected)) {
    const a = actual[name];
    if (!a) throw corrupt(`${name} is missing`);
    if (a.size !== e.size) throw corrupt(`${name} has ${a.size} bytes, expected ${e.size}`);
    if (a.sha256 !== e.sha256) throw corrupt(`${name} fails its checksum (sha256 ${a.sha256.slice(0, 12)}…, expected ${e.sha256.slice(0, 12)}…)`);
  }
  for (const name of Object.keys(actual)) if (!(name in expected)) throw corrupt(`${name} was added after the checkpoint`);
}
