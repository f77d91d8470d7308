/**
 * A small synthetic CRIU dump written without CRIU (one process, its core, ids, mm, pagemap,
 * pages, files and fdinfo images): for tests of the image readers that need no root.
 */
import { create, toBinary, type DescMessage, type MessageInitShape } from '@bufbuild/protobuf';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CoreEntrySchema, FdinfoEntrySchema, FileEntrySchema, MmEntrySchema, PstreeEntrySchema, TaskKobjIdsSchema,
} from '../criu/gen/criu-images_pb.js';
import { writeImageFile } from '../criu/images/framing.js';
import { IMAGE_KINDS, type ImageKind } from '../criu/images/magic.js';
import { PE_PRESENT, writePagemap } from '../criu/images/pagemap.js';

export const PAGE = 4096;
export const PID = 42;
export const STACK = 0x7ff000000000n;

export async function write<D extends DescMessage>(dir: string, name: string, kind: ImageKind, schema: D, msgs: MessageInitShape<D>[]): Promise<void> {
  await writeImageFile(join(dir, name), IMAGE_KINDS[kind], msgs.map((m) => toBinary(schema, create(schema, m))));
}

/** A one-process dump whose arguments start 10 bytes before the end of a page. */
export async function writeDump(dir: string, pageFlags: number): Promise<void> {
  const argStart = STACK + BigInt(PAGE - 10);
  const args = Buffer.from('/bin/prog\0--long-option=value\0');
  await write(dir, 'pstree.img', 'pstree', PstreeEntrySchema, [{ pid: PID, ppid: 0, pgid: PID, sid: PID, threads: [PID] }]);
  await write(dir, `core-${PID}.img`, 'core', CoreEntrySchema, [{ mtype: 1, tc: { taskState: 1, exitCode: 0, comm: 'prog' } }]);
  await write(dir, `ids-${PID}.img`, 'ids', TaskKobjIdsSchema, [{ vmId: 1, filesId: 7, fsId: 1, sighandId: 1, netNsId: 3 }]);
  await write(dir, `mm-${PID}.img`, 'mm', MmEntrySchema, [{
    mmStartCode: 0n, mmEndCode: 0n, mmStartData: 0n, mmEndData: 0n, mmStartStack: STACK, mmStartBrk: 0n, mmBrk: 0n,
    mmArgStart: argStart, mmArgEnd: argStart + BigInt(args.length), mmEnvStart: 0n, mmEnvEnd: 0n, exeFileId: 99,
    vmas: [{ start: STACK, end: STACK + 2n * BigInt(PAGE), pgoff: 0n, shmid: 0n, prot: 3, flags: 0x122, status: 0x201 }],
  }]);
  await writePagemap(join(dir, `pagemap-${PID}.img`), { pagesId: 5 }, [
    { vaddr: STACK, nrPages: 1, flags: PE_PRESENT },
    { vaddr: STACK + BigInt(PAGE), nrPages: 1, flags: pageFlags },
  ]);
  const pages = Buffer.alloc(2 * PAGE, 0x2e);
  args.copy(pages, PAGE - 10);
  await writeFile(join(dir, 'pages-5.img'), pageFlags === PE_PRESENT ? pages : pages.subarray(0, PAGE));
  await write(dir, 'files.img', 'files', FileEntrySchema, [
    { type: 99, id: 1 },
    { type: 4, id: 2 },
    { type: 2, id: 3, pipe: { id: 3, pipeId: 1234, flags: 1 } },
  ]);
  await write(dir, 'fdinfo-7.img', 'fdinfo', FdinfoEntrySchema, [
    { id: 1, flags: 0, type: 99, fd: 5 }, { id: 2, flags: 0, type: 4, fd: 6 },
    { id: 3, flags: 1, type: 2, fd: 7 }, { id: 8, flags: 0, type: 1, fd: 8 },
  ]);
}
