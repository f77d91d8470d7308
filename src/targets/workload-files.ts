/**
 * The log files of a `ferry run` workload, handed to CRIU at restore.
 *
 * A workload keeps fds 1 and 2 open on `<store>/workloads/NAME/{stdout,stderr}.log`. CRIU records
 * a regular file by path and reopens that path at restore, so restoring into another store or on
 * another host (migration) fails when it is missing. Instead ferry opens the log files of the
 * *restoring* store and gives them to CRIU with `--inherit-fd`: for a regular file CRIU looks the
 * fd up by the recorded path without its leading '/' (files-reg.c: open_path → inherited_fd →
 * reg_file_path, which is the image's name + 1), and then uses ours without checking size or
 * mode. The recorded path comes from the images: the root task's fdinfo (fd 1, 2) → files.img.
 */
import { closeSync, openSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { readFdinfo } from '../criu/images/fdinfo.js';
import { readFiles } from '../criu/images/files.js';
import { readTaskIds } from '../criu/images/ids.js';
import { readPstree } from '../criu/images/pstree.js';

const FD_TYPE_REG = 1;
const STREAMS = { 1: 'stdout', 2: 'stderr' } as const;

export interface WorkloadRestoreFds {
  /** For CriuOptions.inheritFds: key = the recorded path without its leading '/'. */
  inheritFds: { key: string; fd: number }[];
  /** The log files the restored workload writes to (in the restoring store), when it had them. */
  stdout: string | undefined;
  stderr: string | undefined;
  /** The paths the images recorded, by stream (for messages and tests). */
  recorded: { stdout?: string; stderr?: string };
  /** Closes ferry's copies of the fds (call after CRIU returned, success or not). */
  close(): void;
}

const none = (): WorkloadRestoreFds => ({ inheritFds: [], stdout: undefined, stderr: undefined, recorded: {}, close: () => undefined });

/** True when `path` is `<anything>/workloads/<name>/<stream>.log`: a log `ferry run` opened. */
export function isWorkloadLog(path: string, name: string, stream: 'stdout' | 'stderr'): boolean {
  const dir = dirname(path);
  return basename(path) === `${stream}.log` && basename(dir) === name && basename(dirname(dir)) === 'workloads';
}

/**
 * Opens `<workloadsDir>/<as>/{stdout,stderr}.log` (O_WRONLY|O_APPEND, created 0600; `as` is the
 * restored name, by default the recorded workload's) for each of the root task's fds 1 and 2
 * that the images record as the workload's `ferry run` log file, and returns them keyed for
 * CRIU's inherit-fd. Anything else (a snapshot of a plain pid, stdio that the program
 * redirected itself) yields no fds and is restored as CRIU recorded it.
 */
export async function workloadRestoreFds(
  workloadsDir: string, target: { kind: string; workload?: string | undefined }, imagesDir: string, as = target.workload,
): Promise<WorkloadRestoreFds> {
  const name = target.workload;
  if (target.kind !== 'process' || !name || !as) return none();
  const root = (await readPstree(imagesDir))[0];
  const ids = root && await readTaskIds(imagesDir, root.pid);
  if (!ids) return none();
  const files = await readFiles(imagesDir);
  const out = none();
  const fds: number[] = [];
  const byKey = new Map<string, number>();
  try {
    for (const rec of await readFdinfo(imagesDir, ids.files_id)) {
      const stream = STREAMS[rec.fd as 1 | 2] as 'stdout' | 'stderr' | undefined;
      if (!stream || rec.type !== FD_TYPE_REG) continue;
      const path = files.get(rec.id)?.reg?.name;
      if (!path?.startsWith('/') || !isWorkloadLog(path, name, stream)) continue;
      out.recorded[stream] = path;
      const key = path.slice(1);
      const mine = join(workloadsDir, as, `${stream}.log`);
      out[stream] = mine;
      if (byKey.has(key)) continue; // fds 1 and 2 on one open file: one key
      await mkdir(dirname(mine), { recursive: true, mode: 0o700 });
      const fd = openSync(mine, 'a', 0o600);
      fds.push(fd);
      byKey.set(key, fd);
      out.inheritFds.push({ key, fd });
    }
  } catch (err) {
    for (const fd of fds) closeSync(fd);
    throw err;
  }
  out.close = () => {
    for (const fd of fds.splice(0)) {
      try { closeSync(fd); } catch { /* already closed */ }
    }
  };
  return out;
}
