import { FerryError } from '../util/errors.js';

/**
 * The other agents this one knows (the dashboard's hosts view): names and URLs, from
 * `FERRY_PEERS="h2=http://10.251.0.2:7387,h3=http://…"` (the testbed sets it for each host's
 * agent). Each is asked for its health with this agent's own token (a testbed's hosts share one).
 */
export interface Peer { name: string; url: string }

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const URL_RE = /^https?:\/\/[^\s/]+\/?$/;

/** Parses FERRY_PEERS (empty or unset: no peers); a malformed entry is refused, naming it. */
export function parsePeers(text: string | undefined): Peer[] {
  const peers: Peer[] = [];
  for (const raw of (text ?? '').split(',')) {
    const entry = raw.trim();
    if (!entry) continue;
    const eq = entry.indexOf('=');
    const name = eq > 0 ? entry.slice(0, eq) : '';
    const url = eq > 0 ? entry.slice(eq + 1).replace(/\/+$/, '') : '';
    if (!NAME.test(name) || !URL_RE.test(url)) {
      throw new FerryError('ERR_BAD_OPTION', `FERRY_PEERS: '${entry.slice(0, 120)}' is not NAME=URL`, { hint: 'e.g. FERRY_PEERS=h2=http://10.251.0.2:7387,h3=http://10.251.0.3:7387' });
    }
    if (peers.some((p) => p.name === name)) throw new FerryError('ERR_BAD_OPTION', `FERRY_PEERS names '${name}' twice`, { hint: 'give each peer once' });
    peers.push({ name, url });
  }
  return peers;
}

/** FERRY_PEERS's value for a list of peers (the testbed writes it). */
export function formatPeers(peers: readonly Peer[]): string {
  return peers.map((p) => `${p.name}=${p.url}`).join(',');
}
