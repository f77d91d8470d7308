/**
 * The "have" side of an incremental transfer: which page contents a destination already holds,
 * and at which addresses. For every pagemap of a snapshot it holds (a replica, or the round
 * sent before), its runs (address, pages, flags) and one XXH3-128 per logical page, the page
 * index's form (page-index.ts: all-zero for a page the snapshot does not hold). The source diffs
 * its fresh dump against it and sends only the pages whose content differs (pages-delta.ts).
 *
 *   file    := MAGIC "FERRYPH1" | u32 sections | { section }                       (little-endian)
 *   section := u32 pagemap id | u32 runs | u32 pages | runs × (u64 vaddr | u32 pages | u32 flags)
 *              | pages × 16-byte hash
 *
 * 1 GiB of memory is ≈ 4 MiB of it (the hashes), ≈ 35 ms on a 1 Gbit/s link.
 */
import { join } from 'node:path';
import { readPagemap, type PagemapRun } from '../criu/images/pagemap.js';
import { HASH_BYTES, readIndex, totalPages } from '../store/page-index.js';
import { FerryError } from '../util/errors.js';

export const HAVE_CONTENT_TYPE = 'application/vnd.ferry.pages-have';
const MAGIC = Buffer.from('FERRYPH1');
/** The most pagemaps (processes) and runs a have-set may describe (bounds a hostile one). */
const MAX_SECTIONS = 65_536;
const MAX_RUNS = 1 << 24;

/** One pagemap's runs and logical page hashes (totalPages(entries) × 16 bytes). */
export interface HaveSection { entries: PagemapRun[]; hashes: Buffer }

/** What a destination holds: the snapshot the pages are in, and its pagemaps' content. */
export interface HaveSet {
  /** The destination's snapshot a delta builds on (its `parent`). */
  base: string;
  sections: Map<number, HaveSection>;
}

export function encodeHave(sections: ReadonlyMap<number, HaveSection>): Buffer {
  const head = Buffer.alloc(12);
  MAGIC.copy(head, 0);
  head.writeUInt32LE(sections.size, 8);
  const parts: Buffer[] = [head];
  for (const [id, s] of [...sections].sort((a, b) => a[0] - b[0])) {
    const h = Buffer.alloc(12 + s.entries.length * 16);
    h.writeUInt32LE(id, 0);
    h.writeUInt32LE(s.entries.length, 4);
    h.writeUInt32LE(s.hashes.length / HASH_BYTES, 8);
    s.entries.forEach((e, i) => {
      h.writeBigUInt64LE(e.vaddr, 12 + i * 16);
      h.writeUInt32LE(e.nrPages, 20 + i * 16);
      h.writeUInt32LE(e.flags, 24 + i * 16);
    });
    parts.push(h, s.hashes);
  }
  return Buffer.concat(parts);
}

/** Decodes a have-set; anything malformed is ERR_TRANSFER_INVALID naming what (`from`: whose it is). */
export function decodeHave(buf: Buffer, from: string): Map<number, HaveSection> {
  const bad = (what: string) => new FerryError('ERR_TRANSFER_INVALID', `the page list from ${from} is malformed: ${what}`, {
    hint: 'the destination\'s snapshot or agent is damaged or of another version; migrate with --strategy cold',
  });
  if (buf.length < 12 || !buf.subarray(0, 8).equals(MAGIC)) throw bad('no FERRYPH1 magic');
  const n = buf.readUInt32LE(8);
  if (n > MAX_SECTIONS) throw bad(`${n} pagemaps`);
  const out = new Map<number, HaveSection>();
  let pos = 12;
  for (let i = 0; i < n; i++) {
    if (buf.length - pos < 12) throw bad('truncated section header');
    const id = buf.readUInt32LE(pos);
    const runs = buf.readUInt32LE(pos + 4);
    const pages = buf.readUInt32LE(pos + 8);
    pos += 12;
    if (runs > MAX_RUNS || buf.length - pos < runs * 16 + pages * HASH_BYTES) throw bad(`truncated section for pagemap ${id}`);
    if (out.has(id)) throw bad(`pagemap ${id} appears twice`);
    const entries: PagemapRun[] = [];
    for (let r = 0; r < runs; r++, pos += 16) {
      entries.push({ vaddr: buf.readBigUInt64LE(pos), nrPages: buf.readUInt32LE(pos + 8), flags: buf.readUInt32LE(pos + 12) });
    }
    if (totalPages(entries) !== pages) throw bad(`pagemap ${id}'s runs hold ${totalPages(entries)} pages, its hashes ${pages}`);
    out.set(id, { entries, hashes: Buffer.from(buf.subarray(pos, pos + pages * HASH_BYTES)) });
    pos += pages * HASH_BYTES;
  }
  if (pos !== buf.length) throw bad(`${buf.length - pos} bytes after the last section`);
  return out;
}

/**
 * The have-set of a stored snapshot: its page index and pagemaps. Undefined when it has no page
 * index (a snapshot taken without one: nothing can be diffed against it).
 */
export async function haveOfSnapshot(dir: string): Promise<Map<number, HaveSection> | undefined> {
  const index = await readIndex(dir);
  if (!index) return undefined;
  const out = new Map<number, HaveSection>();
  for (const [id, hashes] of index) {
    const pm = await readPagemap(join(dir, `pagemap-${id}.img`));
    // A pagemap and an index that disagree cannot be trusted for a diff: leave it out (sent whole).
    if (totalPages(pm.entries) * HASH_BYTES !== hashes.length) continue;
    out.set(id, { entries: pm.entries, hashes });
  }
  return out;
}
