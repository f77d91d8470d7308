// Chains of deduped snapshots at the byte level, without root or CRIU: synthetic dumps (pagemaps
// written with writePagemap, pages files of known bytes) deduped, walked, rebased and folded.
import assert from 'node:assert/strict';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PE_PARENT, PE_PRESENT, readPagemap, writePagemap, type PagemapRun } from '../criu/images/pagemap.js';
import { withTempDir } from '../testing/processes.js';
import { isFerryError } from '../util/errors.js';
import { ancestors, checkParentLink, children, dependentDepth, foldInto, loadLevel, resolvePage } from './chain.js';
import { HASH_ALGORITHM, verifyChecksums } from './checksums.js';
import { rebaseOnto, storeImages } from './dedup.js';
import type { SnapshotManifest } from './manifest.js';
import { PAGE_INDEX } from './page-index.js';
import { readParentLink } from './parent-link.js';
import { Store, type StoredSnapshot } from './store.js';

const PAGE = 4096;
const run = (page: number, nrPages: number, flags = PE_PRESENT): PagemapRun => ({ vaddr: BigInt(page * PAGE), nrPages, flags });
const pageOf = (fill: number): Buffer => Buffer.alloc(PAGE, fill);
const pagesOf = (...fills: number[]): Buffer => Buffer.concat(fills.map(pageOf));

let clock = Date.parse('2026-01-01T00:00:00Z');

/** Writes a flat dump of `pages` (page number → fill byte) as snapshot `id`, deduped against `parent`. */
async function snapshot(store: Store, id: string, pages: [number, number][], parent?: string): Promise<StoredSnapshot> {
  const dir = join(store.tierDir('disk'), id);
  await mkdir(dir, { recursive: true });
  const entries: PagemapRun[] = [];
  for (const [pfn] of pages) {
    const last = entries[entries.length - 1];
    if (last && Number(last.vaddr) / PAGE + last.nrPages === pfn) last.nrPages++;
    else entries.push(run(pfn, 1));
  }
  await writePagemap(join(dir, 'pagemap-1.img'), { pagesId: 1 }, entries);
  await writeFile(join(dir, 'pages-1.img'), pagesOf(...pages.map(([, f]) => f)));
  await writeFile(join(dir, 'core-1.img'), `core of ${id}`);
  const r = await storeImages(dir, parent ? { id: parent, dir: join(store.tierDir('disk'), parent) } : undefined);
  const manifest = {
    format: 1, id, name: undefined, parent: r.dedup?.parent, tier: 'disk', createdAt: new Date(clock += 1000).toISOString(),
    target: { kind: 'process', pid: 1, workload: 'w', command: ['x'], ownPidNamespace: true },
    host: { hostname: 'h', kernel: 'k', arch: 'x64', cpuFlags: [] }, criu: { version: '4.2' },
    options: { tcpEstablished: false, extUnixSk: false, fileLocks: false, shellJob: false }, stats: undefined,
    timings: { totalMs: 0, criuMs: 0, checksumMs: 0 }, bytes: Object.values(r.files).reduce((a, f) => a + f.size, 0),
    logicalBytes: r.logicalBytes, ...(r.dedup ? { dedup: r.dedup } : {}), algorithm: HASH_ALGORITHM, files: r.files,
  } as unknown as SnapshotManifest;
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest));
  return { manifest, dir };
}

/** What a restore of `s` would read at each page: its own pages, then its chain's. */
async function contentOf(store: Store, s: StoredSnapshot, pfns: number[]): Promise<number[]> {
  const levels = await Promise.all([s, ...await ancestors(store, s)].map((x) => loadLevel(x.dir, 1)));
  const out: number[] = [];
  for (const pfn of pfns) {
    const r = resolvePage(levels, pfn);
    if (!r) { out.push(-1); continue; }
    const data = await readFile(levels[r.level]!.pagesPath);
    out.push(data[r.offset]!);
  }
  return out;
}

async function withStore(fn: (store: Store) => Promise<void>): Promise<void> {
  await withTempDir('chain', async (dir) => {
    const store = new Store({ root: join(dir, 'store'), memoryDir: join(dir, 'mem') });
    await store.ensure('disk');
    await fn(store);
  });
}

const A: [number, number][] = [[100, 1], [101, 2], [102, 3], [103, 4]];
const B: [number, number][] = [[100, 1], [101, 2], [102, 9], [103, 4], [104, 5]];
const C: [number, number][] = [[100, 7], [101, 2], [102, 9], [103, 4], [104, 5]];
const ALL = [100, 101, 102, 103, 104, 105];

describe('snapshot chains (synthetic images)', () => {
  it('forward dedup: unchanged pages become PE_PARENT runs, only the rest stays, the parent link is written', async () => {
    await withStore(async (store) => {
      await snapshot(store, 'a', A);
      const b = await snapshot(store, 'b', B, 'a');
      assert.deepEqual(b.manifest.dedup && { ...b.manifest.dedup, ms: 0 }, { parent: 'a', pages: 5, inParent: 3, savedBytes: 3 * PAGE, ms: 0 });
      assert.deepEqual((await readPagemap(join(b.dir, 'pagemap-1.img'))).entries, [run(100, 2, PE_PARENT), run(102, 1), run(103, 1, PE_PARENT), run(104, 1)]);
      assert.deepEqual(await readFile(join(b.dir, 'pages-1.img')), pagesOf(9, 5));
      assert.equal(await readParentLink(b.dir), '../a');
      await checkParentLink(b);
      await verifyChecksums(b.dir, b.manifest.files, 'b');
      const flat = join(store.root, 'flat-pagemap.img');
      await writePagemap(flat, { pagesId: 1 }, [run(100, 5)]);
      assert.equal(b.manifest.logicalBytes, 5 * PAGE + (await readFile(flat)).length + 'core of b'.length, 'logical bytes: the flat dump');
      assert.deepEqual(await contentOf(store, b, ALL), [1, 2, 9, 4, 5, -1]);
    });
  });

  it('ancestors, children and depth of a three-level chain; page resolution through it', async () => {
    await withStore(async (store) => {
      const a = await snapshot(store, 'a', A);
      const b = await snapshot(store, 'b', B, 'a');
      const c = await snapshot(store, 'c', C, 'b');
      assert.deepEqual((await ancestors(store, c)).map((s) => s.manifest.id), ['b', 'a']);
      assert.deepEqual(await ancestors(store, a), []);
      assert.deepEqual((await children(store, 'a')).map((s) => s.manifest.id), ['b']);
      assert.deepEqual([await dependentDepth(store, 'a'), await dependentDepth(store, 'b'), await dependentDepth(store, 'c')], [2, 1, 0]);
      assert.deepEqual((await readPagemap(join(c.dir, 'pagemap-1.img'))).entries, [run(100, 1), run(101, 4, PE_PARENT)]);
      const levels = await Promise.all([b, a].map((s) => loadLevel(s.dir, 1)));
      assert.deepEqual(resolvePage(levels, 101), { level: 1, offset: 1 * PAGE, flags: PE_PRESENT });
      assert.deepEqual(resolvePage(levels, 104), { level: 0, offset: 1 * PAGE, flags: PE_PRESENT });
      assert.equal(resolvePage(levels, 105), undefined);
      assert.deepEqual(await contentOf(store, c, ALL), [7, 2, 9, 4, 5, -1]);
    });
  });

  it('broken chains: a missing parent, a loop, another tier, a tampered or missing parent link', async () => {
    await withStore(async (store) => {
      await snapshot(store, 'a', A);
      const b = await snapshot(store, 'b', B, 'a');
      const fake = (id: string, parent: string | undefined, tier = 'disk'): StoredSnapshot => ({ manifest: { ...b.manifest, id, parent, tier } as SnapshotManifest, dir: b.dir });
      await assert.rejects(ancestors(store, fake('x', 'gone')), (e) => isFerryError(e) && e.code === 'ERR_SNAPSHOT_BROKEN_CHAIN' && /x builds on gone, which is not in the store/.test(e.message));
      await assert.rejects(ancestors(store, fake('x', 'y'), [fake('y', 'x'), fake('x', 'y')]), (e) => isFerryError(e) && e.code === 'ERR_SNAPSHOT_CORRUPT' && /loops at x/.test(e.message));
      await assert.rejects(ancestors(store, fake('x', 'a', 'memory')), (e) => isFerryError(e) && /x \(memory tier\) builds on a in the disk tier/.test(e.message));
      await rm(join(b.dir, 'parent'));
      await assert.rejects(checkParentLink(b), (e) => isFerryError(e) && e.code === 'ERR_SNAPSHOT_CORRUPT' && /parent link is missing, expected \.\.\/a/.test(e.message));
      await symlink('../zz', join(b.dir, 'parent'));
      await assert.rejects(checkParentLink(b), (e) => isFerryError(e) && /parent link is \.\.\/zz, expected \.\.\/a/.test(e.message));
      await assert.rejects(checkParentLink(fake('b', undefined)), (e) => isFerryError(e) && /parent link is \.\.\/zz, expected none/.test(e.message));
    });
  });

  it('foldInto: a whole chain folds into a flat snapshot with the same content, checked against its page index', async () => {
    await withStore(async (store) => {
      await snapshot(store, 'a', A);
      await snapshot(store, 'b', B, 'a');
      const c = await snapshot(store, 'c', C, 'b');
      // One level: c now builds on a, taking b's pages in.
      const m1 = await foldInto(store, c, 1);
      assert.equal(m1.parent, 'a');
      assert.deepEqual(m1.compacted?.map((x) => x.folded), [['b']]);
      const c1 = await store.get('c');
      assert.deepEqual((await readPagemap(join(c1.dir, 'pagemap-1.img'))).entries, [run(100, 1), run(101, 1, PE_PARENT), run(102, 1), run(103, 1, PE_PARENT), run(104, 1)]);
      assert.deepEqual(await readFile(join(c1.dir, 'pages-1.img')), pagesOf(7, 9, 5));
      assert.equal(await readParentLink(c1.dir), '../a');
      await verifyChecksums(c1.dir, m1.files, 'c');
      // The rest: flat.
      const m2 = await foldInto(store, c1);
      assert.equal(m2.parent, undefined);
      assert.equal(m2.dedup, undefined);
      const c2 = await store.get('c');
      assert.deepEqual((await readPagemap(join(c2.dir, 'pagemap-1.img'))).entries, [run(100, 5)]);
      assert.deepEqual(await readFile(join(c2.dir, 'pages-1.img')), pagesOf(7, 2, 9, 4, 5));
      assert.equal(await readParentLink(c2.dir), undefined);
      assert.equal(m2.files[PAGE_INDEX]?.hash, c.manifest.files[PAGE_INDEX]?.hash, 'the page index is unchanged');
      await verifyChecksums(c2.dir, m2.files, 'c');
      // A flat snapshot folds to itself.
      assert.equal(await foldInto(store, c2), c2.manifest);
    });
  });

  it('foldInto refuses a chain whose pages do not match the page index, and leaves the snapshot as it was', async () => {
    await withStore(async (store) => {
      const a = await snapshot(store, 'a', A);
      const b = await snapshot(store, 'b', B, 'a');
      const before = await readFile(join(b.dir, 'pages-1.img'));
      const pages = await readFile(join(a.dir, 'pages-1.img'));
      pages[PAGE + 7] = 0xee; // page 101 of the parent changed behind ferry's back
      await writeFile(join(a.dir, 'pages-1.img'), pages);
      await assert.rejects(foldInto(store, b), (e) => isFerryError(e) && e.code === 'ERR_SNAPSHOT_CORRUPT' && /page 413696 does not match its page index/.test(e.message));
      assert.deepEqual(await readFile(join(b.dir, 'pages-1.img')), before);
      assert.equal(await readParentLink(b.dir), '../a');
      await verifyChecksums(b.dir, b.manifest.files, 'b');
    });
  });

  it('rebaseOnto (newest stays flat): the older snapshot takes its unchanged pages from the newer', async () => {
    await withStore(async (store) => {
      const a = await snapshot(store, 'a', A);
      const n = await snapshot(store, 'n', B);
      assert.equal(n.manifest.parent, undefined);
      const m = await rebaseOnto(a, n);
      assert.ok(m);
      assert.equal(m.parent, 'n');
      const a2 = await store.get('a');
      // Saved: three pages, less what the longer pagemap costs.
      const pmGrowth = (await readFile(join(a2.dir, 'pagemap-1.img'))).length - a.manifest.files['pagemap-1.img']!.size;
      assert.ok(pmGrowth > 0 && pmGrowth < 64, String(pmGrowth));
      assert.deepEqual(m.dedup && [m.dedup.pages, m.dedup.inParent, m.dedup.savedBytes], [4, 3, 3 * PAGE - pmGrowth]);
      assert.deepEqual((await readPagemap(join(a2.dir, 'pagemap-1.img'))).entries, [run(100, 2, PE_PARENT), run(102, 1), run(103, 1, PE_PARENT)]);
      assert.deepEqual(await readFile(join(a2.dir, 'pages-1.img')), pagesOf(3));
      assert.deepEqual(await contentOf(store, a2, ALL), [1, 2, 3, 4, -1, -1]);
      await checkParentLink(a2);
      // Already chained: not rebased again.
      assert.equal(await rebaseOnto(a2, n), undefined);
    });
  });
});
