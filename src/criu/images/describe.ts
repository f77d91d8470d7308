/**
 * One open file of files.img in a line: `{type: 'inet', description: 'tcp 127.0.0.1:6379 LISTEN'}`.
 * A kind ferry does not know, or an entry without its kind's part, is described, not fatal.
 */
import type { FileEntry } from '../gen/criu-images_pb.js';
import { fdTypeName, type FdTypeName } from './files.js';
import type { MemfdInode } from './memfd.js';
import { describeInet, describeUnix, inetSocket } from './sockets.js';
import type { TtyInfo } from './tty.js';

export interface FileDescription {
  type: FdTypeName | 'unknown';
  description: string;
}

/** What descriptions may refer to: other files (paths of fifos and ttys), tty-info, memfd inodes. */
export interface DescribeContext {
  files: ReadonlyMap<number, FileEntry>;
  ttys: ReadonlyMap<number, TtyInfo>;
  memfds: ReadonlyMap<number, MemfdInode>;
}

const O_ACCMODE = 3;
const OPEN_FLAGS: readonly [number, string][] = [
  [0x400, 'O_APPEND'], [0x800, 'O_NONBLOCK'], [0x1000, 'O_DSYNC'], [0x4000, 'O_DIRECT'],
  [0x10000, 'O_DIRECTORY'], [0x40000, 'O_NOATIME'], [0x200000, 'O_PATH'],
];

/** 'O_RDWR|O_APPEND': the access mode and the status flags worth reading (not O_LARGEFILE, O_CLOEXEC). */
export function openFlagsText(flags: number): string {
  const mode = ['O_RDONLY', 'O_WRONLY', 'O_RDWR', 'O_ACCMODE'][flags & O_ACCMODE] ?? 'O_RDONLY';
  return [mode, ...OPEN_FLAGS.filter(([bit]) => (flags & bit) !== 0).map(([, name]) => name)].join('|');
}

/** CLONE_NEW* flags, for ns files. */
const NS_KINDS: Readonly<Record<number, string>> = {
  0x80: 'time', 0x20000: 'mnt', 0x2000000: 'cgroup', 0x4000000: 'uts', 0x8000000: 'ipc',
  0x10000000: 'user', 0x20000000: 'pid', 0x40000000: 'net',
};
const CLOCKS: Readonly<Record<number, string>> = { 0: 'realtime', 1: 'monotonic', 7: 'boottime', 8: 'realtime_alarm', 9: 'boottime_alarm' };

function regPath(ctx: DescribeContext, id: number | undefined): string | undefined {
  return id === undefined ? undefined : ctx.files.get(id)?.reg?.name;
}

/** The type and one-line description of an open file. */
export function describeFile(f: FileEntry, ctx: DescribeContext): FileDescription {
  const type = fdTypeName(f.type);
  if (type === undefined) return { type: 'unknown', description: `kind ${f.type}` };
  const description = describeKind(type, f, ctx) ?? `file id ${f.id}: files.img has no ${type} details`;
  return { type, description };
}

function describeKind(type: FdTypeName, f: FileEntry, ctx: DescribeContext): string | undefined {
  switch (type) {
    case 'reg': {
      const r = f.reg;
      if (r === undefined) return undefined;
      const size = r.size !== 0n ? `, size ${r.size}` : '';
      return `${r.name} (${openFlagsText(r.flags)}, pos ${r.pos}${size})`;
    }
    case 'inet': return f.isk && describeInet(inetSocket(f.isk));
    case 'unix': return f.usk && describeUnix(f.usk);
    case 'pipe': return f.pipe && `pipe:[${f.pipe.pipeId}] ${(f.pipe.flags & O_ACCMODE) === 1 ? 'write' : 'read'} end`;
    case 'fifo': return f.fifo && `fifo ${regPath(ctx, f.fifo.regfId) ?? '(path unknown)'} pipe:[${f.fifo.pipeId}]`;
    case 'tty': {
      if (f.tty === undefined) return undefined;
      const info = ctx.ttys.get(f.tty.ttyInfoId);
      const kind = info === undefined ? '' : ` (${info.type}${info.index === undefined ? '' : ` ${info.index}`})`;
      return `${regPath(ctx, f.tty.regfId) ?? 'tty'}${kind}`;
    }
    case 'memfd': {
      if (f.memfd === undefined) return undefined;
      const inode = ctx.memfds.get(f.memfd.inodeId);
      const name = inode === undefined ? `inode ${f.memfd.inodeId}` : `memfd:${inode.name} size ${inode.size}`;
      return `${name} (${openFlagsText(f.memfd.flags)}, pos ${f.memfd.pos})`;
    }
    case 'eventfd': return f.efd && `eventfd counter ${f.efd.counter}`;
    case 'eventpoll': return f.epfd && `eventpoll watching fds [${f.epfd.tfd.map((t) => t.tfd).join(', ')}]`;
    case 'signalfd': return f.sgfd && `signalfd mask 0x${f.sgfd.sigmask.toString(16)}`;
    case 'timerfd': return f.tfd && `timerfd ${CLOCKS[f.tfd.clockid] ?? `clock ${f.tfd.clockid}`}`;
    case 'inotify': return f.ify && `inotify ${f.ify.wd.length} watch(es)`;
    case 'fanotify': return f.ffy && `fanotify ${f.ffy.mark.length} mark(s)`;
    case 'packet': return f.psk && `packet socket type ${f.psk.type} proto 0x${f.psk.protocol.toString(16)} ifindex ${f.psk.ifindex}`;
    case 'netlink': return f.nlsk && `netlink proto ${f.nlsk.protocol} portid ${f.nlsk.portid}`;
    case 'ns': return f.nsf && `${NS_KINDS[f.nsf.nsCflag] ?? `ns 0x${f.nsf.nsCflag.toString(16)}`} namespace id ${f.nsf.nsId}`;
    case 'tun': return f.tunf && `tun ${f.tunf.netdev || '(detached)'}`;
    case 'ext': return f.ext && `external file id ${f.ext.id} (restored by a plugin or --inherit-fd)`;
    case 'bpfmap': return f.bpf && `bpf map ${f.bpf.mapName || '(unnamed)'} id ${f.bpf.mapId} type ${f.bpf.mapType}`;
    case 'pidfd': return f.pidfd && `pidfd pid ${f.pidfd.nspid}`;
  }
}
