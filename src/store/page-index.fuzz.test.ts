/**
 * Property-based fuzzing of the page index (fast-check): the decoder on random and damaged
 * bytes (decodes, or ERR_SNAPSHOT_CORRUPT naming the file; never another exception, never a
 * hang), the codec's round trip, and the diff's invariants on random pagemaps: the rewritten
 * pagemap covers the same pages, and the pages it keeps are exactly what the index expects.
 * Inputs per property: FERRY_FUZZ_RUNS (`make fuzz` runs 10,000).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { PE_LAZY, PE_PARENT, PE_PRESENT, type PagemapRun } from '../criu/images/pagemap.js';
import { decodesOrNames, fuzzParams, mutated } from '../testing/fuzz.js';
import { decodeIndex, diffPagemap, encodeIndex, indexMismatch, logicalHashes, totalPages, type IndexSection } from './page-index.js';

const FILE = '/snap/ferry-pages.idx';
const section: fc.Arbitrary<IndexSection> = fc.record({
  id: fc.nat({ max: 0xffffffff }),
  hashes: fc.integer({ min: 0, max: 8 }).chain((n) => fc.uint8Array({ minLength: n * 16, maxLength: n * 16 })).map((b) => Buffer.from(b)),
});
const sections = fc.uniqueArray(section, { maxLength: 5, selector: (s) => s.id });

/** Sorted, non-overlapping runs of 1-6 pages with gaps, flags from a small set; hashes from a small alphabet (so pages repeat). */
function pagemap(flags: fc.Arbitrary<number>): fc.Arbitrary<{ entries: PagemapRun[]; labels: number[] }> {
  return fc.array(fc.record({ gap: fc.nat({ max: 3 }), pages: fc.integer({ min: 1, max: 6 }), flags }), { maxLength: 6 }).chain((runs) => {
    let pfn = 100;
    const entries = runs.map((r) => { pfn += r.gap; const e = { vaddr: BigInt(pfn) * 4096n, nrPages: r.pages, flags: r.flags }; pfn += r.pages; return e; });
    const n = totalPages(entries);
    return fc.array(fc.integer({ min: 1, max: 3 }), { minLength: n, maxLength: n }).map((labels) => ({ entries, labels }));
  });
}
/** Block hashes of the present pages of a pagemap, from per-page labels. */
function blocksOf(entries: readonly PagemapRun[], labels: readonly number[]): Buffer {
  const out: Buffer[] = [];
  let page = 0;
  for (const e of entries) {
    for (let k = 0; k < e.nrPages; k++) if (e.flags & PE_PRESENT) out.push(Buffer.alloc(16, labels[page + k]));
    page += e.nrPages;
  }
  return Buffer.concat(out);
}

describe('page index under fuzzing', () => {
  it('decodeIndex: random and damaged bytes decode or fail with ERR_SNAPSHOT_CORRUPT naming the file', async () => {
    const input = fc.oneof(
      fc.uint8Array({ maxLength: 128 }),
      sections.chain((s) => mutated(encodeIndex(s), 6)),
      fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.concat([Buffer.from('FERRYPI1'), b])),
    );
    await fc.assert(fc.asyncProperty(input, async (bytes) => {
      const buf = Buffer.from(bytes);
      await decodesOrNames(() => {
        const m = decodeIndex(buf, FILE);
        // What decodes is consistent: whole hashes, and no more bytes than the input.
        let total = 12;
        for (const h of m.values()) { assert.equal(h.length % 16, 0); total += 8 + h.length; }
        assert.ok(total <= buf.length);
      }, FILE, { code: 'ERR_SNAPSHOT_CORRUPT' });
    }), fuzzParams(500));
  });

  it('encodeIndex → decodeIndex is the identity', () => {
    fc.assert(fc.property(sections, (s) => {
      const m = decodeIndex(encodeIndex(s), FILE);
      assert.deepEqual([...m.entries()].map(([id, h]) => [id, Buffer.from(h)]), s.map((x) => [x.id, x.hashes]));
    }), fuzzParams(500));
  });

  it('diffPagemap: same pages covered, kept pages = present minus unchanged, and they match the index', () => {
    const child = pagemap(fc.constantFrom(PE_PRESENT, PE_PRESENT, PE_PRESENT | PE_LAZY, PE_LAZY));
    const base = pagemap(fc.constantFrom(PE_PRESENT, PE_PRESENT, PE_PARENT));
    fc.assert(fc.property(child, base, (c, b) => {
      const logical = logicalHashes(c.entries, blocksOf(c.entries, c.labels));
      const baseIndex = logicalHashes(b.entries, blocksOf(b.entries, b.labels));
      const d = diffPagemap(c.entries, logical, b.entries, baseIndex);
      const present = c.entries.filter((e) => e.flags & PE_PRESENT).reduce((a, e) => a + e.nrPages, 0);
      if (!d) return;
      // Page by page, the new pagemap covers exactly the old one's addresses, in order.
      const pages = (es: readonly PagemapRun[]) => es.flatMap((e) => Array.from({ length: e.nrPages }, (_, k) => e.vaddr + BigInt(k) * 4096n));
      assert.deepEqual(pages(d.out), pages(c.entries));
      assert.equal(d.pages, present);
      const keptPages = d.keep.reduce((a, k) => a + k.pages, 0);
      assert.equal(keptPages + d.inParent, present);
      assert.equal(d.kept.length, keptPages * 16);
      // The new pagemap with the kept pages is exactly what the index expects of the snapshot.
      assert.equal(indexMismatch(d.out, logical, d.kept), undefined);
      // Every PE_PARENT run is a page the base holds with the same hash.
      const baseHash = new Map<bigint, string>();
      let p = 0;
      for (const e of b.entries) { for (let k = 0; k < e.nrPages; k++) baseHash.set(e.vaddr + BigInt(k) * 4096n, baseIndex.subarray((p + k) * 16, (p + k + 1) * 16).toString('hex')); p += e.nrPages; }
      let q = 0;
      const childHash = new Map<bigint, string>();
      for (const e of c.entries) { for (let k = 0; k < e.nrPages; k++) childHash.set(e.vaddr + BigInt(k) * 4096n, logical.subarray((q + k) * 16, (q + k + 1) * 16).toString('hex')); q += e.nrPages; }
      for (const e of d.out.filter((x) => x.flags === PE_PARENT)) {
        for (const a of pages([e])) assert.equal(baseHash.get(a), childHash.get(a), `page ${a}`);
      }
    }), fuzzParams(500));
  });
});
