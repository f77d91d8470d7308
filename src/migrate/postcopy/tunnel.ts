import type { IncomingMessage } from 'node:http';
import { request } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { FerryError } from '../../util/errors.js';

/**
 * The post-copy page stream between two agents: one TCP connection per migration, opened by the
 * source as an HTTP upgrade of `GET /v1/migrations/:id/pages` (the agent's bearer token, like
 * every other call), after which it carries CRIU's page-server protocol unchanged: the
 * destination's page handler asks, the source's CRIU answers. No bytes are re-framed, so the
 * pages move at the speed of the connection.
 */

export const PAGE_TUNNEL_PROTOCOL = 'ferry-pages';
const PATH = /^\/v1\/migrations\/(m-[0-9a-f]{16})\/pages$/;

/** Source side: opens the tunnel for migration `id` on the destination agent at `url`. */
export function openPageTunnel(url: string, token: string | undefined, id: string, signal?: AbortSignal): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const u = new URL(`/v1/migrations/${id}/pages`, url);
    const req = request(u, {
      method: 'GET',
      headers: { Connection: 'Upgrade', Upgrade: PAGE_TUNNEL_PROTOCOL, ...(token !== undefined ? { Authorization: `Bearer ${token}` } : {}) },
      ...(signal ? { signal } : {}),
    });
    const timer = setTimeout(() => req.destroy(new Error('no answer within 10 s')), 10_000);
    req.on('upgrade', (_res: IncomingMessage, socket: Socket, head: Buffer) => {
      clearTimeout(timer);
      if (head.length > 0) socket.unshift(head);
      socket.setNoDelay(true);
      resolve(socket);
    });
    req.on('response', (res: IncomingMessage) => {
      clearTimeout(timer);
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => reject(new FerryError('ERR_MIGRATE_PEER', `the destination refused the post-copy page stream: HTTP ${res.statusCode ?? '?'} ${body.trim().slice(0, 200)}`)));
    });
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(new FerryError('ERR_MIGRATE_PEER', `cannot open the post-copy page stream to ${url}: ${e.message}`, { cause: e }));
    });
    req.end();
  });
}

export interface PageTunnelServer {
  /** Whether the request's Authorization header carries the agent's token (the agent's own check). */
  authorized(header: string | undefined): boolean;
  /** Takes the stream for migration `id` (throws a FerryError to refuse it). */
  accept(id: string, socket: Socket): void;
}

/**
 * Destination side: an 'upgrade' listener for the agent's HTTP server. The accepted socket is
 * taken out of Node's hands (reading stopped) so that a child process (the page handler) can
 * own its descriptor.
 */
export function pageTunnelListener(o: PageTunnelServer): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  return (req, duplex, head) => {
    const socket = duplex as Socket;
    const refuse = (status: number, text: string, message: string): void => {
      socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(message)}\r\n\r\n${message}`);
    };
    const m = PATH.exec(req.url ?? '');
    if (!m?.[1] || (req.headers.upgrade ?? '').toLowerCase() !== PAGE_TUNNEL_PROTOCOL) {
      refuse(404, 'Not Found', 'no such upgrade here');
      return;
    }
    if (!o.authorized(req.headers.authorization)) {
      refuse(401, 'Unauthorized', 'a bearer token is needed (the agent\'s --token)');
      return;
    }
    if (head.length > 0) {
      refuse(400, 'Bad Request', 'the page stream starts after the answer');
      return;
    }
    try {
      socket.pause();
      (socket as unknown as { _handle?: { readStop?: () => void } })._handle?.readStop?.();
      socket.setNoDelay(true);
      o.accept(m[1], socket);
    } catch (e) {
      refuse(409, 'Conflict', e instanceof Error ? e.message : String(e));
      return;
    }
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${PAGE_TUNNEL_PROTOCOL}\r\nConnection: Upgrade\r\n\r\n`);
  };
}
