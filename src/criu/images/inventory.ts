/**
 * inventory.img: one entry describing the whole dump (image version, how ids are laid out,
 * the root task's kernel-object ids, LSM, network lock, ...). It is the one image without a
 * head magic. Pre-dumps write one too. Field names are CRIU's.
 */
import { isFieldSet } from '@bufbuild/protobuf';
import { join } from 'node:path';
import {
  InventoryEntrySchema, LsmType, TaskKobjIdsSchema, type TaskKobjIds,
} from '../gen/criu-images_pb.js';
import { decodeEntry, u64ToNumber } from './decode.js';
import { imageFormatError, readImageEntries } from './framing.js';
import { IMAGE_KINDS } from './magic.js';

export const INVENTORY_FILE = 'inventory.img';

/** The image version CRIU has written since 1.x ("v1.1": every image but inventory has a head magic). */
export const CRIU_IMAGES_V1_1 = 2;

/** The kernel-object ids of the root task (CRIU's task_kobj_ids_entry). */
export interface RootIds {
  vm_id: number;
  files_id: number;
  fs_id: number;
  sighand_id: number;
  pid_ns_id?: number;
  net_ns_id?: number;
  ipc_ns_id?: number;
  uts_ns_id?: number;
  mnt_ns_id?: number;
  user_ns_id?: number;
  cgroup_ns_id?: number;
  time_ns_id?: number;
}

export type LsmTypeName = 'NO_LSM' | 'SELINUX' | 'APPARMOR';

export interface Inventory {
  /** 2 for every image ferry can read (1 = images without head magics, pre-2013). */
  img_version: number;
  fdinfo_per_id?: boolean;
  ns_per_id?: boolean;
  root_ids?: RootIds;
  root_cg_set?: number;
  lsmtype?: LsmTypeName;
  /** Boot-relative time of the dump; written only with memory tracking. */
  dump_uptime?: number;
  /** CRIU's pre-dump mode (1 = splice, 2 = process_vm_readv); written by pre-dumps only. */
  pre_dump_mode?: number;
  tcp_close?: boolean;
  /**
   * CRIU's network lock method in CRIU's internal numbering, which is NOT the RPC enum's:
   * 0 = iptables, 1 = nftables, 2 = skip. Absent in images from older CRIU versions (meaning iptables).
   */
  network_lock_method?: number;
  /** Plugins used at dump time; undefined when the image does not record them. */
  plugins?: string[];
  /** The UUID of the CRIU run that dumped (names nftables lock tables). */
  dump_criu_run_id?: string;
  /** CRIU 4.2+: dumped with --allow-uprobes. */
  allow_uprobes?: boolean;
}

const LSM_NAMES: Readonly<Record<LsmType, LsmTypeName>> = {
  [LsmType.NO_LSM]: 'NO_LSM',
  [LsmType.SELINUX]: 'SELINUX',
  [LsmType.APPARMOR]: 'APPARMOR',
};

/** Reads `inventory.img` in `dir`; undefined when there is none. */
export async function readInventory(dir: string): Promise<Inventory | undefined> {
  const file = join(dir, INVENTORY_FILE);
  const entries = await readImageEntries(file, IMAGE_KINDS.inventory);
  const [entry, extra] = entries;
  if (entry === undefined) return undefined;
  if (extra !== undefined) throw imageFormatError(file, `${entries.length} inventory entries, expected 1`, extra.offset);
  const inv = decodeEntry(InventoryEntrySchema, entry, file);
  const f = InventoryEntrySchema.field;
  const out: Inventory = { img_version: inv.imgVersion };
  if (isFieldSet(inv, f.fdinfoPerId)) out.fdinfo_per_id = inv.fdinfoPerId;
  if (isFieldSet(inv, f.nsPerId)) out.ns_per_id = inv.nsPerId;
  if (inv.rootIds !== undefined) out.root_ids = rootIdsFrom(inv.rootIds);
  if (isFieldSet(inv, f.rootCgSet)) out.root_cg_set = inv.rootCgSet;
  if (isFieldSet(inv, f.lsmtype)) out.lsmtype = LSM_NAMES[inv.lsmtype];
  if (isFieldSet(inv, f.dumpUptime)) out.dump_uptime = u64ToNumber(inv.dumpUptime, 'dump_uptime', file, entry.offset);
  if (isFieldSet(inv, f.preDumpMode)) out.pre_dump_mode = inv.preDumpMode;
  if (isFieldSet(inv, f.tcpClose)) out.tcp_close = inv.tcpClose;
  if (isFieldSet(inv, f.networkLockMethod)) out.network_lock_method = inv.networkLockMethod;
  if (inv.pluginsEntry !== undefined) out.plugins = [...inv.pluginsEntry.plugins];
  if (isFieldSet(inv, f.dumpCriuRunId)) out.dump_criu_run_id = inv.dumpCriuRunId;
  if (isFieldSet(inv, f.allowUprobes)) out.allow_uprobes = inv.allowUprobes;
  return out;
}

/** The ids of a task_kobj_ids_entry, optional ones only when set. */
export function rootIdsFrom(ids: TaskKobjIds): RootIds {
  const f = TaskKobjIdsSchema.field;
  const out: RootIds = { vm_id: ids.vmId, files_id: ids.filesId, fs_id: ids.fsId, sighand_id: ids.sighandId };
  if (isFieldSet(ids, f.pidNsId)) out.pid_ns_id = ids.pidNsId;
  if (isFieldSet(ids, f.netNsId)) out.net_ns_id = ids.netNsId;
  if (isFieldSet(ids, f.ipcNsId)) out.ipc_ns_id = ids.ipcNsId;
  if (isFieldSet(ids, f.utsNsId)) out.uts_ns_id = ids.utsNsId;
  if (isFieldSet(ids, f.mntNsId)) out.mnt_ns_id = ids.mntNsId;
  if (isFieldSet(ids, f.userNsId)) out.user_ns_id = ids.userNsId;
  if (isFieldSet(ids, f.cgroupNsId)) out.cgroup_ns_id = ids.cgroupNsId;
  if (isFieldSet(ids, f.timeNsId)) out.time_ns_id = ids.timeNsId;
  return out;
}
