import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { create, fromBinary, isFieldSet, toBinary } from '@bufbuild/protobuf';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isFerryError } from '../../util/errors.js';
import { PagemapEntrySchema, PagemapHeadSchema } from '../gen/criu-images_pb.js';
import { encodeImage, readImageEntries } from './framing.js';
import { IMAGE_KINDS } from './magic.js';
import {
  PE_LAZY, PE_PARENT, PE_PRESENT, decodePagemap, encodePagemapRun, pagesFileOffset, presentRuns, readPagemap, writePagemap, type PagemapRun,
} from './pagemap.js';

const head = (pagesId: number): Uint8Array => toBinary(PagemapHeadSchema, create(PagemapHeadSchema, { pagesId }));

void describe('pagemap', () => {
  let dir: string;
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'ferry-pagemap-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  async function pagemapFile(name: string, payloads: Uint8Array[]): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, encodeImage(IMAGE_KINDS.pagemap, payloads));
    return path;
  }

  void it('reads a CRIU <= 4.1 entry: count in field 2, no field 5, no flags -> PE_PRESENT', async () => {
    const legacy = toBinary(PagemapEntrySchema, create(PagemapEntrySchema, { vaddr: 0x7f0000001000n, compatNrPages: 37 }));
    assert.ok(!isFieldSet(fromBinary(PagemapEntrySchema, legacy), PagemapEntrySchema.field.nrPages), 'no field 5 on the wire');
    const path = await pagemapFile('pagemap-41.img', [head(3), legacy]);
    const pm = await readPagemap(path);
    assert.equal(pm.pagesId, 3);
    assert.deepEqual(pm.entries, [{ vaddr: 0x7f0000001000n, nrPages: 37, flags: PE_PRESENT }]);
  });

  void it('reads a legacy in_parent entry as PE_PARENT and keeps explicit 4.1 flags', async () => {
    const inParent = toBinary(PagemapEntrySchema, create(PagemapEntrySchema, { vaddr: 0x1000n, compatNrPages: 2, inParent: true }));
    const lazy = toBinary(PagemapEntrySchema, create(PagemapEntrySchema, { vaddr: 0x9000n, compatNrPages: 5, flags: PE_PRESENT | PE_LAZY }));
    const pm = await readPagemap(await pagemapFile('pagemap-42.img', [head(1), inParent, lazy]));
    assert.deepEqual(pm.entries, [
      { vaddr: 0x1000n, nrPages: 2, flags: PE_PARENT },
      { vaddr: 0x9000n, nrPages: 5, flags: PE_PRESENT | PE_LAZY },
    ]);
  });

  void it('prefers field 5 (CRIU 4.2) over field 2, including beyond uint32', async () => {
    const both = toBinary(PagemapEntrySchema, create(PagemapEntrySchema, {
      vaddr: 0x400000n, compatNrPages: 7, nrPages: 300n, flags: PE_PRESENT,
    }));
    const as42 = toBinary(PagemapEntrySchema, create(PagemapEntrySchema, {
      vaddr: 0x800000n, compatNrPages: 0, nrPages: 0x1_0000_0002n, flags: PE_PRESENT | PE_LAZY,
    }));
    const pm = await readPagemap(await pagemapFile('pagemap-43.img', [head(2), both, as42]));
    assert.deepEqual(pm.entries.map((e) => e.nrPages), [300, 0x1_0000_0002]);
  });

  void it('writes the 4.2 layout and round-trips', async () => {
    const runs: PagemapRun[] = [
      { vaddr: 0x55d5a0000000n, nrPages: 1, flags: PE_PRESENT },
      { vaddr: 0x55d5a0002000n, nrPages: 3, flags: PE_PARENT },
      { vaddr: 0x7ffc12340000n, nrPages: 70000, flags: PE_PRESENT | PE_LAZY },
      { vaddr: 0xffffffffff600000n, nrPages: 1, flags: PE_LAZY },
    ];
    const path = join(dir, 'pagemap-44.img');
    await writePagemap(path, { pagesId: 65537 }, runs);
    assert.deepEqual(await readPagemap(path), { pagesId: 65537, entries: runs });

    // The bytes are CRIU 4.2's: field 2 present and 0, field 5 carries the count, no in_parent.
    const [, ...entries] = await readImageEntries(path, IMAGE_KINDS.pagemap);
    const third = entries[2];
    assert.ok(third);
    const msg = fromBinary(PagemapEntrySchema, third.payload);
    assert.ok(isFieldSet(msg, PagemapEntrySchema.field.compatNrPages));
    assert.equal(msg.compatNrPages, 0);
    assert.ok(isFieldSet(msg, PagemapEntrySchema.field.nrPages));
    assert.equal(msg.nrPages, 70000n);
    assert.ok(!isFieldSet(msg, PagemapEntrySchema.field.inParent));
  });

  void it('refuses to write entries CRIU could not read', async () => {
    const path = join(dir, 'pagemap-45.img');
    for (const bad of [
      { vaddr: -1n, nrPages: 1, flags: PE_PRESENT },
      { vaddr: 0n, nrPages: 1.5, flags: PE_PRESENT },
      { vaddr: 0n, nrPages: 1, flags: -4 },
    ]) {
      await assert.rejects(writePagemap(path, { pagesId: 1 }, [bad]), (err: unknown) => isFerryError(err, 'ERR_IMAGE_FORMAT'));
    }
  });

  void it('computes pages-file offsets from PE_PRESENT runs only, in pagemap order', () => {
    const runs: PagemapRun[] = [
      { vaddr: 0x10000n, nrPages: 2, flags: PE_PRESENT },
      { vaddr: 0x20000n, nrPages: 4, flags: PE_PARENT },
      { vaddr: 0x30000n, nrPages: 8, flags: PE_LAZY },
      { vaddr: 0x40000n, nrPages: 3, flags: PE_PRESENT | PE_LAZY },
    ];
    const { runs: present, totalBytes } = presentRuns(runs);
    assert.deepEqual(present.map((r) => [r.index, r.offset]), [[0, 0], [3, 2 * 4096]]);
    assert.equal(totalBytes, 5 * 4096);
    assert.equal(pagesFileOffset(runs, 0x10000n), 0);
    assert.equal(pagesFileOffset(runs, 0x11010n), 4096 + 0x10);
    assert.equal(pagesFileOffset(runs, 0x42000n), 2 * 4096 + 2 * 4096);
    assert.equal(pagesFileOffset(runs, 0x12000n), undefined, 'just past the first run');
    assert.equal(pagesFileOffset(runs, 0x20000n), undefined, 'in the parent');
    assert.equal(pagesFileOffset(runs, 0x30000n), undefined, 'lazy without data');
    assert.equal(pagesFileOffset(runs, 0x43000n), undefined, 'past the last run');
  });

  void it('rejects a pagemap without head, and an entry without its required fields', async () => {
    await assert.rejects(readPagemap(join(dir, 'pagemap-999.img')), (err: unknown) => {
      assert.ok(isFerryError(err, 'ERR_IMAGE_FORMAT'));
      assert.match(err.message, /pagemap-999\.img.*no pagemap head/);
      return true;
    });
    // vaddr (field 1) only: compat_nr_pages (required) is missing.
    const noCount = toBinary(PagemapEntrySchema, create(PagemapEntrySchema, { vaddr: 0x1000n, compatNrPages: 0 })).subarray(0, 3);
    const path = await pagemapFile('pagemap-46.img', [head(1), noCount]);
    await assert.rejects(readPagemap(path), (err: unknown) => {
      assert.ok(isFerryError(err, 'ERR_IMAGE_FORMAT'));
      assert.match(err.message, /compat_nr_pages.* at byte 14/);
      return true;
    });
  });

  void it('rejects garbage protobuf with the entry offset', async () => {
    const path = await pagemapFile('pagemap-47.img', [head(1), Uint8Array.of(0x0f, 0xff)]);
    await assert.rejects(readPagemap(path),
      (err: unknown) => isFerryError(err, 'ERR_IMAGE_FORMAT') && /not a valid PagemapEntry.* at byte 14/.test(err.message));
  });
});

void describe('pagemap fast codec', () => {
  const runs: PagemapRun[] = [
    { vaddr: 0n, nrPages: 0, flags: 0 },
    { vaddr: 0x7f1d55400000n, nrPages: 262144, flags: PE_PRESENT | PE_LAZY },
    { vaddr: 0x1000n, nrPages: 1, flags: PE_PARENT },
    { vaddr: (1n << 64n) - 4096n, nrPages: 2 ** 40, flags: 0xffffffff },
    { vaddr: 0x7fff_ffff_f000n, nrPages: 127, flags: 128 },
  ];
  void it('encodes exactly what the generic protobuf encoder writes', () => {
    for (const r of runs) {
      const generic = toBinary(PagemapEntrySchema, create(PagemapEntrySchema, { vaddr: r.vaddr, compatNrPages: 0, flags: r.flags, nrPages: BigInt(r.nrPages) }));
      assert.deepEqual(Buffer.from(encodePagemapRun(r)), Buffer.from(generic), `run ${r.vaddr}`);
      // and the generic decoder reads it back
      const back = fromBinary(PagemapEntrySchema, encodePagemapRun(r));
      assert.equal(back.vaddr, r.vaddr);
      assert.equal(back.nrPages, BigInt(r.nrPages));
      assert.equal(back.flags, r.flags);
    }
  });
  void it('decodes CRIU 4.2, CRIU 4.1 and legacy in_parent entries like the generic decoder', () => {
    const payloads = [
      head(3),
      ...runs.map((r) => encodePagemapRun(r)),
      // 4.1 layout: count in field 2, no field 5
      toBinary(PagemapEntrySchema, create(PagemapEntrySchema, { vaddr: 0x2000n, compatNrPages: 9, flags: PE_PRESENT })),
      // legacy: no flags, in_parent set / unset
      toBinary(PagemapEntrySchema, create(PagemapEntrySchema, { vaddr: 0x3000n, compatNrPages: 2, inParent: true })),
      toBinary(PagemapEntrySchema, create(PagemapEntrySchema, { vaddr: 0x4000n, compatNrPages: 5 })),
    ];
    const entries = payloads.map((payload, i) => ({ offset: i, payload }));
    const pm = decodePagemap(entries, 'x');
    assert.equal(pm.pagesId, 3);
    assert.deepEqual(pm.entries, [
      ...runs,
      { vaddr: 0x2000n, nrPages: 9, flags: PE_PRESENT },
      { vaddr: 0x3000n, nrPages: 2, flags: PE_PARENT },
      { vaddr: 0x4000n, nrPages: 5, flags: PE_PRESENT },
    ]);
  });
  void it('leaves malformed entries to the generic decoder, which names the file', () => {
    const bad = [{ offset: 0, payload: head(1) }, { offset: 9, payload: Uint8Array.from([0x08, 0x80]) }];
    assert.throws(() => decodePagemap(bad, 'pagemap-9.img'), (e: unknown) => isFerryError(e) && /pagemap-9\.img/.test(e.message));
  });
});
