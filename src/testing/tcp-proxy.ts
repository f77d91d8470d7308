import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * A loopback TCP proxy for fault tests: forwards to `port`, counts the bytes clients send, and
 * lets a test damage the stream — flip one byte at an offset, cut every connection once a number
 * of bytes went through, or run a callback there (kill a peer) — on the connection whose request
 * line matches `only` (e.g. the images upload), leaving the others alone.
 */
export interface ProxyFault {
  /** Which connections: their first bytes (the HTTP request line) match this. */
  only: RegExp;
  /** After this many bytes of that connection's upload … */
  afterBytes: number;
  /** … flip one byte, cut the connection (both ways), or call back (once). */
  action: 'flip' | 'cut' | (() => void);
}

export interface Proxy { port: number; fault: ProxyFault | undefined; fired: boolean; close(): Promise<void> }

export async function startProxy(port: number): Promise<Proxy> {
  const sockets = new Set<Socket>();
  const proxy: Proxy = { port: 0, fault: undefined, fired: false, close: () => Promise.resolve() };
  const server: Server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port });
    sockets.add(client);
    sockets.add(upstream);
    const end = () => { client.destroy(); upstream.destroy(); };
    client.on('close', () => { sockets.delete(client); upstream.end(); });
    upstream.on('close', () => { sockets.delete(upstream); client.end(); });
    client.on('error', end);
    upstream.on('error', end);
    upstream.pipe(client);
    let seen = 0;
    let head = '';
    let matches: boolean | undefined;
    client.on('data', (chunk: Buffer) => {
      if (matches === undefined) {
        head += chunk.subarray(0, 256).toString('latin1');
        if (head.includes('\n') || head.length >= 256) matches = proxy.fault !== undefined && proxy.fault.only.test(head.split('\n')[0] ?? '');
      }
      const f = proxy.fault;
      if (matches && f && !proxy.fired && seen + chunk.length > f.afterBytes) {
        proxy.fired = true;
        const at = f.afterBytes - seen;
        if (f.action === 'flip') {
          const copy = Buffer.from(chunk);
          copy[at] = (copy[at] ?? 0) ^ 0x5a;
          chunk = copy;
        } else if (f.action === 'cut') {
          upstream.write(chunk.subarray(0, at));
          end();
          return;
        } else {
          f.action();
        }
      }
      seen += chunk.length;
      if (!upstream.write(chunk)) {
        client.pause();
        upstream.once('drain', () => client.resume());
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  proxy.port = typeof a === 'object' && a ? a.port : 0;
  proxy.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return proxy;
}
