/**
 * `ferry snapshots inspect`: a CRIU images directory decoded into a human summary (processes
 * with their command lines, memory, open files, sockets, namespaces, CRIU's own facts and
 * the images' sizes), as plain JSON. Missing optional images leave gaps (and warnings); a
 * damaged image is an ERR_IMAGE_FORMAT error naming the file.
 */
import { readCore } from './core.js';
import { recoverCommandLine, type EnvironmentDetail } from './cmdline.js';
import { describeFile, type DescribeContext } from './describe.js';
import { readFdinfo } from './fdinfo.js';
import { readFiles } from './files.js';
import { readTaskIds, type TaskIds } from './ids.js';
import { imagesOnDisk } from './images-on-disk.js';
import type {
  CriuFacts, FdSummary, ImageSummary, ProcessSummary, TaskFilesSummary, TaskMemorySummary,
} from './inspect-types.js';
import { readInventory, type Inventory } from './inventory.js';
import { listImages } from './list.js';
import { readMemfdInodes } from './memfd.js';
import { summariseMemory, type VmaFileResolver } from './memory-summary.js';
import { readMm, VMA_AREA_MEMFD } from './mm.js';
import { summariseNamespaces } from './namespaces.js';
import { pagemapPath, readPagemap, type Pagemap } from './pagemap.js';
import { readPstree } from './pstree.js';
import { summariseSockets } from './sockets-summary.js';
import { readDumpStats } from './stats.js';
import { readTtyInfo } from './tty.js';

export type * from './inspect-types.js';

export interface InspectOptions {
  /** Environment variables per process: names only (default), names and values, or none. */
  environment?: EnvironmentDetail;
  /** How many of each task's largest mappings to list (default 10). */
  largestMappings?: number;
}

const NETWORK_LOCK = ['iptables', 'nftables', 'skip'] as const;

function criuFacts(inv: Inventory | undefined, arch: string | undefined): CriuFacts {
  const out: CriuFacts = {};
  if (inv === undefined) return out;
  out.img_version = inv.img_version;
  if (arch !== undefined) out.arch = arch;
  if (inv.lsmtype !== undefined) out.lsm = inv.lsmtype;
  const lock = inv.network_lock_method;
  if (lock !== undefined) out.network_lock_method = NETWORK_LOCK[lock] ?? `unknown (${lock})`;
  if (inv.tcp_close !== undefined) out.tcp_close = inv.tcp_close;
  if (inv.dump_criu_run_id !== undefined) out.dump_criu_run_id = inv.dump_criu_run_id;
  if (inv.plugins !== undefined) out.plugins = inv.plugins;
  return out;
}

/** Decodes the CRIU images in `dir` into a summary. */
export async function inspectImages(dir: string, options: InspectOptions = {}): Promise<ImageSummary> {
  const environment = options.environment ?? 'names';
  const largest = options.largestMappings ?? 10;
  const list = await listImages(dir);
  const names = new Set(list.map((f) => f.name));
  const warnings: string[] = [];
  const [inventory, pstree, stats, files, ttys, memfds] = await Promise.all([
    readInventory(dir), readPstree(dir), readDumpStats(dir), readFiles(dir), readTtyInfo(dir), readMemfdInodes(dir),
  ]);
  if (inventory === undefined) warnings.push('no inventory.img: not a CRIU dump, or an incomplete one');
  if (pstree.length === 0) warnings.push('no pstree.img (or it is empty): no processes');
  const ctx: DescribeContext = { files, ttys, memfds };
  const resolveVmaFile: VmaFileResolver = (vma) => {
    const f = files.get(vma.shmid);
    if ((vma.status & VMA_AREA_MEMFD) !== 0 && f?.memfd !== undefined) {
      const inode = memfds.get(f.memfd.inodeId);
      return inode === undefined ? undefined : `memfd:${inode.name}`;
    }
    return f?.reg?.name;
  };

  const processes: ProcessSummary[] = [];
  const memory: TaskMemorySummary[] = [];
  const taskIds: { pid: number; ids: TaskIds }[] = [];
  let arch: string | undefined;
  for (const p of pstree) {
    const [core, ids, mm] = await Promise.all([readCore(dir, p.pid), readTaskIds(dir, p.pid), readMm(dir, p.pid)]);
    const pagemap: Pagemap | undefined = names.has(`pagemap-${p.pid}.img`) ? await readPagemap(pagemapPath(dir, p.pid)) : undefined;
    if (core === undefined) warnings.push(`pid ${p.pid}: no core-${p.pid}.img`);
    if (ids === undefined) warnings.push(`pid ${p.pid}: no ids-${p.pid}.img`);
    else taskIds.push({ pid: p.pid, ids });
    arch ??= core?.arch;
    const comm = core?.task?.comm ?? core?.comm ?? '';
    const cmd = await recoverCommandLine(dir, mm, pagemap, comm, environment);
    const proc: ProcessSummary = {
      pid: p.pid, ppid: p.ppid, pgid: p.pgid, sid: p.sid, threads: p.threads,
      comm,
      state: core?.task?.state ?? 'unknown (0)',
      commandLine: cmd.argv,
      commandLineSource: cmd.source,
    };
    if (core?.task !== undefined && core.task.exit_code !== 0) proc.exitCode = core.task.exit_code;
    if (cmd.note !== undefined) proc.commandLineNote = cmd.note;
    if (cmd.environment !== undefined) proc.environment = cmd.environment;
    const exe = mm === undefined ? undefined : files.get(mm.exe_file_id)?.reg?.name;
    if (exe !== undefined) proc.exe = exe;
    if (core?.creds !== undefined) Object.assign(proc, core.creds);
    processes.push(proc);
    if (mm !== undefined) memory.push(summariseMemory(p.pid, mm, pagemap, resolveVmaFile, largest));
  }

  const { tables, holders } = await fdTables(dir, taskIds, ctx, warnings);
  return {
    processes,
    memory,
    files: tables,
    sockets: summariseSockets(files, holders, names),
    namespaces: summariseNamespaces(inventory?.root_ids, taskIds, list),
    criu: { ...criuFacts(inventory, arch), ...(stats === undefined ? {} : { stats_dump: stats }) },
    images: await imagesOnDisk(list),
    warnings,
  };
}

/** Each descriptor table once, with the pids sharing it; and for each file id, the pids holding it. */
async function fdTables(
  dir: string, taskIds: readonly { pid: number; ids: TaskIds }[], ctx: DescribeContext, warnings: string[],
): Promise<{ tables: TaskFilesSummary[]; holders: Map<number, number[]> }> {
  const byFilesId = new Map<number, number[]>();
  for (const t of taskIds) {
    const pids = byFilesId.get(t.ids.files_id) ?? [];
    pids.push(t.pid);
    byFilesId.set(t.ids.files_id, pids);
  }
  const tables: TaskFilesSummary[] = [];
  const holders = new Map<number, number[]>();
  for (const [filesId, pids] of byFilesId) {
    const fds: FdSummary[] = [];
    for (const rec of await readFdinfo(dir, filesId)) {
      const file = ctx.files.get(rec.id);
      if (file === undefined) warnings.push(`fdinfo-${filesId}.img: fd ${rec.fd} names file id ${rec.id}, not in files.img`);
      const d = file === undefined
        ? { type: 'unknown' as const, description: `file id ${rec.id} (kind ${rec.type}) not in files.img` }
        : describeFile(file, ctx);
      fds.push({ fd: rec.fd, ...d, fileId: rec.id });
      const held = holders.get(rec.id) ?? [];
      for (const pid of pids) if (!held.includes(pid)) held.push(pid);
      holders.set(rec.id, held);
    }
    tables.push({ filesId, pids, fds });
  }
  return { tables, holders };
}
