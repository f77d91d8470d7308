/**
 * Property-based fuzzing of every reader of CRIU image bytes (fast-check): random bytes, valid
 * framing around random payloads, and valid images with a few edits. Each input either decodes
 * or fails with a FerryError (ERR_IMAGE_FORMAT) whose message names the file; nothing else is
 * thrown, nothing crashes, nothing hangs (each decode runs under a watchdog). The same for a
 * whole synthetic dump read by inspectImages with one of its images damaged.
 * Inputs per property: FERRY_FUZZ_RUNS (`make fuzz` runs 10,000).
 */
import { after, before, describe, it } from 'node:test';
import { create, toBinary, type DescMessage, type MessageInitShape } from '@bufbuild/protobuf';
import fc from 'fast-check';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodesOrNames, fuzzParams, mutated } from '../../testing/fuzz.js';
import { PID, writeDump } from '../../testing/synthetic-dump.js';
import {
  CoreEntrySchema, FdinfoEntrySchema, FileEntrySchema, InventoryEntrySchema, MemfdInodeEntrySchema, MmEntrySchema,
  PagemapEntrySchema, PagemapHeadSchema, PstreeEntrySchema, StatsEntrySchema, TaskKobjIdsSchema, TtyInfoEntrySchema,
} from '../gen/criu-images_pb.js';
import { readCore } from './core.js';
import { readFdinfo } from './fdinfo.js';
import { readFiles } from './files.js';
import { encodeImage } from './framing.js';
import { readTaskIds } from './ids.js';
import { inspectImages } from './inspect.js';
import { readInventory } from './inventory.js';
import { IMAGE_KINDS, type ImageKind } from './magic.js';
import { readMemfdInodes } from './memfd.js';
import { readMm } from './mm.js';
import { encodePagemapRun, PE_PARENT, PE_PRESENT, readPagemap } from './pagemap.js';
import { readPstree } from './pstree.js';
import { readDumpStats, readRestoreStats } from './stats.js';
import { readTtyInfo } from './tty.js';

const msg = <D extends DescMessage>(schema: D, init: MessageInitShape<D>): Uint8Array => toBinary(schema, create(schema, init));

interface Reader {
  file: string;
  kind: ImageKind;
  read: (dir: string) => Promise<unknown>;
  /** Valid entries, the seed of the mutations. */
  payloads: Uint8Array[];
}

const READERS: Reader[] = [
  {
    file: 'pagemap-1.img', kind: 'pagemap', read: (d) => readPagemap(join(d, 'pagemap-1.img')),
    payloads: [msg(PagemapHeadSchema, { pagesId: 3 }), encodePagemapRun({ vaddr: 0x7f0000001000n, nrPages: 3, flags: PE_PRESENT }),
      msg(PagemapEntrySchema, { vaddr: 0x400000n, compatNrPages: 2, inParent: true }), encodePagemapRun({ vaddr: 0x500000n, nrPages: 1, flags: PE_PARENT })],
  },
  {
    file: 'inventory.img', kind: 'inventory', read: readInventory,
    payloads: [msg(InventoryEntrySchema, { imgVersion: 2, fdinfoPerId: true, rootIds: { vmId: 1, filesId: 2, fsId: 3, sighandId: 4, pidNsId: 5 }, lsmtype: 0, rootCgSet: 1, dumpUptime: 7n, pluginsEntry: { plugins: ['x'] } })],
  },
  { file: 'pstree.img', kind: 'pstree', read: readPstree, payloads: [msg(PstreeEntrySchema, { pid: 1, ppid: 0, pgid: 1, sid: 1, threads: [1, 2] }), msg(PstreeEntrySchema, { pid: 3, ppid: 1, pgid: 1, sid: 1, threads: [3] })] },
  {
    file: 'stats-dump', kind: 'stats-dump', read: readDumpStats,
    payloads: [msg(StatsEntrySchema, { dump: { freezingTime: 1, frozenTime: 2, memdumpTime: 3, memwriteTime: 4, pagesScanned: 5n, pagesSkippedParent: 6n, pagesWritten: 7n, pagesLazy: 0n, pagePipes: 1n } })],
  },
  {
    file: 'stats-restore', kind: 'stats-restore', read: readRestoreStats,
    payloads: [msg(StatsEntrySchema, { restore: { pagesCompared: 1n, pagesSkippedCow: 2n, forkingTime: 3, restoreTime: 4, pagesRestored: 5n } })],
  },
  { file: 'core-1.img', kind: 'core', read: (d) => readCore(d, 1), payloads: [msg(CoreEntrySchema, { mtype: 1, tc: { taskState: 1, exitCode: 0, comm: 'prog' }, threadCore: { creds: { uid: 1, gid: 2, euid: 3, egid: 4 }, comm: 't' } })] },
  {
    file: 'mm-1.img', kind: 'mm', read: (d) => readMm(d, 1),
    payloads: [msg(MmEntrySchema, {
      mmStartCode: 1n, mmEndCode: 2n, mmStartData: 3n, mmEndData: 4n, mmStartStack: 5n, mmStartBrk: 6n, mmBrk: 7n, mmArgStart: 8n, mmArgEnd: 9n, mmEnvStart: 10n, mmEnvEnd: 11n, exeFileId: 12,
      vmas: [{ start: 0x1000n, end: 0x3000n, pgoff: 0n, shmid: 0n, prot: 3, flags: 0x22, status: 0x201 }],
    })],
  },
  { file: 'ids-1.img', kind: 'ids', read: (d) => readTaskIds(d, 1), payloads: [msg(TaskKobjIdsSchema, { vmId: 1, filesId: 7, fsId: 1, sighandId: 1, netNsId: 3 })] },
  { file: 'fdinfo-1.img', kind: 'fdinfo', read: (d) => readFdinfo(d, 1), payloads: [msg(FdinfoEntrySchema, { id: 1, flags: 0, type: 2, fd: 5 }), msg(FdinfoEntrySchema, { id: 2, flags: 1, type: 1, fd: 1 })] },
  { file: 'files.img', kind: 'files', read: readFiles, payloads: [msg(FileEntrySchema, { type: 2, id: 3, pipe: { id: 3, pipeId: 1234, flags: 1 } }), msg(FileEntrySchema, { type: 99, id: 4 })] },
  { file: 'memfd.img', kind: 'memfd', read: readMemfdInodes, payloads: [msg(MemfdInodeEntrySchema, { size: 4096n, shmid: 5, name: 'buf', inodeId: 9n })] },
  { file: 'tty-info.img', kind: 'tty-info', read: readTtyInfo, payloads: [msg(TtyInfoEntrySchema, { id: 1, type: 1, sid: 1, pgrp: 1, rdev: 0, pty: { index: 3 } })] },
];

void describe('CRIU image readers under fuzzing', () => {
  let root: string;
  before(async () => { root = await mkdtemp(join(tmpdir(), 'ferry-fuzz-images-')); });
  after(async () => { await rm(root, { recursive: true, force: true }); });

  for (const r of READERS) {
    void it(`${r.file}: decodes or fails with a FerryError naming the file`, async () => {
      const dir = join(root, r.file);
      await mkdir(dir);
      const path = join(dir, r.file);
      const framing = IMAGE_KINDS[r.kind];
      const valid = encodeImage(framing, r.payloads);
      const input = fc.oneof(
        fc.uint8Array({ maxLength: 256 }),
        fc.array(fc.uint8Array({ maxLength: 48 }), { maxLength: 4 }).map((p) => encodeImage(framing, p)),
        fc.array(fc.constantFrom(...r.payloads), { minLength: 1, maxLength: 3 }).chain((p) => mutated(encodeImage(framing, p))),
        mutated(valid, 8),
      );
      await decodesOrNames(() => r.read(dir), path); // the valid seed first
      await writeFile(path, valid);
      await r.read(dir);
      await fc.assert(fc.asyncProperty(input, async (bytes) => {
        await writeFile(path, bytes);
        await decodesOrNames(() => r.read(dir), path, { code: 'ERR_IMAGE_FORMAT' });
      }), fuzzParams(150));
    });
  }

  void it('inspectImages: a synthetic dump with one damaged image is summarised or refused naming that image', async () => {
    const dir = join(root, 'inspect');
    await mkdir(dir);
    await writeDump(dir, PE_PRESENT);
    await inspectImages(dir);
    const names = ['pstree.img', `core-${PID}.img`, `ids-${PID}.img`, `mm-${PID}.img`, `pagemap-${PID}.img`, 'files.img', 'fdinfo-7.img', 'pages-5.img'];
    const originals = new Map(await Promise.all(names.map(async (n) => [n, await readFile(join(dir, n))] as const)));
    await fc.assert(fc.asyncProperty(fc.constantFrom(...names).chain((n) => fc.tuple(fc.constant(n), mutated(originals.get(n)!, 6))), async ([name, bytes]) => {
      await writeFile(join(dir, name), bytes);
      try {
        await decodesOrNames(() => inspectImages(dir), join(dir, name));
      } finally {
        await writeFile(join(dir, name), originals.get(name)!);
      }
    }), fuzzParams(150));
  });
});
