/**
 * Reading a dumped task's memory: the bytes at [start, end) come from pages-<pages_id>.img at
 * the offsets the pagemap gives, page by page (a range may span runs). Pages without data
 * in this image (in the parent snapshot, lazy, or never dumped) make the read fail with the
 * reason, never guess.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { errnoCode } from '../../util/errors.js';
import { imageFormatError } from './framing.js';
import { PAGE_SIZE, PE_LAZY, PE_PARENT, pagesPath, presentRuns, type Pagemap, type PresentRun } from './pagemap.js';

/** Reads larger than this are refused (the argument and environment areas are far smaller). */
export const MAX_MEMORY_READ = 4 << 20;

export type MemoryRead = { ok: true; bytes: Buffer } | { ok: false; reason: string };

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** Why the page at `vaddr` has no data in the pages file. */
function missingReason(pagemap: Pagemap, vaddr: bigint): string {
  const page = BigInt(PAGE_SIZE);
  const run = pagemap.entries.find((e) => vaddr >= e.vaddr && vaddr < e.vaddr + BigInt(e.nrPages) * page);
  if (run === undefined) return `page ${hex(vaddr)} is not in the images (not dumped)`;
  if ((run.flags & PE_PARENT) !== 0) return `page ${hex(vaddr)} is in the parent snapshot`;
  if ((run.flags & PE_LAZY) !== 0) return `page ${hex(vaddr)} is lazy (not in the images; served on restore)`;
  return `page ${hex(vaddr)} has no data (pagemap flags ${run.flags})`;
}

function findRun(runs: readonly PresentRun[], vaddr: bigint): PresentRun | undefined {
  const page = BigInt(PAGE_SIZE);
  return runs.find((r) => vaddr >= r.vaddr && vaddr < r.vaddr + BigInt(r.nrPages) * page);
}

/** The bytes at [start, end) of the task whose pagemap this is; `dir` holds its pages file. */
export async function readTaskMemory(dir: string, pagemap: Pagemap, start: bigint, end: bigint): Promise<MemoryRead> {
  if (end <= start) return { ok: true, bytes: Buffer.alloc(0) };
  if (end - start > BigInt(MAX_MEMORY_READ)) return { ok: false, reason: `${end - start} bytes is too much to read` };
  const page = BigInt(PAGE_SIZE);
  const { runs } = presentRuns(pagemap.entries);
  const pieces: { fileOffset: number; length: number }[] = [];
  for (let at = start; at < end;) {
    const pageEnd = (at / page + 1n) * page;
    const stop = pageEnd < end ? pageEnd : end;
    const run = findRun(runs, at);
    if (run === undefined) return { ok: false, reason: missingReason(pagemap, at) };
    pieces.push({ fileOffset: run.offset + Number(at - run.vaddr), length: Number(stop - at) });
    at = stop;
  }
  const file = pagesPath(dir, pagemap.pagesId);
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return { ok: false, reason: `pages-${pagemap.pagesId}.img is missing` };
    throw err;
  }
  try {
    const out = Buffer.alloc(Number(end - start));
    let pos = 0;
    for (const p of pieces) {
      const { bytesRead } = await fh.read(out, pos, p.length, p.fileOffset);
      if (bytesRead !== p.length) {
        throw imageFormatError(file, `pages file too short: ${p.length} bytes wanted, ${bytesRead} found`, p.fileOffset);
      }
      pos += p.length;
    }
    return { ok: true, bytes: out };
  } finally {
    await fh.close();
  }
}
