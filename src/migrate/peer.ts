import { callAgent } from '../util/agent-http.js';
import type { CommitAnswer, IncomingView, PreflightAnswer, PreflightBody, RestoreAnswer } from './protocol.js';

/** Time limits of the peer calls: a preflight and a commit are quick; a restore of GiBs is not. */
const PREFLIGHT_MS = 30_000;
const RESTORE_MS = 10 * 60_000;
const COMMIT_MS = 30_000;

/** The source's calls to the destination agent (protocol.ts), each with its time limit. */
export class PeerClient {
  private readonly conn: { base: string; token: string | undefined };

  constructor(readonly url: string, token: string | undefined) {
    this.conn = { base: url.replace(/\/+$/, ''), token };
  }

  private request<T>(method: string, path: string, body: unknown, o: { timeoutMs: number; signal?: AbortSignal }): Promise<T> {
    const limit = AbortSignal.timeout(o.timeoutMs);
    return callAgent<T>(this.conn, method, path, body, o.signal ? AbortSignal.any([limit, o.signal]) : limit);
  }

  preflight(id: string, body: PreflightBody, signal?: AbortSignal): Promise<PreflightAnswer> {
    return this.request('POST', `/v1/migrations/${id}`, body, { timeoutMs: PREFLIGHT_MS, ...(signal ? { signal } : {}) });
  }

  restore(id: string, snapshot: string, signal?: AbortSignal): Promise<RestoreAnswer> {
    return this.request('POST', `/v1/migrations/${id}/restore`, { snapshot }, { timeoutMs: RESTORE_MS, ...(signal ? { signal } : {}) });
  }

  commit(id: string): Promise<CommitAnswer> {
    return this.request('POST', `/v1/migrations/${id}/commit`, {}, { timeoutMs: COMMIT_MS });
  }

  abort(id: string, reason: string): Promise<{ migration: IncomingView }> {
    return this.request('POST', `/v1/migrations/${id}/abort`, { reason: reason.slice(0, 2000) }, { timeoutMs: COMMIT_MS });
  }

  async status(id: string): Promise<IncomingView> {
    return (await this.request<{ migration: IncomingView }>('GET', `/v1/migrations/${id}`, undefined, { timeoutMs: 5_000 })).migration;
  }
}
