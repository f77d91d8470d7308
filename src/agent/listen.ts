import { isIP } from 'node:net';
import { FerryError } from '../util/errors.js';

/** The agent's default port (documented in README's "The agent"). */
export const DEFAULT_PORT = 7387;
export const DEFAULT_HOST = '127.0.0.1';

export interface ListenAddress { host: string; port: number }

/** Parses `ADDR:PORT`, `[IPv6]:PORT`, `ADDR` or `:PORT` (missing parts: 127.0.0.1, 7387). */
export function parseListen(spec: string | undefined): ListenAddress {
  if (spec === undefined || spec === '') return { host: DEFAULT_HOST, port: DEFAULT_PORT };
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*))(?::(\d{1,5}))?$/.exec(spec) ?? /^([0-9a-fA-F:]+)$/.exec(spec);
  const host = (m?.[1] ?? m?.[2] ?? '') || DEFAULT_HOST;
  const port = m?.[3] === undefined ? DEFAULT_PORT : Number(m[3]);
  if (!m || port > 65535 || (isIP(host) === 0 && !/^[A-Za-z0-9.-]+$/.test(host))) {
    throw new FerryError('ERR_USAGE', `agent: --listen must be ADDR:PORT (e.g. 127.0.0.1:${DEFAULT_PORT} or [::1]:${DEFAULT_PORT}), not '${spec}'`, { hint: `the default is ${DEFAULT_HOST}:${DEFAULT_PORT}` });
  }
  return { host, port };
}

/** True for addresses only this host can reach: 127.0.0.0/8, ::1, localhost. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1' || host === '0:0:0:0:0:0:0:1') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host);
  return mapped !== null && (mapped[1] ?? '').startsWith('127.');
}

/**
 * The start-up check: an agent reachable from other hosts must have a token (anyone who can reach
 * it could otherwise checkpoint, restore and remove as root).
 */
export function checkListenSafety(addr: ListenAddress, hasToken: boolean): void {
  if (!isLoopback(addr.host) && !hasToken) {
    throw new FerryError('ERR_LISTEN_UNSAFE', `agent: refusing to listen on ${addr.host}:${addr.port} without a token: any host that reaches it could checkpoint, restore and remove snapshots as root`, {
      hint: 'give --token-file FILE (a file holding a long random token, readable only by root), or listen on loopback (the default, 127.0.0.1)',
    });
  }
}
