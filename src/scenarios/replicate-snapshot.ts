import { randomBytes } from 'node:crypto';
import type { Engine } from '../engine/engine.js';
import { PeerClient } from '../migrate/peer.js';
import type { PreflightBody } from '../migrate/protocol.js';
import { sendImages } from '../migrate/send-images.js';
import { callAgent } from '../util/agent-http.js';
import { FerryError } from '../util/errors.js';
import type { ReplicaRecord } from './replicas.js';

/**
 * Sends one snapshot of this store to a standby's store, where it is kept as a replica (not
 * restored). Today this is the migration wire (a preflight in replica mode, then the flat image
 * stream of send-images.ts, then the replica's record on the standby); it is the one function a
 * schedule calls, so an incremental sender (`ferry replicate`, only the pages the standby lacks)
 * can take its place without the schedule changing.
 *
 * The snapshot must be flat (no `parent` link): the schedule's snapshots are taken with the
 * `newest-flat` dedup, which keeps the newest whole.
 */
export interface ReplicaPeer { url: string; token?: string | undefined; name?: string | undefined }

export interface ReplicateArgs {
  engine: Engine;
  snapshot: string;
  to: ReplicaPeer;
  /** Who sends it, as the standby's record names the source. */
  from: { host: string; url?: string | undefined; schedule?: string | undefined };
  /** The standby's tier (default disk: a standby's replicas should outlive its reboot). */
  tier?: 'memory' | 'disk';
  signal?: AbortSignal;
}

export interface ReplicateResult {
  /** The replica's snapshot id on the standby. */
  replica: string;
  bytes: number;
  wireBytes: number;
  ms: number;
}

export type Replicator = (a: ReplicateArgs) => Promise<ReplicateResult>;

export const replicateSnapshot: Replicator = async (a) => {
  const t0 = Date.now();
  const { manifest: m, dir } = await a.engine.inspect(a.snapshot);
  if (m.parent !== undefined) {
    throw new FerryError('ERR_BAD_OPTION', `snapshot ${m.id} builds on ${m.parent}: the wire sends flat snapshots only`, { hint: 'take it with --dedup newest-flat (the newest stays whole) or --no-dedup' });
  }
  const t = m.target;
  const workload = t.kind === 'process' ? t.workload : `container:${t.id}`;
  if (workload === undefined) throw new FerryError('ERR_BAD_OPTION', `snapshot ${m.id} is of a process that is not a \`ferry run\` workload: a standby could not tell it from others`, { hint: 'start the program with `ferry run --name NAME`' });
  const id = `m-${randomBytes(8).toString('hex')}`;
  const peer = new PeerClient(a.to.url, a.to.token);
  const pre: PreflightBody = {
    strategy: 'cold', criuVersion: m.criu.version, host: m.host, replica: true,
    target: {
      kind: t.kind, ownPidNamespace: t.ownPidNamespace, pids: [],
      ...(t.kind === 'process' && t.workload !== undefined ? { workload: t.workload } : {}),
      ...(t.kind === 'container' ? { container: { id: t.id, runtime: t.runtime, bundle: t.bundle } } : {}),
    },
    bytes: m.bytes, tier: a.tier ?? 'disk',
  };
  await peer.preflight(id, pre, a.signal);
  let sent;
  try {
    sent = await sendImages({
      dir, migrationId: id, url: a.to.url, token: a.to.token, ...(a.signal ? { signal: a.signal } : {}),
      meta: { name: m.name, target: m.target, options: m.options, criuVersion: m.criu.version, host: m.host, criuMs: m.timings.criuMs, files: m.files },
    });
  } catch (err) {
    // The standby removes what it received; one that never got a byte is told (else its idle timer would).
    await peer.abort(id, `the replica's transfer failed: ${err instanceof Error ? err.message : String(err)}`).catch(() => undefined);
    throw err;
  }
  const record: ReplicaRecord = {
    snapshot: sent.snapshot, workload, takenAt: m.createdAt,
    from: { host: a.from.host, ...(a.from.url !== undefined ? { url: a.from.url } : {}), ...(a.from.schedule !== undefined ? { schedule: a.from.schedule } : {}), snapshot: m.id },
  };
  await callAgent(conn(a.to), 'POST', '/v1/replicas', record, AbortSignal.any([AbortSignal.timeout(30_000), ...(a.signal ? [a.signal] : [])]));
  return { replica: sent.snapshot, bytes: sent.bytes, wireBytes: sent.wireBytes, ms: Date.now() - t0 };
};

/** Removes a replica (its snapshot and record) from the standby: the schedule's retention there. */
export async function dropReplica(to: ReplicaPeer, replica: string): Promise<void> {
  await callAgent(conn(to), 'DELETE', `/v1/replicas/${encodeURIComponent(replica)}`, undefined, AbortSignal.timeout(30_000));
}

const conn = (p: ReplicaPeer) => ({ base: p.url.replace(/\/+$/, ''), token: p.token });

/** What a schedule needs of replication: send a snapshot, drop an old replica. One object, so both can be swapped together. */
export interface ReplicaTransport {
  send: Replicator;
  drop(to: ReplicaPeer, replica: string): Promise<void>;
}

export const DEFAULT_REPLICA_TRANSPORT: ReplicaTransport = { send: replicateSnapshot, drop: dropReplica };
