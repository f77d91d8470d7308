/**
 * The shape of `inspectImages`' answer: plain JSON (no bigint, Map or undefined values);
 * addresses are '0x…' strings, sizes are bytes. Keys inside `criu` are CRIU's names.
 */
import type { TaskStateName } from './core.js';
import type { FileDescription } from './describe.js';
import type { DumpStats } from './stats.js';

export interface ImageSummary {
  /** The dumped process tree, parents before children (pstree order). */
  processes: ProcessSummary[];
  /** Per process with an address space (zombies have none). */
  memory: TaskMemorySummary[];
  /** Per descriptor table (fdinfo-<files_id>.img), with the processes sharing it. */
  files: TaskFilesSummary[];
  sockets: SocketsSummary;
  namespaces: NamespacesSummary;
  criu: CriuFacts;
  images: ImagesOnDisk;
  /** Things that could not be decoded or looked up, in words; the rest of the summary stands. */
  warnings: string[];
}

export interface ProcessSummary {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  /** Thread ids, the main thread (== pid) first as CRIU lists them. */
  threads: number[];
  /** task_core_entry.comm (the kernel's 15-character task name). */
  comm: string;
  state: TaskStateName | `unknown (${number})`;
  exitCode?: number;
  /** argv from the task's memory; [comm] when it could not be read (see commandLineSource). */
  commandLine: string[];
  commandLineSource: 'memory' | 'comm';
  /** Why the command line fell back to comm. */
  commandLineNote?: string;
  /** Environment: variable names only unless inspectImages was asked for values. */
  environment?: string[];
  /** The executable's path (mm exe_file_id → files.img). */
  exe?: string;
  uid?: number;
  gid?: number;
  euid?: number;
  egid?: number;
}

export interface MappingSummary {
  start: string;
  end: string;
  size: number;
  /** 'rwx' with '-' for missing bits. */
  prot: string;
  /** 'private' | 'shared', 'anon' | 'file', and kinds: 'stack', 'heap', 'vdso', 'memfd', ... */
  flags: string[];
  /** The backing file, for file and memfd mappings. */
  file?: string;
}

export interface TaskMemorySummary {
  pid: number;
  /** Sum of all VMA sizes (synthetic guard entries left out). */
  mappedBytes: number;
  anonPrivateBytes: number;
  fileBytes: number;
  sharedBytes: number;
  stackBytes: number;
  heapBytes: number;
  vmaCount: number;
  /**
   * Page counts from pagemap-<pid>.img: `present` pages have their data in `pagesFile`;
   * `lazy` pages have none (a lazy dump: the page server or lazy-pages daemon serves them);
   * `inParent` pages are in the parent snapshot (an incremental dump).
   */
  pages?: { present: number; presentBytes: number; lazy: number; inParent: number; pagesFile: string };
  /** The largest VMAs, largest first. */
  largestMappings: MappingSummary[];
}

export interface FdSummary extends FileDescription {
  fd: number;
  /** The open file's id in files.img (equal ids: one open file shared by several fds). */
  fileId: number;
}

export interface TaskFilesSummary {
  filesId: number;
  pids: number[];
  fds: FdSummary[];
}

export interface InetEndpointSummary {
  proto: string;
  /** 'addr:port'. */
  local: string;
  remote?: string;
  /** Processes holding a descriptor to the socket. */
  pids: number[];
  /** For established TCP: whether tcp-stream-<ino>.img (queues and sequence numbers) was dumped. */
  streamDumped?: boolean;
}

export interface SocketsSummary {
  /** Open socket files by kind ('tcp', 'udp', 'tcp6', 'unix', 'netlink', 'packet', ...). */
  counts: Record<string, number>;
  listening: InetEndpointSummary[];
  established: InetEndpointSummary[];
  /** Number of tcp-stream-*.img files: established connections dumped with --tcp-established. */
  tcpStreamImages: number;
}

export type NamespaceKind = 'pid' | 'net' | 'mnt' | 'ipc' | 'uts' | 'user' | 'cgroup' | 'time';
export type NamespaceIds = Partial<Record<NamespaceKind, number>>;

export interface NamespacesSummary {
  /** inventory root_ids. */
  root?: NamespaceIds;
  tasks: { pid: number; ids: NamespaceIds }[];
  /** Namespace ids whose own images were dumped (netns-N, mountpoints-N, utsns-N, ...): the tree has its own. */
  dumped: Partial<Record<NamespaceKind, number[]>>;
  /** Kinds the tree has its own namespace of (from the dumped images). */
  own: NamespaceKind[];
  /** timens-0.img: the tree had no time namespace; restore creates one so its clocks continue. */
  timeNamespaceOnRestore: boolean;
}

export interface CriuFacts {
  img_version?: number;
  arch?: string;
  lsm?: string;
  /** CRIU's internal numbering: 0 iptables, 1 nftables, 2 skip. */
  network_lock_method?: 'iptables' | 'nftables' | 'skip' | `unknown (${number})`;
  tcp_close?: boolean;
  dump_criu_run_id?: string;
  plugins?: string[];
  stats_dump?: DumpStats;
}

export interface ImagesOnDisk {
  files: number;
  /** Apparent size in bytes. */
  totalBytes: number;
  /** Allocated on disk (less than totalBytes when pages files were deduplicated into holes). */
  diskBytes: number;
  byKind: Record<string, { files: number; bytes: number }>;
}
