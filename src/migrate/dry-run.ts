import { randomBytes } from 'node:crypto';
import type { Engine } from '../engine/engine.js';
import type { Phases } from '../engine/phases.js';
import { driverPaths } from '../engine/paths.js';
import type { Tier } from '../store/manifest.js';
import { treePids } from '../telemetry/proc.js';
import { CriuClient } from '../criu/client.js';
import { parseTargetRef, resolveLive } from '../targets/drivers.js';
import { hostFacts } from '../targets/host.js';
import type { ProcessFacts } from '../targets/process-driver.js';
import { liveStartTime, treeRssBytes } from '../targets/process.js';
import { recordOptions } from '../targets/recorded-options.js';
import { FerryError } from '../util/errors.js';
import { pickStrategy } from './migrate.js';
import type { MigrateResult } from './migrate-types.js';
import { PeerClient } from './peer.js';
import type { PreflightAnswer, ServiceAddress } from './protocol.js';
import type { StrategyContext, StrategyName } from './strategy.js';
import { strategyFor } from './strategies/index.js';

/**
 * A migration's preflight alone (the dashboard's "dry run", `POST /v1/migrations/preflight`):
 * what `migrate` does before anything is frozen — resolve the target here, gather what will
 * travel, pick the strategy (`auto`'s choice and why), ask the destination whether it can take it,
 * and the strategy's own check — then tell the destination to forget it. Nothing is frozen,
 * dumped or sent. A refusal comes back as its error: the destination's (ERR_MIGRATE_REFUSED with
 * its reason and hint), the strategy's, or the target's. The same steps as migrate.ts's preflight
 * phase, kept beside it (pickStrategy is shared).
 */
export interface DryRunRequest {
  target: string | number;
  to: { url: string; token?: string | undefined };
  strategy?: StrategyName;
  tcpEstablished?: boolean;
  tier?: Tier;
}

export interface DryRunResult {
  ok: true;
  /** The id the destination prepared and then aborted. */
  migration: string;
  target: { label: string; kind: 'process' | 'container'; rootPid: number; workload: string | null; pids: number; ownPidNamespace: boolean };
  /** The strategy the migration would use, and why (`auto`'s reasons, or "asked for"). */
  strategy: MigrateResult['chosen'];
  /** About how many bytes would travel (the tree's RSS now). */
  bytes: number;
  address: ServiceAddress | null;
  source: { host: string; criuVersion: string };
  destination: PreflightAnswer & { url: string };
  ms: number;
}

/** A strategy's check must not move anything: a dry run gives it no phases and no sender. */
const refuse = (what: string) => () => Promise.reject(new FerryError('ERR_INTERNAL', `a migration strategy's check ${what} during a dry run`));

export async function migrationDryRun(engine: Engine, req: DryRunRequest, signal?: AbortSignal): Promise<DryRunResult> {
  const t0 = Date.now();
  const id = `m-${randomBytes(8).toString('hex')}`;
  const peer = new PeerClient(req.to.url, req.to.token);
  const options = recordOptions({ tcpEstablished: req.tcpEstablished === true });
  const ref = parseTargetRef(req.target);
  const targetArg: string | number = ref.kind === 'process' ? ref.pid : ref.kind === 'workload' ? ref.name : `container:${ref.id}`;
  const { driver, live } = await resolveLive(ref, driverPaths(engine.store), options);
  const record = live.record;
  const workload = record.kind === 'process' ? (live.private as ProcessFacts).workload : undefined;
  const up = workload?.address && !workload.address.removedAt ? workload.address : undefined;
  const address: ServiceAddress | undefined = up ? { address: up.address, prefix: up.prefix, dev: up.dev } : undefined;
  const [host, version, bytes] = await Promise.all([hostFacts(), new CriuClient().version(), treeRssBytes(live.rootPid)]);
  const chosen = await pickStrategy(req.strategy ?? 'auto', { bytes, driver: driver.name, rootPid: live.rootPid });
  const strategy = strategyFor(chosen.strategy);
  const ownPidNamespace = record.kind === 'process' ? record.ownPidNamespace === true : record.namespaces.includes('pid');
  const pids = [...treePids(live.rootPid)];
  const answer = await peer.preflight(id, {
    strategy: chosen.strategy, criuVersion: version.text, host,
    target: {
      kind: record.kind, ownPidNamespace, pids: ownPidNamespace ? [] : pids,
      ...(workload?.name !== undefined ? { workload: workload.name } : {}),
      ...(record.kind === 'container' ? { container: { id: record.id, runtime: record.runtime, bundle: record.bundle } } : {}),
    },
    bytes, tier: req.tier ?? 'memory',
    ...(address ? { address } : {}),
  }, signal);
  try {
    if (strategy.check) {
      const ctx: StrategyContext = {
        id, engine, peer, interrupt: signal ?? new AbortController().signal,
        req: { target: req.target, to: req.to, strategy: chosen.strategy, ...(req.tcpEstablished !== undefined ? { tcpEstablished: req.tcpEstablished } : {}), ...(req.tier !== undefined ? { tier: req.tier } : {}) },
        phases: { run: refuse('ran a phase'), mark: () => undefined, critical: () => undefined } as unknown as Phases,
        send: refuse('sent images'),
        pre: { live, targetArg, options, driver: driver.name, address, host, bytes, destHost: answer.host, startTime: await liveStartTime(live.rootPid) },
        setPhase: () => undefined,
        progress: () => () => undefined,
      };
      await strategy.check(ctx);
    }
  } finally {
    // Prepared there: forget it at once (an abort that fails is ended by the destination's own idle timer).
    await peer.abort(id, 'a dry run: only the preflight was asked for').catch(() => undefined);
  }
  return {
    ok: true, migration: id,
    target: { label: live.label, kind: record.kind, rootPid: live.rootPid, workload: workload?.name ?? null, pids: pids.length, ownPidNamespace },
    strategy: chosen, bytes, address: address ?? null,
    source: { host: host.hostname, criuVersion: version.text },
    destination: { ...answer, url: req.to.url },
    ms: Date.now() - t0,
  };
}
