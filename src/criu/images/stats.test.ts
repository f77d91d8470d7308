import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { create, toBinary } from '@bufbuild/protobuf';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isFerryError } from '../../util/errors.js';
import { StatsEntrySchema } from '../gen/criu-images_pb.js';
import { encodeImage } from './framing.js';
import { IMAGE_KINDS } from './magic.js';
import { readDumpStats, readRestoreStats } from './stats.js';

void describe('stats files', () => {
  let root: string;
  let n = 0;
  before(async () => { root = await mkdtemp(join(tmpdir(), 'ferry-stats-')); });
  after(async () => { await rm(root, { recursive: true, force: true }); });

  async function dirWith(files: Record<string, Uint8Array>): Promise<string> {
    const dir = join(root, String(n++));
    await mkdir(dir);
    for (const [name, bytes] of Object.entries(files)) await writeFile(join(dir, name), bytes);
    return dir;
  }

  void it('is undefined when the files are absent or empty', async () => {
    const dir = await dirWith({ 'stats-restore': new Uint8Array(0) });
    assert.equal(await readDumpStats(dir), undefined);
    assert.equal(await readRestoreStats(dir), undefined);
  });

  void it('reads stats-restore with CRIU field names and numbers', async () => {
    const entry = create(StatsEntrySchema, {
      restore: { pagesCompared: 12n, pagesSkippedCow: 3n, forkingTime: 456, restoreTime: 78910, pagesRestored: 2049n },
    });
    const dir = await dirWith({ 'stats-restore': encodeImage(IMAGE_KINDS['stats-restore'], [toBinary(StatsEntrySchema, entry)]) });
    assert.deepEqual(await readRestoreStats(dir), {
      pages_compared: 12, pages_skipped_cow: 3, forking_time: 456, restore_time: 78910, pages_restored: 2049,
    });
  });

  void it('leaves optional dump fields out when CRIU did not write them', async () => {
    const entry = create(StatsEntrySchema, {
      dump: {
        freezingTime: 1, frozenTime: 2, memdumpTime: 3, memwriteTime: 4,
        pagesScanned: 5n, pagesSkippedParent: 6n, pagesWritten: 7n, pagesLazy: 8n, pagePipes: 0n,
      },
    });
    const dir = await dirWith({ 'stats-dump': encodeImage(IMAGE_KINDS['stats-dump'], [toBinary(StatsEntrySchema, entry)]) });
    assert.deepEqual(await readDumpStats(dir), {
      freezing_time: 1, frozen_time: 2, memdump_time: 3, memwrite_time: 4,
      pages_scanned: 5, pages_skipped_parent: 6, pages_written: 7, pages_lazy: 8, page_pipes: 0,
    });
  });

  void it('rejects a stats file of the wrong part, a regular-image head, or missing required fields', async () => {
    const restoreOnly = toBinary(StatsEntrySchema, create(StatsEntrySchema, {
      restore: { pagesCompared: 0n, pagesSkippedCow: 0n, forkingTime: 0, restoreTime: 0 },
    }));
    const wrongPart = await dirWith({ 'stats-dump': encodeImage(IMAGE_KINDS['stats-dump'], [restoreOnly]) });
    await assert.rejects(readDumpStats(wrongPart),
      (err: unknown) => isFerryError(err, 'ERR_IMAGE_FORMAT') && /stats-dump.*no 'dump' part/.test(err.message));

    const commonHead = await dirWith({ 'stats-dump': encodeImage({ name: 'STATS', headMagic: 0x54564319, magic: 0x57093306 }, []) });
    await assert.rejects(readDumpStats(commonHead),
      (err: unknown) => isFerryError(err, 'ERR_IMAGE_FORMAT') && /expected 0x55105940 \(IMG_SERVICE\)/.test(err.message));

    // A dump part with only freezing_time: the other required fields are missing.
    const partial = Uint8Array.of(0x0a, 0x02, 0x08, 0x05);
    const incomplete = await dirWith({ 'stats-dump': encodeImage(IMAGE_KINDS['stats-dump'], [partial]) });
    await assert.rejects(readDumpStats(incomplete),
      (err: unknown) => isFerryError(err, 'ERR_IMAGE_FORMAT') && /dump\.frozen_time/.test(err.message));
  });
});
