/**
 * The source's calls for incremental transfers (the destination's routes: agent/routes/replicas.ts):
 * the replica kept for a workload, what a snapshot there holds, and a delta (pages-delta.ts)
 * streamed as a child of it.
 */
import { agentError, callAgent, sendToAgent } from '../util/agent-http.js';
import { FerryError } from '../util/errors.js';
import type { Delta } from './pages-delta.js';
import { decodeHave, type HaveSet } from './pages-have.js';
import type { ReplicaView } from './replicas.js';
import { sendImages, type SendImagesResult } from './send-images.js';
import type { SnapshotMeta } from './wire.js';

const LOOKUP_MS = 30_000;
/** A have-set is ≈ 4 MiB per GiB of memory: minutes would mean a dead link. */
const HAVE_MS = 120_000;

export type DeltaRoute =
  | { kind: 'replica'; key: string; tier: 'memory' | 'disk' }
  | { kind: 'round'; migration: string; replicaKey?: string | undefined }
  | { kind: 'final'; migration: string };

export class PagesClient {
  private readonly conn: { base: string; token: string | undefined };

  constructor(readonly url: string, readonly token: string | undefined) {
    this.conn = { base: url.replace(/\/+$/, ''), token };
  }

  private signal(ms: number, signal: AbortSignal | undefined): AbortSignal {
    const limit = AbortSignal.timeout(ms);
    return signal ? AbortSignal.any([limit, signal]) : limit;
  }

  /** The replica the destination keeps for `key`, if any. */
  async replica(key: string, signal?: AbortSignal): Promise<ReplicaView | undefined> {
    const r = await callAgent<{ replica: ReplicaView | null }>(this.conn, 'GET', `/v1/incremental/replicas/${encodeURIComponent(key)}`, undefined, this.signal(LOOKUP_MS, signal));
    return r.replica ?? undefined;
  }

  async removeReplica(key: string, signal?: AbortSignal): Promise<ReplicaView | undefined> {
    const r = await callAgent<{ removed: ReplicaView | null }>(this.conn, 'DELETE', `/v1/incremental/replicas/${encodeURIComponent(key)}`, undefined, this.signal(LOOKUP_MS, signal));
    return r.removed ?? undefined;
  }

  /** What the destination's snapshot `base` holds, page by page. */
  async have(base: string, signal?: AbortSignal): Promise<HaveSet> {
    const res = await sendToAgent(this.conn, 'GET', `/v1/incremental/pages/${encodeURIComponent(base)}`, undefined, this.signal(HAVE_MS, signal));
    if (!res.ok) throw await agentError(res);
    let buf: Buffer;
    try {
      buf = Buffer.from(await res.arrayBuffer());
    } catch (err) {
      throw new FerryError('ERR_TRANSFER_FAILED', `reading the page list of ${base} from ${this.url} failed: ${(err as Error).message}`, { cause: err, hint: 'the link or the destination agent failed; try again' });
    }
    return { base, sections: decodeHave(buf, `${this.url} (snapshot ${base})`) };
  }

  /** Streams a delta to one of the destination's incremental routes; answers the snapshot it sealed. */
  send(delta: Delta, route: DeltaRoute, o: { transfer: string; meta: Omit<SnapshotMeta, 'files'>; compress?: boolean; signal?: AbortSignal; onProgress?: (bytes: number) => void }): Promise<SendImagesResult> {
    const query: Record<string, string> = {};
    if (delta.parent !== undefined) query['parent'] = delta.parent;
    let path: string;
    if (route.kind === 'replica') {
      path = `v1/incremental/replicas/${encodeURIComponent(route.key)}/images`;
      query['transfer'] = o.transfer;
      query['tier'] = route.tier;
    } else {
      path = `v1/migrations/${encodeURIComponent(route.migration)}/${route.kind === 'round' ? 'rounds' : 'delta'}`;
      if (route.kind === 'round' && route.replicaKey !== undefined) query['replica'] = route.replicaKey;
    }
    return sendImages({
      dir: delta.dir, files: Object.keys(delta.files), meta: { ...o.meta, files: delta.files },
      url: this.url, token: this.token, migrationId: o.transfer, path, query, compress: o.compress ?? false,
      ...(o.signal ? { signal: o.signal } : {}),
      ...(o.onProgress ? { onProgress: (p) => o.onProgress!(p.bytes) } : {}),
    });
  }
}
