// The page index codec and the pure pagemap logic of dedup (no root, no CRIU, no files).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PE_LAZY, PE_PARENT, PE_PRESENT, type PagemapRun } from '../criu/images/pagemap.js';
import { isFerryError } from '../util/errors.js';
import {
  decodeIndex, diffPagemap, encodeIndex, HashAt, indexMismatch, logicalHashes, PageRuns, pagemapIdsOf, totalPages,
} from './page-index.js';

const P = 4096n;
/** A distinct 16-byte "hash" per label. */
const h = (label: number): Buffer => Buffer.alloc(16, label);
const hashes = (...labels: number[]): Buffer => Buffer.concat(labels.map(h));
const run = (page: number, nrPages: number, flags = PE_PRESENT): PagemapRun => ({ vaddr: BigInt(page) * P, nrPages, flags });

function corrupt(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e) => isFerryError(e) && e.code === 'ERR_SNAPSHOT_CORRUPT' && pattern.test(e.message) && /page index x\.idx/.test(e.message));
}

describe('page index codec', () => {
  it('round-trips sections, byte for byte', () => {
    const buf = encodeIndex([{ id: 7, hashes: hashes(1, 2) }, { id: 9, hashes: Buffer.alloc(0) }]);
    assert.equal(buf.length, 12 + 8 + 32 + 8);
    assert.equal(buf.subarray(0, 8).toString(), 'FERRYPI1');
    assert.equal(buf.readUInt32LE(8), 2);
    assert.deepEqual([buf.readUInt32LE(12), buf.readUInt32LE(16)], [7, 2]);
    const m = decodeIndex(buf, 'x.idx');
    assert.deepEqual([...m.keys()], [7, 9]);
    assert.deepEqual(m.get(7), hashes(1, 2));
    assert.equal(m.get(9)?.length, 0);
  });

  it('refuses damaged indexes, naming the file', () => {
    const good = encodeIndex([{ id: 1, hashes: hashes(1, 2, 3) }]);
    corrupt(() => decodeIndex(Buffer.from('FERRYPI2\0\0\0\0'), 'x.idx'), /not a ferry page index/);
    corrupt(() => decodeIndex(good.subarray(0, 11), 'x.idx'), /not a ferry page index/);
    corrupt(() => decodeIndex(good.subarray(0, 16), 'x.idx'), /truncated section header/);
    corrupt(() => decodeIndex(good.subarray(0, good.length - 1), 'x.idx'), /truncated section$/);
    corrupt(() => decodeIndex(Buffer.concat([good, Buffer.from([0])]), 'x.idx'), /1 bytes after the last section/);
    const twice = encodeIndex([{ id: 4, hashes: h(1) }, { id: 4, hashes: h(2) }]);
    corrupt(() => decodeIndex(twice, 'x.idx'), /pagemap 4 appears twice/);
    // A huge declared page count is a truncation, not an allocation.
    const huge = Buffer.from(good);
    huge.writeUInt32LE(0xffffffff, 16);
    corrupt(() => decodeIndex(huge, 'x.idx'), /truncated section$/);
  });

  it('finds pagemap ids among file names (not shmem, not other files), ascending', () => {
    assert.deepEqual(pagemapIdsOf(['pagemap-12.img', 'pages-1.img', 'pagemap-shmem-3.img', 'pagemap-2.img', 'pagemap-x.img', 'core-2.img']), [2, 12]);
  });
});

describe('pagemap runs and hashes', () => {
  // Pages 10-11 present, 12 in the parent, 20-22 present, 30 lazy (no data).
  const entries = [run(20, 3), run(10, 2), run(12, 1, PE_PARENT), run(30, 1, PE_LAZY)];

  it('PageRuns: sorted by address, logical page index and pages-file offset per run, found in any order', () => {
    const r = new PageRuns(entries);
    assert.deepEqual(r.runs.map((x) => [x.start, x.end, x.first, x.offset]), [[10, 12, 3, 3 * 4096], [12, 13, 5, -1], [20, 23, 0, 0], [30, 31, 6, -1]]);
    assert.equal(r.find(21)?.start, 20);
    assert.equal(r.find(11)?.start, 10); // backwards: binary search
    assert.equal(r.find(12)?.flags, PE_PARENT);
    assert.equal(r.find(13), undefined);
    assert.equal(r.find(9), undefined);
    assert.equal(r.find(31), undefined);
    assert.equal(r.find(30)?.flags, PE_LAZY);
    for (let pfn = 0; pfn < 40; pfn++) {
      const want = r.runs.find((x) => pfn >= x.start && pfn < x.end);
      assert.deepEqual(new PageRuns(entries).find(pfn), want, `cold lookup of ${pfn}`);
    }
  });

  it('logicalHashes: present pages take their block hash in order, the others zero', () => {
    const logical = logicalHashes(entries, hashes(1, 2, 3, 4, 5));
    assert.equal(totalPages(entries), 7);
    assert.deepEqual(logical, Buffer.concat([hashes(1, 2, 3, 4, 5), Buffer.alloc(32)]));
  });

  it('HashAt: the logical page of an address, -1 where there is none or the index is short', () => {
    const at = new HashAt(entries, Buffer.alloc(7 * 16));
    assert.deepEqual([10, 11, 12, 20, 22, 30, 13, 23, 31].map((p) => at.get(p)), [3, 4, 5, 0, 2, 6, -1, -1, -1]);
    assert.equal(new HashAt(entries, Buffer.alloc(3 * 16)).get(11), -1);
  });
});

describe('diffPagemap', () => {
  // The base holds pages 100-103 with hashes 1-4.
  const baseMap = [run(100, 4)];
  const baseIndex = hashes(1, 2, 3, 4);

  it('unchanged runs become PE_PARENT; changed ones stay with their data ranges and hashes', () => {
    // The new dump: pages 99-104; 100, 101 and 103 unchanged, 102 changed, 99 and 104 new.
    const entries = [run(99, 6)];
    const logical = hashes(9, 1, 2, 8, 4, 7);
    const d = diffPagemap(entries, logical, baseMap, baseIndex);
    assert.ok(d);
    assert.deepEqual(d.out, [run(99, 1), run(100, 2, PE_PARENT), run(102, 1), run(103, 1, PE_PARENT), run(104, 1)]);
    assert.deepEqual(d.keep, [{ from: 0, pages: 1 }, { from: 3, pages: 1 }, { from: 5, pages: 1 }]);
    assert.deepEqual(d.kept, hashes(9, 8, 7));
    assert.deepEqual([d.pages, d.inParent], [6, 3]);
  });

  it('keeps non-present runs and numbers kept pages in the old pages image across runs', () => {
    const entries = [run(100, 2), run(50, 1, PE_LAZY), run(102, 2)];
    const logical = hashes(1, 5, 0, 3, 6);
    const d = diffPagemap(entries, logical, baseMap, baseIndex);
    assert.ok(d);
    assert.deepEqual(d.out, [run(100, 1, PE_PARENT), run(101, 1), run(50, 1, PE_LAZY), run(102, 1, PE_PARENT), run(103, 1)]);
    assert.deepEqual(d.keep, [{ from: 1, pages: 1 }, { from: 3, pages: 1 }]);
    assert.deepEqual(d.kept, hashes(5, 6));
  });

  it('nothing to share: no equal page, an index that does not fit, or a dump already chained', () => {
    assert.equal(diffPagemap([run(100, 2)], hashes(7, 8), baseMap, baseIndex), undefined);
    assert.equal(diffPagemap([run(100, 2)], hashes(1, 2), baseMap, hashes(1, 2, 3)), undefined);
    assert.equal(diffPagemap([run(100, 1), run(101, 1, PE_PARENT)], hashes(1, 0), baseMap, baseIndex), undefined);
  });

  it('a page the base reads from its own parent (zero hash) never counts as unchanged', () => {
    const d = diffPagemap([run(100, 2)], hashes(5, 2), [run(100, 1, PE_PARENT), run(101, 1)], hashes(0, 2));
    assert.ok(d);
    assert.deepEqual(d.out, [run(100, 1), run(101, 1, PE_PARENT)]);
  });
});

describe('indexMismatch', () => {
  const entries = [run(10, 2), run(12, 1, PE_PARENT), run(13, 1)];
  const logical = hashes(1, 2, 0, 3);
  it('undefined when the pages image holds exactly the indexed pages', () => {
    assert.equal(indexMismatch(entries, logical, hashes(1, 2, 3)), undefined);
  });
  it('the address of the first page that differs, or that the counts disagree', () => {
    assert.deepEqual(indexMismatch(entries, logical, hashes(1, 2, 4)), { vaddr: 13n * P });
    assert.deepEqual(indexMismatch(entries, logical, hashes(1, 9, 3)), { vaddr: 11n * P });
    assert.deepEqual(indexMismatch(entries, logical, hashes(1, 2, 3, 3)), { count: true });
    assert.deepEqual(indexMismatch(entries, logical, hashes(1, 2)), { vaddr: 13n * P });
    assert.deepEqual(indexMismatch(entries, hashes(1), hashes(1, 2, 3)), { vaddr: 11n * P });
  });
});
