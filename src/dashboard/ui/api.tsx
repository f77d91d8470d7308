// The page's side of the agent: the typed client (src/agent/client.ts) on the page's own origin,
// with the token from the tab's sessionStorage. The token goes in the Authorization header only:
// never in a URL, never in the page's text.
import { AgentClient } from '../../agent/client.js';
import type { Job } from '../../engine/jobs.js';
import type { DryRunResult } from '../../migrate/dry-run.js';
import type { PeerView } from '../../agent/routes/peers.js';

export const TOKEN_KEY = 'ferry.dashboard.token';

export interface Peers { self: { name: string; version: string; criu: string | null; store: string }; peers: PeerView[] }

export interface MigrateForm {
  target: string;
  to: { url: string; name: string; token?: string };
  strategy: 'cold';
  tier: 'memory' | 'disk';
  tcpEstablished: boolean;
}

/** The strategies this agent's migrate accepts (protocol.ts MigrateBody.strategy). */
export const STRATEGIES = ['cold'] as const;

export class Api {
  readonly client: AgentClient;

  constructor(readonly token: string, readonly origin = location.origin) {
    this.client = new AgentClient({ url: origin, token, fetch: (url, init) => fetch(url, init), timeoutMs: 30_000 });
  }

  peers(): Promise<Peers> { return this.client.request('GET', '/v1/peers'); }

  preflight(f: MigrateForm): Promise<DryRunResult> {
    return this.client.request('POST', '/v1/migrations/preflight', { target: f.target, to: this.to(f), tier: f.tier, tcpEstablished: f.tcpEstablished });
  }

  async migrate(f: MigrateForm): Promise<Job> {
    const body = { target: f.target, to: { ...this.to(f), name: f.to.name }, strategy: f.strategy, tier: f.tier, tcpEstablished: f.tcpEstablished };
    return (await this.client.request<{ job: Job }>('POST', '/v1/migrations', body)).job;
  }

  /** The destination's token: the one given for it, else this page's (a testbed's hosts share one). */
  private to(f: MigrateForm): { url: string; token: string } {
    return { url: f.to.url, token: f.to.token || this.token };
  }
}

export const savedToken = (): string | null => sessionStorage.getItem(TOKEN_KEY);
export const saveToken = (t: string): void => sessionStorage.setItem(TOKEN_KEY, t);
export const forgetToken = (): void => sessionStorage.removeItem(TOKEN_KEY);
