/**
 * Inet and unix sockets of files.img in words: family, protocol, the kernel's state names,
 * addresses. CRIU stores the kernel's own numbers (AF_*, SOCK_*, IPPROTO_*, TCP_* states,
 * which unix sockets share), and addresses as u32 words in network byte order.
 */
import type { InetSkEntry, UnixSkEntry } from '../gen/criu-images_pb.js';

const AF_INET = 2;
const AF_INET6 = 10;

/** The kernel's TCP states (include/net/tcp_states.h), also used for unix sockets. */
const STATES: Readonly<Record<number, string>> = {
  1: 'ESTABLISHED', 2: 'SYN_SENT', 3: 'SYN_RECV', 4: 'FIN_WAIT1', 5: 'FIN_WAIT2', 6: 'TIME_WAIT',
  7: 'CLOSE', 8: 'CLOSE_WAIT', 9: 'LAST_ACK', 10: 'LISTEN', 11: 'CLOSING', 12: 'NEW_SYN_RECV',
};
const PROTOS: Readonly<Record<number, string>> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6', 136: 'udplite' };
const SOCK_TYPES: Readonly<Record<number, string>> = { 1: 'stream', 2: 'dgram', 3: 'raw', 5: 'seqpacket' };

export function socketStateName(state: number): string {
  return STATES[state] ?? `state ${state}`;
}

export function socketTypeName(type: number): string {
  return SOCK_TYPES[type] ?? `type ${type}`;
}

export interface InetSocket {
  ino: number;
  family: 'ipv4' | 'ipv6' | `family ${number}`;
  /** 'tcp', 'udp', ... from the protocol; 'raw' for raw sockets. */
  proto: string;
  state: string;
  /** 'addr:port' ('[addr]:port' for IPv6). */
  local: string;
  remote: string;
  localPort: number;
  remotePort: number;
}

/** An address from CRIU's u32 words: each word holds 4 address bytes, first byte lowest. */
export function formatInetAddress(words: readonly number[], family: number): string {
  const bytes = new Uint8Array(words.length * 4);
  const view = new DataView(bytes.buffer);
  words.forEach((w, i) => view.setUint32(i * 4, w, true));
  if (family === AF_INET) return words.length === 0 ? '0.0.0.0' : [...bytes.subarray(0, 4)].join('.');
  if (family !== AF_INET6) return `0x${[...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  return compressIpv6(groups);
}

/** RFC 5952 text: the longest run (2 or more) of zero groups becomes '::'. */
function compressIpv6(groups: string[]): string {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < groups.length;) {
    let j = i;
    while (j < groups.length && groups[j] === '0') j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

function endpoint(words: readonly number[], port: number, family: number): string {
  const addr = formatInetAddress(words, family);
  return family === AF_INET6 ? `[${addr}]:${port}` : `${addr}:${port}`;
}

export function inetSocket(isk: InetSkEntry): InetSocket {
  const family = isk.family === AF_INET ? 'ipv4' : isk.family === AF_INET6 ? 'ipv6' : `family ${isk.family}` as const;
  const proto = socketTypeName(isk.type) === 'raw' ? 'raw' : PROTOS[isk.proto] ?? `proto ${isk.proto}`;
  return {
    ino: isk.ino,
    family,
    proto,
    state: socketStateName(isk.state),
    local: endpoint(isk.srcAddr, isk.srcPort, isk.family),
    remote: endpoint(isk.dstAddr, isk.dstPort, isk.family),
    localPort: isk.srcPort,
    remotePort: isk.dstPort,
  };
}

/** 'tcp 127.0.0.1:6379 LISTEN', 'tcp6 [::1]:5000 -> [::1]:6379 ESTABLISHED', 'udp 0.0.0.0:53'. */
export function describeInet(s: InetSocket): string {
  const name = s.family === 'ipv6' ? `${s.proto}6` : s.proto;
  const connected = s.state !== 'LISTEN' && s.remotePort !== 0;
  const where = connected ? `${s.local} -> ${s.remote}` : s.local;
  if (s.proto === 'tcp') return `${name} ${where} ${s.state}`;
  return `${name} ${where}`;
}

/** A unix socket's name: a path, '@name' for an abstract one, '' for none. */
export function unixName(usk: UnixSkEntry): string {
  const name = usk.name;
  if (name.length === 0) return '';
  if (name[0] === 0) return `@${Buffer.from(name.subarray(1)).toString('latin1').replace(/\0/g, '@')}`;
  const path = Buffer.from(name).toString('utf8');
  return usk.nameDir !== '' && !path.startsWith('/') ? `${usk.nameDir}/${path}` : path;
}

/** 'unix stream /run/app.sock LISTEN ino 123', 'unix stream (unnamed) ESTABLISHED ino 124 peer 125'. */
export function describeUnix(usk: UnixSkEntry): string {
  const name = unixName(usk) || '(unnamed)';
  const deleted = usk.deleted ? ' (deleted)' : '';
  const peer = usk.peer !== 0 ? ` peer ${usk.peer}` : '';
  return `unix ${socketTypeName(usk.type)} ${name}${deleted} ${socketStateName(usk.state)} ino ${usk.ino}${peer}`;
}
