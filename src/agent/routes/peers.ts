import { Hono } from 'hono';
import { callAgent } from '../../util/agent-http.js';
import { errorJson } from '../../util/errors.js';
import type { AgentDeps } from '../context.js';
import type { AgentHealth } from '../client.js';
import type { Peer } from '../peers.js';

/** How long one peer may take to answer its health (the hosts view waits for the slowest). */
const PEER_HEALTH_MS = 3_000;

export interface PeerView {
  name: string;
  url: string;
  ok: boolean;
  version?: string;
  criu?: string | null;
  store?: string;
  /** Why it is not ok: the peer's own error, or that it could not be reached. */
  error?: { code: string; message: string; hint?: string };
}

/**
 * `GET /v1/peers`: this agent (`self`) and the peers it was told of (FERRY_PEERS), each asked
 * for its health now, in parallel, with this agent's token. A peer that does not answer is
 * listed with its error, never left out.
 */
export function peerRoutes(d: AgentDeps, o: { self: string; peers: readonly Peer[]; token: string | undefined }): Hono {
  const app = new Hono();
  app.get('/v1/peers', async (c) => {
    const peers = await Promise.all(o.peers.map(async (p): Promise<PeerView> => {
      try {
        const h = await callAgent<AgentHealth>({ base: p.url, token: o.token }, 'GET', '/v1/health', undefined, AbortSignal.timeout(PEER_HEALTH_MS));
        return { name: p.name, url: p.url, ok: h.ok === true, version: h.version, criu: h.criu.version, store: h.store };
      } catch (err) {
        const e = errorJson(err) as { code: string; message: string; hint?: string };
        return { name: p.name, url: p.url, ok: false, error: { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) } };
      }
    }));
    const criu = await d.criuVersion().catch(() => null);
    return c.json({ self: { name: o.self, version: d.version, criu, store: d.engine.store.root }, peers });
  });
  return app;
}
