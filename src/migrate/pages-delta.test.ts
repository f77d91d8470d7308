// The have/need exchange without CRIU: a hand-made dump (pagemap + pages image + another image),
// a destination's have-set of an earlier state, the delta built against it — and the content a
// CRIU-style read of the delta through its parent gives back, page by page, equals the new dump.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PAGE_SIZE, PE_PARENT, PE_PRESENT, readPagemap, writePagemap, type PagemapRun } from '../criu/images/pagemap.js';
import { loadLevel, resolvePage } from '../store/chain.js';
import { HASH_BYTES, pfnOf, readIndex } from '../store/page-index.js';
import { buildDelta } from './pages-delta.js';
import { decodeHave, encodeHave, haveOfSnapshot, type HaveSet } from './pages-have.js';

let base: string;
before(async () => { base = await mkdtemp(join(tmpdir(), 'ferry-delta-')); });
after(async () => { await rm(base, { recursive: true, force: true }); });

const RUNS: PagemapRun[] = [
  { vaddr: 0x400000n, nrPages: 40, flags: PE_PRESENT },
  { vaddr: 0x7f0000000000n, nrPages: 3, flags: 0 }, // not present (e.g. zero pages): never sent, never diffed
  { vaddr: 0x7f0000100000n, nrPages: 60, flags: PE_PRESENT },
];
const PRESENT = 100;

/** Page `i`'s content in state `v`: pages listed in `changed` differ from state 0. */
function page(i: number, changed: ReadonlySet<number>, v: number): Buffer {
  const b = Buffer.alloc(PAGE_SIZE, (i * 7 + 1) & 0xff);
  b.writeUInt32LE(i, 0);
  if (changed.has(i)) b.writeUInt32LE(1000 + v, 8);
  return b;
}

async function dump(dir: string, changed: ReadonlySet<number>, v: number): Promise<Buffer[]> {
  await mkdir(dir, { recursive: true });
  const pages = Array.from({ length: PRESENT }, (_, i) => page(i, changed, v));
  await writePagemap(join(dir, 'pagemap-1.img'), { pagesId: 7 }, RUNS);
  await writeFile(join(dir, 'pages-7.img'), Buffer.concat(pages));
  await writeFile(join(dir, 'core-1.img'), `core ${v}`);
  await writeFile(join(dir, 'dump.log'), 'a log never sent');
  return pages;
}

/** The content of every present page of the snapshot in `dir`, following PE_PARENT into `parentDir`. */
async function readThrough(dir: string, parentDir: string | undefined): Promise<Buffer[]> {
  const levels = [await loadLevel(dir, 1), ...(parentDir ? [await loadLevel(parentDir, 1)] : [])];
  const out: Buffer[] = [];
  for (const run of RUNS.filter((r) => r.flags & PE_PRESENT)) {
    for (let k = 0; k < run.nrPages; k++) {
      const r = resolvePage(levels, pfnOf(run.vaddr) + k);
      assert.ok(r, `page ${k} of run ${run.vaddr} resolves`);
      const file = readFileSync(levels[r.level]!.pagesPath);
      out.push(file.subarray(r.offset, r.offset + PAGE_SIZE));
    }
  }
  return out;
}

describe('pages have/need', () => {
  it('a flat first transfer carries every file but logs, and the page index', async () => {
    const d0 = join(base, 'd0');
    await dump(d0, new Set(), 0);
    const delta = await buildDelta(d0, join(base, 's0'), undefined);
    try {
      assert.equal(delta.parent, undefined);
      assert.deepEqual(Object.keys(delta.files).sort(), ['core-1.img', 'ferry-pages.idx', 'pagemap-1.img', 'pages-7.img']);
      assert.deepEqual((await readdir(delta.dir)).sort(), Object.keys(delta.files).sort());
      assert.equal(delta.pages, PRESENT);
      assert.equal(delta.inParent, 0);
      assert.equal(delta.files['pages-7.img']!.size, PRESENT * PAGE_SIZE);
      const index = await readIndex(delta.dir);
      assert.equal(index?.get(1)?.length, (PRESENT + 3) * HASH_BYTES);
    } finally { await delta.dispose(); }
  });

  it('a second transfer sends only the changed pages, and reads back as the new dump through its parent', async () => {
    const dest = join(base, 'dest');
    const d0 = join(base, 'a0'), d1 = join(base, 'a1');
    await dump(d0, new Set(), 0);
    const first = await buildDelta(d0, join(base, 'sa0'), undefined);
    // The destination holds the first set (a snapshot directory) and says what it has.
    await rm(dest, { recursive: true, force: true });
    const { rename } = await import('node:fs/promises');
    await rename(first.dir, dest);
    const served = await haveOfSnapshot(dest);
    assert.ok(served);
    const have: HaveSet = { base: 'snap-a', sections: decodeHave(encodeHave(served), 'the test') };
    assert.deepEqual(have.sections.get(1)?.entries, RUNS);
    const changed = new Set([0, 1, 2, 39, 40, 77, 99]);
    const want = await dump(d1, changed, 1);
    const delta = await buildDelta(d1, join(base, 'sa1'), have);
    try {
      assert.equal(delta.parent, 'snap-a');
      assert.equal(delta.inParent, PRESENT - changed.size);
      assert.equal(delta.files['pages-7.img']!.size, changed.size * PAGE_SIZE);
      assert.ok(delta.bytes < delta.flatBytes / 5, `${delta.bytes} of ${delta.flatBytes} bytes`);
      const pm = await readPagemap(join(delta.dir, 'pagemap-1.img'));
      assert.ok(pm.entries.some((e) => e.flags === PE_PARENT));
      const got = await readThrough(delta.dir, dest);
      assert.equal(got.length, want.length);
      got.forEach((g, i) => assert.ok(g.equals(want[i]!), `page ${i} reads back`));
      // The next round diffs against this one's full content (not only what it carried).
      assert.ok(delta.have.get(1)?.hashes.equals((await readIndex(delta.dir))!.get(1)!));
      // The dump itself is untouched.
      assert.equal(readFileSync(join(d1, 'pages-7.img')).length, PRESENT * PAGE_SIZE);
    } finally { await delta.dispose(); }
  });

  it('nothing in common: sent whole, with no parent', async () => {
    const d2 = join(base, 'b2');
    await dump(d2, new Set(Array.from({ length: PRESENT }, (_, i) => i)), 2);
    const d3 = join(base, 'b3');
    await dump(d3, new Set(), 0);
    const have: HaveSet = { base: 'snap-b', sections: (await buildDelta(d3, join(base, 'sb3'), undefined)).have };
    const delta = await buildDelta(d2, join(base, 'sb2'), have);
    try {
      assert.equal(delta.parent, undefined);
      assert.equal(delta.files['pages-7.img']!.size, PRESENT * PAGE_SIZE);
    } finally { await delta.dispose(); }
  });

  it('a malformed have-set is refused', () => {
    const good = encodeHave(new Map([[1, { entries: RUNS, hashes: Buffer.alloc((PRESENT + 3) * HASH_BYTES) }]]));
    assert.equal(decodeHave(good, 'x').get(1)?.entries.length, 3);
    assert.throws(() => decodeHave(good.subarray(0, good.length - 1), 'x'), { code: 'ERR_TRANSFER_INVALID' });
    assert.throws(() => decodeHave(Buffer.concat([good, Buffer.alloc(1)]), 'x'), { code: 'ERR_TRANSFER_INVALID' });
    assert.throws(() => decodeHave(Buffer.from('FERRYPH0'), 'x'), { code: 'ERR_TRANSFER_INVALID' });
    const lying = Buffer.from(good);
    lying.writeUInt32LE(PRESENT, 20); // the hashes count no longer matches the runs
    assert.throws(() => decodeHave(lying, 'x'), /runs hold/);
  });
});
