import { randomBytes } from 'node:crypto';
import type { Engine } from '../engine/engine.js';
import { driverPaths } from '../engine/paths.js';
import type { Tier } from '../store/manifest.js';
import { treePids } from '../telemetry/proc.js';
import { CriuClient } from '../criu/client.js';
import { parseTargetRef, resolveLive } from '../targets/drivers.js';
import { hostFacts } from '../targets/host.js';
import type { ProcessFacts } from '../targets/process-driver.js';
import { treeRssBytes } from '../targets/process.js';
import { recordOptions } from '../targets/recorded-options.js';
import { PeerClient } from './peer.js';
import type { PreflightAnswer, ServiceAddress } from './protocol.js';

/**
 * A migration's preflight alone (the dashboard's "dry run", `POST /v1/migrations/preflight`):
 * what `migrate` does before anything is frozen — resolve the target here, gather what will
 * travel, and ask the destination whether it can take it — then tell the destination to forget
 * it. Nothing is frozen, dumped or sent. The destination's refusal comes back as its error
 * (ERR_MIGRATE_REFUSED with its reason and hint); a target that cannot be migrated from here as
 * the engine's. The same checks as migrate.ts's preflight phase, kept beside it.
 */
export interface DryRunRequest {
  target: string | number;
  to: { url: string; token?: string | undefined };
  tcpEstablished?: boolean;
  tier?: Tier;
}

export interface DryRunResult {
  ok: true;
  /** The id the destination prepared and then aborted. */
  migration: string;
  target: { label: string; kind: 'process' | 'container'; rootPid: number; workload: string | null; pids: number; ownPidNamespace: boolean };
  /** About how many bytes would travel (the tree's RSS now). */
  bytes: number;
  address: ServiceAddress | null;
  source: { host: string; criuVersion: string };
  destination: PreflightAnswer & { url: string };
  ms: number;
}

export async function migrationDryRun(engine: Engine, req: DryRunRequest, signal?: AbortSignal): Promise<DryRunResult> {
  const t0 = Date.now();
  const id = `m-${randomBytes(8).toString('hex')}`;
  const peer = new PeerClient(req.to.url, req.to.token);
  const options = recordOptions({ tcpEstablished: req.tcpEstablished === true });
  const { live } = await resolveLive(parseTargetRef(req.target), driverPaths(engine.store), options);
  const record = live.record;
  const workload = record.kind === 'process' ? (live.private as ProcessFacts).workload : undefined;
  const up = workload?.address && !workload.address.removedAt ? workload.address : undefined;
  const address: ServiceAddress | undefined = up ? { address: up.address, prefix: up.prefix, dev: up.dev } : undefined;
  const [host, version, bytes] = await Promise.all([hostFacts(), new CriuClient().version(), treeRssBytes(live.rootPid)]);
  const ownPidNamespace = record.kind === 'process' ? record.ownPidNamespace === true : record.namespaces.includes('pid');
  const pids = [...treePids(live.rootPid)];
  const answer = await peer.preflight(id, {
    strategy: 'cold', criuVersion: version.text, host,
    target: {
      kind: record.kind, ownPidNamespace, pids: ownPidNamespace ? [] : pids,
      ...(workload?.name !== undefined ? { workload: workload.name } : {}),
      ...(record.kind === 'container' ? { container: { id: record.id, runtime: record.runtime, bundle: record.bundle } } : {}),
    },
    bytes, tier: req.tier ?? 'memory',
    ...(address ? { address } : {}),
  }, signal);
  // Prepared there: forget it at once (an abort that fails is ended by the destination's own idle timer).
  await peer.abort(id, 'a dry run: only the preflight was asked for').catch(() => undefined);
  return {
    ok: true, migration: id,
    target: { label: live.label, kind: record.kind, rootPid: live.rootPid, workload: workload?.name ?? null, pids: pids.length, ownPidNamespace },
    bytes, address: address ?? null,
    source: { host: host.hostname, criuVersion: version.text },
    destination: { ...answer, url: req.to.url },
    ms: Date.now() - t0,
  };
}
