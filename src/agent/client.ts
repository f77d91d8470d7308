import type { Job, JobEvent, JobState } from '../engine/jobs.js';
import type { InspectReport } from '../engine/inspect-report.js';
import type { StoreListing } from '../engine/listing.js';
import type { RemoveResult } from '../store/retention.js';
import type { WorkloadStatus } from '../targets/workload-status.js';
import { FerryError } from '../util/errors.js';
import { agentError, callAgent, sendToAgent, type FetchFn } from '../util/agent-http.js';
import type { CheckpointBody, RestoreBody } from './schemas.js';

/**
 * A typed client of the agent's HTTP API (the routes of app.ts), on the platform's fetch: no
 * dependency, so programs (and later the CLI's remote mode) load nothing of the server. An error
 * answer becomes a FerryError with the agent's code, message and hint, so callers handle local
 * and remote failures alike.
 */
export interface AgentClientOptions {
  /** e.g. http://127.0.0.1:7387 */
  url: string;
  token?: string;
  /** Another fetch (tests: an in-process app's `request`). */
  fetch?: (url: string, init: RequestInit) => Promise<Response>;
  /** Each request's time limit (default 30 s; an event stream has none). */
  timeoutMs?: number;
}

export interface AgentHealth { ok: boolean; version: string; criu: { version: string | null }; store: string }

const FINAL: readonly JobState[] = ['succeeded', 'failed', 'cancelled'];

export class AgentClient {
  private readonly base: string;
  private readonly doFetch: (url: string, init: RequestInit) => Promise<Response>;

  constructor(private readonly o: AgentClientOptions) {
    this.base = o.url.replace(/\/+$/, '');
    this.doFetch = o.fetch ?? ((url, init) => fetch(url, init));
  }

  health(): Promise<AgentHealth> { return this.call('GET', '/v1/health'); }
  /** Submits a checkpoint; the job runs on the agent (follow it with `events` or `wait`). */
  async checkpoint(body: CheckpointBody): Promise<Job> { return (await this.call<{ job: Job }>('POST', '/v1/checkpoints', body)).job; }
  async restore(body: RestoreBody): Promise<Job> { return (await this.call<{ job: Job }>('POST', '/v1/restores', body)).job; }
  async jobs(): Promise<Job[]> { return (await this.call<{ jobs: Job[] }>('GET', '/v1/jobs')).jobs; }
  async job(id: string): Promise<Job> { return (await this.call<{ job: Job }>('GET', `/v1/jobs/${encodeURIComponent(id)}`)).job; }
  cancel(id: string): Promise<{ job: Job; cancelled: boolean }> { return this.call('DELETE', `/v1/jobs/${encodeURIComponent(id)}`); }
  async snapshots(): Promise<Record<string, unknown>[]> { return (await this.call<{ snapshots: Record<string, unknown>[] }>('GET', '/v1/snapshots')).snapshots; }
  async snapshot(id: string): Promise<Record<string, unknown>> { return (await this.call<{ snapshot: Record<string, unknown> }>('GET', `/v1/snapshots/${encodeURIComponent(id)}`)).snapshot; }
  /** As `ferry snapshots rm ID`; `result` is what its --json prints. */
  removeSnapshot(id: string): Promise<{ removed: string; result: RemoveResult }> { return this.call('DELETE', `/v1/snapshots/${encodeURIComponent(id)}`); }
  /** The store's listing, as `ferry snapshots ls --json` prints it. */
  listing(): Promise<StoreListing> { return this.call('GET', '/v1/store'); }
  async workloads(): Promise<WorkloadStatus[]> { return (await this.workloadListing()).workloads; }
  /** What `ferry ps --json` prints, and where the agent's store keeps its workloads. */
  workloadListing(): Promise<{ workloads: WorkloadStatus[]; workloadsDir: string }> { return this.call('GET', '/v1/workloads'); }
  /** What `ferry snapshots inspect ID --json` prints (`showEnv`: the environment's values too, as --show-env). */
  inspect(id: string, showEnv = false): Promise<InspectReport> { return this.call('GET', `/v1/snapshots/${encodeURIComponent(id)}/inspect${showEnv ? '?env=full' : ''}`); }

  /** The job's events (replayed from its start), ending after its final state. */
  async *events(id: string, signal?: AbortSignal): AsyncGenerator<JobEvent> {
    const res = await this.send('GET', `/v1/jobs/${encodeURIComponent(id)}/events`, undefined, signal);
    if (!res.ok) throw await agentError(res);
    if (!res.body) throw new FerryError('ERR_AGENT_UNREACHABLE', 'the agent sent an event stream without a body');
    const decoder = new TextDecoder();
    let buf = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        let type = '';
        let data = '';
        for (const line of block.split('\n')) {
          if (line.startsWith('event: ')) type = line.slice(7);
          else if (line.startsWith('data: ')) data += line.slice(6);
        }
        if (type !== 'state' && type !== 'phase' && type !== 'progress' && type !== 'transfer') continue;
        const e = { type, ...(JSON.parse(data) as object) } as JobEvent;
        yield e;
        if (e.type === 'state' && FINAL.includes(e.state)) return;
      }
    }
  }

  /** Follows a job to its final state (each event to `onEvent`) and returns it. */
  async wait(id: string, onEvent?: (e: JobEvent) => void, signal?: AbortSignal): Promise<Job> {
    for await (const e of this.events(id, signal)) onEvent?.(e);
    return this.job(id);
  }

  /** Any JSON route (the migration protocol's peer calls use it), with its own time limit. */
  request<T>(method: string, path: string, body?: unknown, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<T> {
    return this.call(method, path, body, opts);
  }

  private call<T>(method: string, path: string, body?: unknown, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<T> {
    const limit = AbortSignal.timeout(opts.timeoutMs ?? this.o.timeoutMs ?? 30_000);
    return callAgent<T>(this.conn(), method, path, body, opts.signal ? AbortSignal.any([limit, opts.signal]) : limit);
  }

  private send(method: string, path: string, body: unknown, signal: AbortSignal | undefined): Promise<Response> {
    return sendToAgent(this.conn(), method, path, body, signal);
  }

  private conn(): { base: string; token?: string; fetch: FetchFn } {
    return { base: this.base, fetch: this.doFetch, ...(this.o.token !== undefined ? { token: this.o.token } : {}) };
  }

}
