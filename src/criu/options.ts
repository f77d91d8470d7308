import { create } from '@bufbuild/protobuf';
import {
  CgroupMode,
  CgroupRootSchema,
  InheritFdSchema,
  JoinNamespaceSchema,
  NetworkLockMethod,
  PageServerInfoSchema,
  OptionsSchema,
  PreDumpMode,
  type Options,
} from './gen/criu-rpc_pb.js';

/**
 * Options of a CRIU operation, in CRIU's own vocabulary (camelCase of CRIU's option names).
 * Unset means "CRIU's default"; `false` is sent as false. Directories are paths: the client
 * opens them and passes them to CRIU as file descriptors (works on every CRIU line).
 * `toRpcOptions` is the one place these become RPC fields.
 */
export interface CriuOptions {
  /** Directory holding the images (`-D`). Opened by ferry, passed as `images_dir_fd`. */
  imagesDir: string;
  /** Directory for logs, stats and sockets (`-W`); defaults to `imagesDir`. */
  workDir?: string;
  /** Log file name inside the work dir (a bare name, no `/`). Defaults to `<request>.log`. */
  logFile?: string;
  /** Log verbosity 0..4 (`-v`); ferry defaults to 4 so that failures can be explained. */
  logLevel?: 0 | 1 | 2 | 3 | 4;

  /** Root pid of the tree to dump (`-t`). Required for dumps: unset means "dump the caller". */
  pid?: number;
  /** Leave the tasks running after a dump (`-R`). */
  leaveRunning?: boolean;
  /** Leave the tasks stopped after dump or restore (`-s`). */
  leaveStopped?: boolean;
  /** Allow unix sockets whose peer is outside the tree (`--ext-unix-sk`). */
  extUnixSk?: boolean;
  /** Checkpoint established TCP connections (`--tcp-established`). */
  tcpEstablished?: boolean;
  /** Skip half-open TCP connections (`--skip-in-flight`). */
  tcpSkipInFlight?: boolean;
  /** Restore connected TCP sockets as closed (`--tcp-close`). */
  tcpClose?: boolean;
  /** Allow device files that were not found at dump time to be opened by path (`--evasive-devices`). */
  evasiveDevices?: boolean;
  /** The tree is not a session leader: join/keep the caller's session and tty (`-j`). */
  shellJob?: boolean;
  /** Checkpoint file locks (`-l`). */
  fileLocks?: boolean;
  /** Root of the restored tree's file system (`-r`). */
  root?: string;
  /** Parent images directory, relative to `imagesDir` (`--prev-images-dir`). */
  parentImg?: string;
  /** Use kernel memory tracking for incremental dumps (`--track-mem`; needs soft-dirty). */
  trackMem?: boolean;
  /** Punch holes in parent images as pages are superseded (`--auto-dedup`). */
  autoDedup?: boolean;
  /** Allow link remaps of deleted-but-open files (`--link-remap`). */
  linkRemap?: boolean;
  /** CPU capability checks (`--cpu-cap`), as CRIU's bit mask. */
  cpuCap?: number;
  /** Force resolving names of inotify/fsnotify watches (`--force-irmap`). */
  forceIrmap?: boolean;
  /** After restore, CRIU execs this command (`--exec-cmd`). */
  execCmd?: readonly string[];
  /** Cgroup handling (`--manage-cgroups`). */
  manageCgroupsMode?: 'ignore' | 'none' | 'props' | 'soft' | 'full' | 'strict' | 'default';
  /** Cgroup roots to restore into (`--cgroup-root [ctrl:]path`). */
  cgroupRoots?: readonly { controller?: string; path: string }[];
  /** Freeze the tree through this cgroup's freezer (`--freeze-cgroup`). */
  freezeCgroup?: string;
  /** Restore as a child of the RPC client (`--restore-sibling`). */
  rstSibling?: boolean;
  /** Give restored tasks these file descriptors of ferry's in place of external resources (`--inherit-fd`). */
  inheritFds?: readonly { key: string; fd: number }[];
  /** Mount handling. */
  autoExtMnt?: boolean;
  extSharing?: boolean;
  extMasters?: boolean;
  skipMnt?: readonly string[];
  enableFs?: readonly string[];
  /** Maximum size of deleted files carried in the images (`--ghost-limit`), bytes. */
  ghostLimit?: number;
  /** Paths to scan for inotify name resolution (`--irmap-scan-path`). */
  irmapScanPaths?: readonly string[];
  /** External resources (`--external`), e.g. `mnt[/x]:name`, `unix[123]`. */
  external?: readonly string[];
  /** Namespaces to create empty on restore (`--empty-ns net`). */
  emptyNs?: readonly 'net'[];
  /** Namespaces to join on restore (`--join-ns`). */
  joinNs?: readonly { ns: 'ipc' | 'net' | 'time' | 'user' | 'uts'; nsFile: string; extraOpt?: string }[];
  /** Seconds to wait when seizing tasks (`--timeout`). */
  timeoutS?: number;
  /** Ignore sysctls that cannot be restored (`--weak-sysctls`). */
  weakSysctls?: boolean;
  /** Post-copy: leave anonymous memory to be fetched on demand (`--lazy-pages`). */
  lazyPages?: boolean;
  /** Page server to send pages to (dump) or to serve from. */
  pageServer?: { address?: string; port?: number };
  /** Send a re-created pty master to the client (`--orphan-pts-master`). */
  orphanPtsMaster?: boolean;
  /** A CRIU config file applied after these options (it overrides them). */
  configFile?: string;
  /** LSM profile for restored tasks (`--lsm-profile`). */
  lsmProfile?: string;
  lsmMountContext?: string;
  cgroupYard?: string;
  /** How pre-dumps read memory (`--pre-dump-mode`). */
  preDumpMode?: 'splice' | 'read';
  /** Network lock backend (`--network-lock`). */
  networkLock?: 'iptables' | 'nftables' | 'skip';
  mntnsCompatMode?: boolean;
  skipFileRwxCheck?: boolean;
  /** Run as a non-root user (`--unprivileged`). */
  unprivileged?: boolean;
  /** Ask for NOTIFY callbacks. The client sets this itself when handlers are given. */
  notifyScripts?: boolean;
}

/** File descriptors the client opened for one run: numbers in ferry's own fd table. */
export interface RunFds {
  imagesDirFd: number;
  workDirFd?: number;
}

const CG_MODES: Record<NonNullable<CriuOptions['manageCgroupsMode']>, CgroupMode> = {
  ignore: CgroupMode.CG_IGNORE,
  none: CgroupMode.CG_NONE,
  props: CgroupMode.CG_PROPS,
  soft: CgroupMode.CG_SOFT,
  full: CgroupMode.CG_FULL,
  strict: CgroupMode.CG_STRICT,
  default: CgroupMode.CG_DEFAULT,
};
const NET_LOCK: Record<NonNullable<CriuOptions['networkLock']>, NetworkLockMethod> = {
  iptables: NetworkLockMethod.NETWORK_LOCK_IPTABLES,
  nftables: NetworkLockMethod.NETWORK_LOCK_NFTABLES,
  skip: NetworkLockMethod.NETWORK_LOCK_SKIP,
};
const CLONE_NEWNET = 0x40000000;
/** CRIU's fd numbers for extra fds start after stdio (0-2) and the RPC socket (3). */
export const FIRST_EXTRA_CRIU_FD = 4;

export interface MappedOptions {
  opts: Options;
  /** Fds of ferry's to hand to the CRIU process; the i-th lands at CRIU fd FIRST_EXTRA_CRIU_FD + i. */
  extraFds: number[];
}

/** The ONE function that maps ferry's CRIU options onto RPC fields. */
export function toRpcOptions(o: CriuOptions, fds: RunFds, defaultLogFile: string): MappedOptions {
  const extraFds: number[] = [];
  const opts = create(OptionsSchema, {
    imagesDirFd: fds.imagesDirFd,
    logLevel: o.logLevel ?? 4,
    logFile: o.logFile ?? defaultLogFile,
  });
  if (fds.workDirFd !== undefined) opts.workDirFd = fds.workDirFd;
  const set = <K extends keyof Options>(key: K, value: Options[K] | undefined): void => {
    if (value !== undefined) opts[key] = value;
  };
  set('pid', o.pid);
  set('leaveRunning', o.leaveRunning);
  set('leaveStopped', o.leaveStopped);
  set('extUnixSk', o.extUnixSk);
  set('tcpEstablished', o.tcpEstablished);
  set('tcpSkipInFlight', o.tcpSkipInFlight);
  set('tcpClose', o.tcpClose);
  set('evasiveDevices', o.evasiveDevices);
  set('shellJob', o.shellJob);
  set('fileLocks', o.fileLocks);
  set('root', o.root);
  set('parentImg', o.parentImg);
  set('trackMem', o.trackMem);
  set('autoDedup', o.autoDedup);
  set('linkRemap', o.linkRemap);
  set('cpuCap', o.cpuCap);
  set('forceIrmap', o.forceIrmap);
  if (o.execCmd) opts.execCmd = [...o.execCmd];
  if (o.manageCgroupsMode) {
    opts.manageCgroups = o.manageCgroupsMode !== 'ignore';
    opts.manageCgroupsMode = CG_MODES[o.manageCgroupsMode];
  }
  if (o.cgroupRoots) {
    opts.cgRoot = o.cgroupRoots.map((r) =>
      create(CgroupRootSchema, { path: r.path, ...(r.controller !== undefined ? { ctrl: r.controller } : {}) }));
  }
  set('freezeCgroup', o.freezeCgroup);
  set('rstSibling', o.rstSibling);
  if (o.inheritFds) {
    opts.inheritFd = o.inheritFds.map((f) => {
      extraFds.push(f.fd);
      return create(InheritFdSchema, { key: f.key, fd: FIRST_EXTRA_CRIU_FD + extraFds.length - 1 });
    });
  }
  set('autoExtMnt', o.autoExtMnt);
  set('extSharing', o.extSharing);
  set('extMasters', o.extMasters);
  if (o.skipMnt) opts.skipMnt = [...o.skipMnt];
  if (o.enableFs) opts.enableFs = [...o.enableFs];
  set('ghostLimit', o.ghostLimit);
  if (o.irmapScanPaths) opts.irmapScanPaths = [...o.irmapScanPaths];
  if (o.external) opts.external = [...o.external];
  if (o.emptyNs?.includes('net')) opts.emptyNs = CLONE_NEWNET;
  if (o.joinNs) {
    opts.joinNs = o.joinNs.map((j) =>
      create(JoinNamespaceSchema, { ns: j.ns, nsFile: j.nsFile, ...(j.extraOpt !== undefined ? { extraOpt: j.extraOpt } : {}) }));
  }
  set('timeout', o.timeoutS);
  set('weakSysctls', o.weakSysctls);
  set('lazyPages', o.lazyPages);
  if (o.pageServer) {
    opts.ps = create(PageServerInfoSchema, {
      ...(o.pageServer.address !== undefined ? { address: o.pageServer.address } : {}),
      ...(o.pageServer.port !== undefined ? { port: o.pageServer.port } : {}),
    });
  }
  set('orphanPtsMaster', o.orphanPtsMaster);
  set('configFile', o.configFile);
  set('lsmProfile', o.lsmProfile);
  set('lsmMountContext', o.lsmMountContext);
  set('cgroupYard', o.cgroupYard);
  if (o.preDumpMode) opts.preDumpMode = o.preDumpMode === 'read' ? PreDumpMode.PRE_DUMP_VM_READ : PreDumpMode.PRE_DUMP_SPLICE;
  if (o.networkLock) opts.networkLock = NET_LOCK[o.networkLock];
  set('mntnsCompatMode', o.mntnsCompatMode);
  set('skipFileRwxCheck', o.skipFileRwxCheck);
  set('unprivileged', o.unprivileged);
  set('notifyScripts', o.notifyScripts);
  return { opts, extraFds };
}
