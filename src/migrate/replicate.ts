/**
 * `ferry replicate`: a snapshot of a running workload kept on another host's agent as its
 * replica, sent incrementally — the destination says what its current replica of the workload
 * holds, and only the pages whose content it lacks travel (pages-round.ts). A later
 * `ferry migrate --strategy incremental` to that host starts its pre-copy from the replica.
 *
 * The workload keeps running (a `--leave-running` dump: frozen only while CRIU dumps it); any
 * failure leaves it running and the destination's previous replica as it was.
 */
import { randomBytes } from 'node:crypto';
import type { Engine } from '../engine/engine.js';
import { FerryError, isFerryError } from '../util/errors.js';
import { PagesClient } from './pages-client.js';
import type { HaveSet } from './pages-have.js';
import { sendRound, type RoundFigures } from './pages-round.js';
import { replicaKey } from './replicas.js';

export interface ReplicateRequest {
  /** A pid, a `ferry run` workload name, or `container:ID`. */
  target: string | number;
  to: { url: string; token?: string | undefined };
  /** The destination's tier for a first (whole) replica (default disk; later ones stay in its tier). */
  tier?: 'memory' | 'disk';
  /** zstd on the wire (default off). */
  compress?: boolean;
  interrupt?: AbortSignal;
  onProgress?: (bytes: number) => void;
}

export interface ReplicateResult {
  ok: true;
  /** The replica's key on the destination (`w.NAME`, `c.ID`, `p.PID`). */
  key: string;
  destination: { url: string; snapshot: string };
  /** The replica it built on (undefined: sent whole), and the one it replaced. */
  parent: string | undefined;
  replaced: string | undefined;
  bytesSent: number;
  wireBytes: number;
  /** The bytes a whole snapshot would have been. */
  flatBytes: number;
  pages: number;
  /** Pages the destination held already (not sent). */
  pagesHeld: number;
  frozenMs: number;
  phases: { dump: number; delta: number; transfer: number };
  totalMs: number;
}

/** The key a replica of `target` is kept under; the target's form decides (workload name, container id, pid). */
export function keyOfTarget(target: string | number): string {
  if (typeof target === 'number' || /^\d+$/.test(target)) return replicaKey({ kind: 'process', pid: Number(target) });
  if (target.startsWith('container:')) return replicaKey({ kind: 'container', id: target.slice('container:'.length) });
  return replicaKey({ kind: 'process', workload: target, pid: 0 });
}

/** What the destination's replica for `key` holds, or undefined when it has none (or one that cannot be built on). */
export async function replicaHave(client: PagesClient, key: string, signal?: AbortSignal): Promise<HaveSet | undefined> {
  const replica = await client.replica(key, signal);
  if (!replica) return undefined;
  try {
    return await client.have(replica.snapshot, signal);
  } catch (err) {
    // Gone since, or taken without a page index: send whole.
    if (isFerryError(err, 'ERR_NO_SNAPSHOT')) return undefined;
    throw err;
  }
}

export async function replicate(engine: Engine, req: ReplicateRequest): Promise<ReplicateResult> {
  const t0 = Date.now();
  const client = new PagesClient(req.to.url, req.to.token);
  const key = keyOfTarget(req.target);
  const have = await replicaHave(client, key, req.interrupt);
  const transfer = `m-${randomBytes(8).toString('hex')}`;
  let r;
  try {
    r = await sendRound(engine, {
      target: req.target, client, have, route: { kind: 'replica', key, tier: req.tier ?? 'disk' }, transfer, name: `${transfer}.replica`,
      ...(req.compress !== undefined ? { compress: req.compress } : {}),
      ...(req.interrupt ? { interrupt: req.interrupt } : {}),
      ...(req.onProgress ? { onProgress: req.onProgress } : {}),
    });
  } catch (err) {
    if (err instanceof FerryError && !err.hint) throw new FerryError(err.code, `replicating ${String(req.target)} to ${req.to.url} failed: ${err.message}`, { cause: err, hint: 'the workload runs on; the destination keeps its previous replica' });
    throw err;
  }
  const f: RoundFigures = r.figures;
  return {
    ok: true, key, destination: { url: req.to.url, snapshot: r.snapshot }, parent: r.parent,
    replaced: (r.answer.destination as { replaced?: string }).replaced,
    bytesSent: f.bytes, wireBytes: f.wireBytes, flatBytes: f.flatBytes, pages: f.pages, pagesHeld: f.inParent, frozenMs: f.frozenMs,
    phases: { dump: f.dumpMs, delta: f.deltaMs, transfer: f.sendMs }, totalMs: Date.now() - t0,
  };
}
