import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { isFerryError } from '../../util/errors.js';
import { openPageTunnel, pageTunnelListener } from './tunnel.js';

const ID = 'm-0123456789abcdef';

describe('the post-copy page stream (an authenticated HTTP upgrade)', () => {
  let server: Server;
  let url = '';
  const accepted: { id: string; socket: Socket }[] = [];
  let refuseNext: string | undefined;

  before(async () => {
    server = createServer((_req, res) => { res.statusCode = 404; res.end(); });
    server.on('upgrade', pageTunnelListener({
      authorized: (h) => h === 'Bearer right',
      accept: (id, socket) => {
        if (refuseNext) { const m = refuseNext; refuseNext = undefined; throw new Error(m); }
        accepted.push({ id, socket });
      },
    }));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const a = server.address();
    url = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
  });
  after(() => {
    for (const a of accepted) a.socket.destroy();
    server.closeAllConnections();
    server.close();
  });

  it('refuses a wrong token (401) and takes nothing', async () => {
    await assert.rejects(openPageTunnel(url, 'wrong', ID), (e: unknown) => isFerryError(e, 'ERR_MIGRATE_PEER') && /HTTP 401/.test((e as Error).message));
    assert.equal(accepted.length, 0);
  });

  it('refuses what the destination will not take (409, with its reason)', async () => {
    refuseNext = 'migration m-0123456789abcdef is not a post-copy migration (cold)';
    await assert.rejects(openPageTunnel(url, 'right', ID), (e: unknown) => isFerryError(e, 'ERR_MIGRATE_PEER') && /HTTP 409 .*not a post-copy migration/.test((e as Error).message));
  });

  it('hands the upgraded connection over untouched: Node reads none of it, a child process given its fd gets every byte', async () => {
    const client = await openPageTunnel(url, 'right', ID);
    assert.equal(accepted.length, 1);
    const { id, socket } = accepted[0]!;
    assert.equal(id, ID);
    let nodeRead = 0;
    socket.on('data', (c: Buffer) => { nodeRead += c.length; });
    client.write(Buffer.from('pages!'));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(nodeRead, 0, 'Node stopped reading the stream');
    // As the page handler gets it: the descriptor as a child's stdio.
    const child = spawn('head', ['-c', '6'], { stdio: [socket, 'pipe', 'inherit'] });
    socket.destroy();
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => { out += c; });
    await new Promise((r) => child.once('close', r));
    assert.equal(out, 'pages!');
    client.destroy();
  });
});
