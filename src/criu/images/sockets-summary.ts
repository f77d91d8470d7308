/**
 * The tree's sockets at a glance: how many of each kind, which TCP/UDP endpoints listen,
 * which TCP connections are established and whether their streams were dumped
 * (tcp-stream-<ino in hex>.img, written with --tcp-established).
 */
import type { FileEntry } from '../gen/criu-images_pb.js';
import type { InetEndpointSummary, SocketsSummary } from './inspect-types.js';
import { inetSocket } from './sockets.js';

export function tcpStreamImageName(ino: number): string {
  return `tcp-stream-${ino.toString(16)}.img`;
}

/**
 * `files` are files.img's entries; `holders` maps a file id to the pids with a descriptor
 * on it; `imageNames` are the file names in the images directory.
 */
export function summariseSockets(
  files: ReadonlyMap<number, FileEntry>,
  holders: ReadonlyMap<number, readonly number[]>,
  imageNames: ReadonlySet<string>,
): SocketsSummary {
  const counts: Record<string, number> = {};
  const bump = (kind: string): void => { counts[kind] = (counts[kind] ?? 0) + 1; };
  const listening: InetEndpointSummary[] = [];
  const established: InetEndpointSummary[] = [];
  for (const f of files.values()) {
    if (f.usk !== undefined) bump('unix');
    if (f.nlsk !== undefined) bump('netlink');
    if (f.psk !== undefined) bump('packet');
    if (f.isk === undefined) continue;
    const s = inetSocket(f.isk);
    const proto = s.family === 'ipv6' ? `${s.proto}6` : s.proto;
    bump(proto);
    const pids = [...(holders.get(f.id) ?? [])].sort((a, b) => a - b);
    const isTcp = s.proto === 'tcp';
    if (s.state === 'LISTEN' || (!isTcp && s.remotePort === 0 && s.localPort !== 0)) {
      listening.push({ proto, local: s.local, pids });
    } else if (isTcp && s.state === 'ESTABLISHED') {
      const streamDumped = imageNames.has(tcpStreamImageName(s.ino));
      established.push({ proto, local: s.local, remote: s.remote, pids, streamDumped });
    }
  }
  const byLocal = (a: InetEndpointSummary, b: InetEndpointSummary): number =>
    a.local < b.local ? -1 : a.local > b.local ? 1 : 0;
  return {
    counts,
    listening: listening.sort(byLocal),
    established: established.sort(byLocal),
    tcpStreamImages: [...imageNames].filter((n) => /^tcp-stream-[0-9a-f]+\.img$/.test(n)).length,
  };
}
