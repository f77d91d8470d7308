/**
 * tty-info.img: one entry per terminal the tree has open (its kind, pty index, session and
 * foreground group). tty entries in files.img point here by tty_info_id.
 */
import { join } from 'node:path';
import { TtyInfoEntrySchema } from '../gen/criu-images_pb.js';
import { readAllEntries } from './decode.js';
import { IMAGE_KINDS } from './magic.js';

export const TTY_INFO_FILE = 'tty-info.img';

/** CRIU's TtyType. */
const TTY_TYPES: Readonly<Record<number, string>> = { 1: 'pty', 2: 'console', 3: 'vt', 4: 'ctty', 5: 'external', 6: 'serial' };

export interface TtyInfo {
  id: number;
  /** 'pty', 'console', 'vt', 'ctty', 'external', 'serial' or 'unknown (N)'. */
  type: string;
  /** The pty number (N of /dev/pts/N), for ptys. */
  index?: number;
  sid: number;
  pgrp: number;
}

/** Reads `tty-info.img` in `dir`, by id; empty when there is none. */
export async function readTtyInfo(dir: string): Promise<Map<number, TtyInfo>> {
  const entries = await readAllEntries(TtyInfoEntrySchema, join(dir, TTY_INFO_FILE), IMAGE_KINDS['tty-info']);
  const out = new Map<number, TtyInfo>();
  for (const e of entries) {
    const info: TtyInfo = { id: e.id, type: TTY_TYPES[e.type] ?? `unknown (${e.type})`, sid: e.sid, pgrp: e.pgrp };
    if (e.pty !== undefined) info.index = e.pty.index;
    out.set(e.id, info);
  }
  return out;
}
