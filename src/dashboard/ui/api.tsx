// The page's side of the agent: the typed client (src/agent/client.ts) on the page's own origin,
// with the token from the tab's sessionStorage. The token goes in the Authorization header only:
// never in a URL, never in the page's text.
import { AgentClient } from '../../agent/client.js';
import type { Job } from '../../engine/jobs.js';
import type { DryRunResult } from '../../migrate/dry-run.js';
import type { PeerView } from '../../agent/routes/peers.js';
import type { StrategyName } from '../../migrate/strategy.js';

export const TOKEN_KEY = 'ferry.dashboard.token';

export interface Peers { self: { name: string; version: string; criu: string | null; store: string }; peers: PeerView[] }

export interface MigrateForm {
  target: string;
  to: { url: string; name: string; token?: string };
  strategy: StrategyName;
  tier: 'memory' | 'disk';
  tcpEstablished: boolean;
}

/**
 * The strategies `ferry migrate` takes (protocol.ts STRATEGY_NAMES; listed here so the page does
 * not bundle zod), `auto` first, the default. The check below fails the build when the two differ.
 */
export const STRATEGIES = ['auto', 'cold', 'stream', 'incremental', 'postcopy', 'precopy'] as const satisfies readonly StrategyName[];
const _everyStrategy: Exclude<StrategyName, (typeof STRATEGIES)[number]> extends never ? true : never = true;
void _everyStrategy;
export const STRATEGY_HINT: Record<StrategyName, string> = {
  auto: 'ferry picks one from size, link, dirty rate, compressibility and kernel features',
  cold: 'freeze, dump, send, restore',
  stream: 'the dump streamed to the destination while it is written',
  incremental: 'pre-copy rounds while it runs, then only what changed',
  postcopy: 'resume there at once, pages fetched on demand',
  precopy: "CRIU's pre-dump with the kernel's dirty tracking",
};

export class Api {
  readonly client: AgentClient;

  constructor(readonly token: string, readonly origin = location.origin) {
    this.client = new AgentClient({ url: origin, token, fetch: (url, init) => fetch(url, init), timeoutMs: 30_000 });
  }

  peers(): Promise<Peers> { return this.client.request('GET', '/v1/peers'); }

  preflight(f: MigrateForm): Promise<DryRunResult> {
    return this.client.request('POST', '/v1/migrations/preflight', { target: f.target, to: this.to(f), strategy: f.strategy, tier: f.tier, tcpEstablished: f.tcpEstablished });
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
