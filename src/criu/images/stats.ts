/**
 * CRIU's own statistics: `stats-dump` and `stats-restore` (service files, no .img suffix),
 * written to CRIU's work dir after a successful dump or pre-dump / restore. Each holds one
 * stats entry with a `dump` or a `restore` part. Field names are CRIU's; times are
 * microseconds, counts are pages.
 */
import { join } from 'node:path';
import { isFieldSet } from '@bufbuild/protobuf';
import {
  DumpStatsEntrySchema, RestoreStatsEntrySchema, StatsEntrySchema, type StatsEntry,
} from '../gen/criu-images_pb.js';
import { decodeEntry, u64ToNumber } from './decode.js';
import { imageFormatError, readImageEntries } from './framing.js';
import { IMAGE_KINDS, type ImageFraming } from './magic.js';

export interface DumpStats {
  /** µs spent seizing and freezing the tasks. */
  freezing_time: number;
  /** µs the tasks stayed frozen (until resumed or killed). */
  frozen_time: number;
  /** µs spent draining memory into page pipes. */
  memdump_time: number;
  /** µs spent writing pages to the images or the page server. */
  memwrite_time: number;
  pages_scanned: number;
  /** Pages unchanged since the parent snapshot, so not written. */
  pages_skipped_parent: number;
  pages_written: number;
  pages_lazy: number;
  /** µs spent resolving inotify/fanotify watch paths. */
  irmap_resolve?: number;
  page_pipes?: number;
  page_pipe_bufs?: number;
  shpages_scanned?: number;
  shpages_skipped_parent?: number;
  shpages_written?: number;
}

export interface RestoreStats {
  pages_compared: number;
  pages_skipped_cow: number;
  /** µs spent forking the process tree. */
  forking_time: number;
  /** µs the whole restore took. */
  restore_time: number;
  pages_restored?: number;
}

export const STATS_DUMP_FILE = 'stats-dump';
export const STATS_RESTORE_FILE = 'stats-restore';

/** Reads `stats-dump` in `dir` (CRIU's work dir); undefined when there is none. */
export async function readDumpStats(dir: string): Promise<DumpStats | undefined> {
  const file = join(dir, STATS_DUMP_FILE);
  const found = await readStatsEntry(file, IMAGE_KINDS['stats-dump']);
  if (found === undefined) return undefined;
  const d = found.msg.dump;
  if (d === undefined) throw imageFormatError(file, "the stats entry has no 'dump' part", found.offset);
  const n = (v: bigint, what: string): number => u64ToNumber(v, what, file, found.offset);
  const f = DumpStatsEntrySchema.field;
  const out: DumpStats = {
    freezing_time: d.freezingTime,
    frozen_time: d.frozenTime,
    memdump_time: d.memdumpTime,
    memwrite_time: d.memwriteTime,
    pages_scanned: n(d.pagesScanned, 'pages_scanned'),
    pages_skipped_parent: n(d.pagesSkippedParent, 'pages_skipped_parent'),
    pages_written: n(d.pagesWritten, 'pages_written'),
    pages_lazy: n(d.pagesLazy, 'pages_lazy'),
  };
  // Optional fields appear in the result only when CRIU wrote them.
  if (isFieldSet(d, f.irmapResolve)) out.irmap_resolve = d.irmapResolve;
  if (isFieldSet(d, f.pagePipes)) out.page_pipes = n(d.pagePipes, 'page_pipes');
  if (isFieldSet(d, f.pagePipeBufs)) out.page_pipe_bufs = n(d.pagePipeBufs, 'page_pipe_bufs');
  if (isFieldSet(d, f.shpagesScanned)) out.shpages_scanned = n(d.shpagesScanned, 'shpages_scanned');
  if (isFieldSet(d, f.shpagesSkippedParent)) out.shpages_skipped_parent = n(d.shpagesSkippedParent, 'shpages_skipped_parent');
  if (isFieldSet(d, f.shpagesWritten)) out.shpages_written = n(d.shpagesWritten, 'shpages_written');
  return out;
}

/** Reads `stats-restore` in `dir` (CRIU's work dir); undefined when there is none. */
export async function readRestoreStats(dir: string): Promise<RestoreStats | undefined> {
  const file = join(dir, STATS_RESTORE_FILE);
  const found = await readStatsEntry(file, IMAGE_KINDS['stats-restore']);
  if (found === undefined) return undefined;
  const r = found.msg.restore;
  if (r === undefined) throw imageFormatError(file, "the stats entry has no 'restore' part", found.offset);
  const n = (v: bigint, what: string): number => u64ToNumber(v, what, file, found.offset);
  const out: RestoreStats = {
    pages_compared: n(r.pagesCompared, 'pages_compared'),
    pages_skipped_cow: n(r.pagesSkippedCow, 'pages_skipped_cow'),
    forking_time: r.forkingTime,
    restore_time: r.restoreTime,
  };
  if (isFieldSet(r, RestoreStatsEntrySchema.field.pagesRestored)) out.pages_restored = n(r.pagesRestored, 'pages_restored');
  return out;
}

/** The single stats entry of a stats file; undefined when the file is missing or empty. */
async function readStatsEntry(file: string, framing: ImageFraming): Promise<{ msg: StatsEntry; offset: number } | undefined> {
  const entries = await readImageEntries(file, framing);
  const [entry, extra] = entries;
  if (entry === undefined) return undefined;
  if (extra !== undefined) throw imageFormatError(file, `${entries.length} stats entries, expected 1`, extra.offset);
  return { msg: decodeEntry(StatsEntrySchema, entry, file), offset: entry.offset };
}
