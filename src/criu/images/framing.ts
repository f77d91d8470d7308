/**
 * CRIU's image framing (criu/image.c, criu/protobuf.c):
 *
 *   file  := [HEAD_MAGIC u32] TYPE_MAGIC u32 { entry }
 *   entry := SIZE u32 PAYLOAD[SIZE]
 *
 * u32 values are in host byte order, which is little-endian on every architecture ferry runs
 * on (x86-64, arm64). An empty or missing file is an image with no entries (CRIU's "empty
 * image"); end of file at an entry boundary ends the entries. Anything else that does not
 * fit is an ERR_IMAGE_FORMAT error naming the file and the byte offset.
 *
 * This reader does not know about the extra blobs some images carry after an entry
 * (pipes-data, sk-queues, tcp-stream, ipcns-*, ghost files): use it only for images without
 * them.
 */
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { FerryError, errnoCode } from '../../util/errors.js';
import { formatMagic, type ImageFraming } from './magic.js';

export const ERR_IMAGE_FORMAT = 'ERR_IMAGE_FORMAT';

/** One framed entry: where its size field starts, and its payload (a view into the file). */
export interface ImageEntry {
  /** Byte offset of the entry's u32 size field in the file. */
  readonly offset: number;
  readonly payload: Uint8Array;
}

/** The error for a malformed image: `<file>: <what> at byte <offset>`. */
export function imageFormatError(file: string, what: string, offset?: number, cause?: unknown): FerryError {
  const where = offset === undefined ? '' : ` at byte ${offset}`;
  return new FerryError(ERR_IMAGE_FORMAT, `CRIU image ${file}: ${what}${where}`, {
    hint: 'The image is damaged, incomplete, or was not written by a CRIU version ferry can read.',
    ...(cause === undefined ? {} : { cause }),
  });
}

/** Size of the magics at the start of an image of this kind. */
export function headerSize(framing: ImageFraming): number {
  return framing.headMagic === undefined ? 4 : 8;
}

/**
 * Splits an image's bytes into entries, checking the magics. `file` names the image in
 * errors. Zero bytes is an image with no entries.
 */
export function decodeImage(bytes: Uint8Array, framing: ImageFraming, file: string): ImageEntry[] {
  if (bytes.length === 0) return [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0;
  const expectMagic = (expected: number, which: string): void => {
    if (bytes.length - pos < 4) {
      throw imageFormatError(file, `truncated ${which} magic (expected ${formatMagic(expected)}, file has only ${bytes.length} bytes)`, pos);
    }
    const actual = view.getUint32(pos, true);
    if (actual !== expected) {
      throw imageFormatError(file, `wrong ${which} magic: expected ${formatMagic(expected)} (${framing.name} image), found ${formatMagic(actual)}`, pos);
    }
    pos += 4;
  };
  if (framing.headMagic !== undefined) expectMagic(framing.headMagic, 'head');
  expectMagic(framing.magic, 'type');

  const entries: ImageEntry[] = [];
  while (pos < bytes.length) {
    const offset = pos;
    if (bytes.length - pos < 4) {
      throw imageFormatError(file, `truncated entry size (${bytes.length - pos} of 4 bytes)`, offset);
    }
    const size = view.getUint32(pos, true);
    pos += 4;
    if (bytes.length - pos < size) {
      throw imageFormatError(file, `truncated entry: size says ${size} bytes, only ${bytes.length - pos} follow`, offset);
    }
    entries.push({ offset, payload: bytes.subarray(pos, pos + size) });
    pos += size;
  }
  return entries;
}

/** Reads and splits an image file. A missing file is an image with no entries. */
export async function readImageEntries(path: string, framing: ImageFraming): Promise<ImageEntry[]> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
  return decodeImage(bytes, framing, path);
}

/** The bytes of an image with these entries: the magics, then size + payload for each. */
export function encodeImage(framing: ImageFraming, payloads: readonly Uint8Array[]): Uint8Array {
  const header = headerSize(framing);
  const total = payloads.reduce((n, p) => n + 4 + p.length, header);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let pos = 0;
  if (framing.headMagic !== undefined) {
    view.setUint32(pos, framing.headMagic, true);
    pos += 4;
  }
  view.setUint32(pos, framing.magic, true);
  pos += 4;
  for (const p of payloads) {
    view.setUint32(pos, p.length, true);
    pos += 4;
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

/**
 * Writes an image file with these entries. The file is written next to `path` and renamed
 * over it, so a reader (or CRIU) never sees a half-written image.
 */
export async function writeImageFile(path: string, framing: ImageFraming, payloads: readonly Uint8Array[]): Promise<void> {
  const tmp = `${path}.ferry-tmp-${process.pid}`;
  try {
    await writeFile(tmp, encodeImage(framing, payloads), { mode: 0o644 });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
