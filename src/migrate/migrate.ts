import { randomBytes } from 'node:crypto';
import type { Engine } from '../engine/engine.js';
import type { Handoff } from '../engine/checkpoint.js';
import { interruptedError } from '../engine/interrupt.js';
import { driverPaths } from '../engine/paths.js';
import { Phases } from '../engine/phases.js';
import { engineChannels, type TransferEvent } from '../engine/channels.js';
import { OperationRecorder } from '../telemetry/operation.js';
import { treePids } from '../telemetry/proc.js';
import { CriuClient } from '../criu/client.js';
import { dropCriuLocks, listCriuLocks } from '../net/criu-locks.js';
import { parseTargetRef, resolveLive } from '../targets/drivers.js';
import { hostFacts, type HostFacts } from '../targets/host.js';
import type { ProcessFacts } from '../targets/process-driver.js';
import { liveStartTime, treeRssBytes } from '../targets/process.js';
import { runRuntime } from '../targets/container.js';
import { recordOptions } from '../targets/recorded-options.js';
import { errorJson, FerryError, isFerryError, type ErrorCode } from '../util/errors.js';
import { MigrationError, type WorkloadWhere } from './errors.js';
import { PeerClient } from './peer.js';
import type { CommitAnswer, ImageSender, ImageSendResult, ServiceAddress } from './protocol.js';
import type { MigrateRequest, MigrateResult } from './migrate-types.js';
import type { FinalDump, HandoffResult, MigrationStrategy, Preflight, StrategyContext, StrategyName } from './strategy.js';
import { chooseStrategy } from './strategies/auto.js';
import { sampleMemory } from './memory-sample.js';
import { availableStrategies, strategyFor } from './strategies/index.js';

/**
 * A migration from this host (the source) to another agent (the destination), the cold
 * strategy behind a commit point:
 *
 *   preflight → freeze → dump → [handoff: transfer → restore on destination, held] →
 *   source ends → commit (destination's copy runs, takes the address) → source snapshot removed
 *
 * Until the destination answers that its copy is restored and held, CRIU's post-dump
 * notification on the source is not answered: any failure (or ferry's death) makes CRIU resume
 * the source tree, and the destination is told to abort (or aborts on its own when its hold
 * runs out). After the source copy ended, a failed commit is resolved by asking the
 * destination: committed → done; aborted → the source's snapshot is restored here; no answer →
 * ERR_MIGRATE_UNCERTAIN, the snapshot kept.
 */

export type { ImageMeta, ImageSendArgs, ImageSendResult, ImageSender } from './protocol.js';
export type { MigrateRequest, MigrateResult } from './migrate-types.js';
export type { StrategyName, ConcreteStrategy } from './strategy.js';

/** The wire transfer (send-images.ts), loaded when a migration first needs it. */
async function defaultSender(): Promise<ImageSender> {
  return (await import('./send-images.js')).imageSender;
}

export async function migrate(engine: Engine, req: MigrateRequest): Promise<MigrateResult> {
  return OperationRecorder.run('migrate', (rec) => migrateRecorded(engine, req, new Phases('migrate', rec)));
}

async function migrateRecorded(engine: Engine, req: MigrateRequest, phases: Phases): Promise<MigrateResult> {
  const t0 = Date.now();
  const id = `m-${randomBytes(8).toString('hex')}`;
  const peer = new PeerClient(req.to.url, req.to.token);
  const interrupt = req.interrupt ?? new AbortController().signal;
  const send: ImageSender = req.send ?? await defaultSender();
  let phase = 'preflight';
  let where: WorkloadWhere = 'running on source';
  const fail = (err: unknown): never => {
    if (err instanceof MigrationError) throw err;
    const e = errorJson(err) as { code: ErrorCode; message: string; hint?: string };
    const code: ErrorCode = isFerryError(err) ? err.code : 'ERR_INTERNAL';
    throw new MigrationError(code, `migration ${id} failed in ${phase}: ${e.message}`, { phase, workload: where, cause: err, ...(e.hint ? { hint: e.hint } : {}) });
  };

  // Preflight: the target, the strategy, what will travel, and the destination's yes — nothing frozen yet.
  const options = recordOptions({ tcpEstablished: req.tcpEstablished === true });
  const ref = parseTargetRef(req.target);
  const targetArg: string | number = ref.kind === 'process' ? ref.pid : ref.kind === 'workload' ? ref.name : `container:${ref.id}`;
  let strategy: MigrationStrategy | undefined;
  let chosen: MigrateResult['chosen'] | undefined;
  const pre: Preflight = await phases.run('preflight', async () => {
    const { driver, live } = await resolveLive(ref, driverPaths(engine.store), options);
    const record = live.record;
    const workload = record.kind === 'process' ? (live.private as ProcessFacts).workload : undefined;
    const up = workload?.address && !workload.address.removedAt ? workload.address : undefined;
    const address: ServiceAddress | undefined = up ? { address: up.address, prefix: up.prefix, dev: up.dev } : undefined;
    const [host, version, bytes] = await Promise.all([hostFacts(), new CriuClient().version(), treeRssBytes(live.rootPid)]);
    chosen = await pickStrategy(req.strategy ?? 'auto', { bytes, driver: driver.name, rootPid: live.rootPid });
    strategy = strategyFor(chosen.strategy);
    // A container has its own pid namespace whenever its spec says so; CRIU restores it anew.
    const ownPidNamespace = record.kind === 'process' ? record.ownPidNamespace === true : record.namespaces.includes('pid');
    const answer = await peer.preflight(id, {
      strategy: chosen.strategy, criuVersion: version.text, host,
      target: {
        kind: record.kind, ownPidNamespace, pids: ownPidNamespace ? [] : [...treePids(live.rootPid)],
        ...(workload?.name !== undefined ? { workload: workload.name } : {}),
        ...(record.kind === 'container' ? { container: { id: record.id, runtime: record.runtime, bundle: record.bundle } } : {}),
      },
      bytes, tier: req.tier ?? 'memory',
      ...(address ? { address } : {}),
      ...(req.holdMs !== undefined ? { holdMs: req.holdMs } : {}),
    }, interrupt);
    return { live, targetArg, options, driver: driver.name, address, host, bytes, destHost: answer.host, startTime: await liveStartTime(live.rootPid) };
  }).catch(fail);
  if (!strategy || !chosen) return fail(new FerryError('ERR_INTERNAL', 'no strategy after the preflight'));
  const ctx: StrategyContext = {
    id, engine, req, peer, phases, interrupt, send, pre,
    setPhase: (p) => { phase = p; },
    progress: (total) => transferProgress(phases, total),
  };
  const abortPeer = (why: string): Promise<void> => peer.abort(id, why).then(() => undefined, () => undefined);
  if (strategy.check) await strategy.check(ctx).catch(async (err: unknown) => { await abortPeer(`the ${chosen!.strategy} strategy refused`); fail(err); });
  if (interrupt.aborted) { await abortPeer('interrupted before the freeze'); fail(interruptedError(interrupt, `nothing was frozen; ${pre.live.label} runs on`)); }
  if (pre.live.record.kind === 'container' && pre.driver === 'runc') {
    // runc runs CRIU itself: no post-dump to hold. The commit point is the container's freezer.
    return byPause(engine, req, { id, chosen, t0, peer, phases, interrupt, send, host: pre.host, destHost: pre.destHost, record: pre.live.record, rootPid: pre.live.rootPid, targetArg: String(targetArg) },
      (p) => { phase = p; }, (w) => { where = w; }).catch(fail);
  }

  // While the workload still runs: what the strategy sends ahead (rounds, a replica).
  phase = 'prepare';
  const plan: FinalDump = await strategy.prepare(ctx).catch(async (err: unknown) => { await abortPeer(`the source failed in ${phase}`); return fail(err); });
  try {
    return await frozenPart(ctx, plan, chosen, t0, (p) => { phase = p; }, () => phase, (w) => { where = w; }, fail);
  } finally {
    await plan.close?.().catch(() => undefined);
  }
}

/** Freeze, dump, the handoff inside CRIU's post-dump hold, the commit, and what flows after it. */
async function frozenPart(
  ctx: StrategyContext, plan: FinalDump, chosen: MigrateResult['chosen'], t0: number,
  setPhase: (p: string) => void, getPhase: () => string, setWhere: (w: WorkloadWhere) => void, fail: (err: unknown) => never,
): Promise<MigrateResult> {
  const { engine, req, peer, id, pre, phases, interrupt } = ctx;
  // CRIU's lock rules for established connections that exist already (another workload's) stay.
  const locksBefore = pre.options.tcpEstablished ? new Set(await listCriuLocks()) : undefined;
  let frozenAt: number | undefined;
  let sent: HandoffResult['sent'] | undefined;
  let restoredPid: number | undefined;
  let handedOff = false;
  let commit: Promise<CommitAnswer> | undefined;
  let committedAt: number | undefined;
  const handoff = async (h: Handoff): Promise<void> => {
    const r = await plan.handoff(h);
    sent = r.sent;
    restoredPid = r.restoredPid;
    if (interrupt.aborted) throw interruptedError(interrupt, `${pre.live.label} was resumed on the source`);
    // Answering now lets CRIU end the source copy: past this line the destination's copy is the one.
    setPhase('handoff');
    // (Post-copy: CRIU keeps the tree frozen, and resumes it if the page stream fails, until the
    // last page moved — the destination's copy is the one only once the commit is answered.)
    if (!plan.commitAtHandoff) handedOff = true;
  };
  let commitError: unknown;
  let addressReleased = false;
  const startCommit = (): void => {
    if (commit) return;
    setWhere('ended on source; held on destination');
    setPhase('commit');
    commit = (async () => {
      try {
        await plan.beforeCommit?.();
      } catch (e) {
        // The destination's copy is not held: the source must go on (the strategy makes CRIU resume it).
        commitError = e;
        plan.abandon?.();
        throw e;
      }
      if (pre.address && req.releaseAddress) {
        await req.releaseAddress(pre.address).catch(() => undefined);
        addressReleased = true;
      }
      let a: CommitAnswer;
      try {
        a = await phases.run('commit', () => peer.commit(id));
      } catch (e) {
        // Post-copy: the source tree is still frozen and CRIU still serves it; a commit without an
        // answer is settled by breaking the page stream — CRIU resumes the tree here, and a copy
        // there (which cannot run on without its memory) is stopped by its handler.
        if (plan.commitAtHandoff) { commitError = e; plan.abandon?.(); }
        throw e;
      }
      committedAt = Date.now();
      handedOff = true;
      plan.onCommitted?.();
      return a;
    })();
    commit.catch(() => undefined);
  };
  let cp: Awaited<ReturnType<Engine['checkpoint']>> | undefined;
  try {
    setPhase('dump');
    cp = await engine.checkpoint({
      tier: 'memory', tcpEstablished: pre.options.tcpEstablished, dedup: false, name: `migrated-${id}`,
      memoryBudget: { spillToDisk: true },
      ...plan.checkpoint,
      target: pre.targetArg,
      interrupt,
      beforeFreeze: () => { frozenAt = Date.now(); return Promise.resolve(); },
      handoff,
      onDumped: startCommit,
      ...(plan.commitAtHandoff ? { onHandedOff: startCommit } : {}),
    });
  } catch (err) {
    if (!handedOff) {
      // CRIU resumed the source tree (or never froze it): the destination removes what it got.
      setWhere('running on source');
      if (addressReleased && pre.address && req.reclaimAddress) await req.reclaimAddress(pre.address).catch(() => undefined);
      await peer.abort(id, `the source failed in ${getPhase()}: ${err instanceof Error ? err.message : String(err)}`).catch(() => undefined);
      fail(commitError ?? err);
    }
    // Past the commit point, something failed here (CRIU stopped, the seal): the destination's
    // held copy is the workload now. The source's copy must not run on — CRIU may have been
    // stopped before it ended it — then the commit goes on; the source's images wait for recovery.
    await endTree(pre.live.rootPid, pre.startTime).catch(() => undefined);
    startCommit();
  }
  let answer: CommitAnswer;
  try {
    answer = await commit!;
  } catch (err) {
    answer = await afterFailedCommit(engine, peer, id, cp?.snapshot, pre.address, req, err, setWhere).catch(fail);
  }
  // (A post-copy commit was answered long before the dump ended: the copy ran from then on.)
  const resumedAt = plan.commitAtHandoff ? committedAt ?? Date.now() : Date.now();
  setWhere('running on destination');
  // The connections live on the destination now: the source's locks on them are stale.
  if (locksBefore) await dropCriuLocks((await listCriuLocks()).filter((r) => !locksBefore.has(r))).catch(() => 0);
  if (plan.afterCommit) {
    setPhase('after-commit');
    await phases.run('after-commit', () => plan.afterCommit!()).catch(fail);
  }
  return migrated(engine, req, {
    id, chosen, t0, frozenAt: frozenAt ?? t0, resumedAt, sent, phases, sourceHost: pre.host.hostname, sourcePid: pre.live.rootPid,
    sourceSnapshot: cp?.snapshot, destHost: pre.destHost, answer, restoredPid, details: plan.report?.(),
  });
}

/** The strategy asked for, or the one `auto` picks from what is known before the freeze (also the dashboard's dry run, dry-run.ts). */
export async function pickStrategy(asked: StrategyName, t: { bytes: number; driver: string; rootPid: number }): Promise<MigrateResult['chosen']> {
  if (asked !== 'auto') {
    if (t.driver === 'runc' && asked !== 'cold') {
      throw new FerryError('ERR_MIGRATE_STRATEGY', `a runc container migrates only with the cold strategy, not ${asked}: runc runs CRIU itself, so ferry cannot drive its dump`, {
        hint: 'use --strategy cold (or auto); nothing was frozen',
      });
    }
    return { strategy: asked, because: 'asked for' };
  }
  const [features, sample] = await Promise.all([
    new CriuClient().features().catch(() => ({ memTrack: false, lazyPages: false })),
    t.driver === 'runc' ? undefined : sampleMemory(t.rootPid, t.bytes),
  ]);
  const facts = {
    bytes: t.bytes, driver: t.driver, linkBytesPerSec: ASSUMED_LINK_BYTES_PER_SEC, linkMeasured: false,
    dirtyBytesPerSec: sample?.dirtyBytesPerSec, compressRatio: sample?.compressRatio,
    lazyPages: features.lazyPages, memTrack: features.memTrack, available: availableStrategies(),
  };
  const { available: _, ...shown } = facts;
  return { ...chooseStrategy(facts), facts: shown };
}

/** A 1 Gbit/s link, until the link is measured. */
const ASSUMED_LINK_BYTES_PER_SEC = 125e6;

/** A committed migration: the source's snapshot goes (unless kept), and the result says how it went. */
async function migrated(engine: Engine, req: MigrateRequest, m: {
  id: string; chosen: MigrateResult['chosen']; t0: number; frozenAt: number; resumedAt: number; sent: { bytes: number; wireBytes: number } | undefined;
  phases: Phases; sourceHost: string; sourcePid: number; sourceSnapshot: string | undefined; destHost: string; answer: CommitAnswer; restoredPid: number | undefined;
  details?: Record<string, unknown> | undefined;
}): Promise<MigrateResult> {
  let sourceSnapshot = m.sourceSnapshot;
  if (sourceSnapshot !== undefined && !req.keepSnapshot) {
    const [out] = await engine.remove([sourceSnapshot]);
    if (out?.ok) sourceSnapshot = undefined;
  }
  return {
    ok: true, strategy: m.chosen.strategy, chosen: m.chosen, migration: m.id,
    downtimeMs: m.resumedAt - m.frozenAt, totalMs: Date.now() - m.t0,
    bytesMoved: m.sent?.bytes ?? 0, wireBytes: m.sent?.wireBytes ?? 0, phases: { ...m.phases.rec.phasesSoFar() },
    source: { host: m.sourceHost, pid: m.sourcePid, snapshot: sourceSnapshot },
    destination: { host: m.destHost, url: req.to.url, pid: m.answer.pid || m.restoredPid || 0, name: m.answer.name, snapshot: m.answer.snapshotKept ? m.answer.snapshot : undefined },
    ...(m.details ? { details: m.details } : {}),
  };
}

/** Ends the source tree (SIGKILL to every process of it) if it still runs as that process; waits, up to 10 s. */
async function endTree(rootPid: number, startTime: number | undefined): Promise<void> {
  if (startTime === undefined || await liveStartTime(rootPid) !== startTime) return;
  for (const p of [...treePids(rootPid)].reverse()) {
    try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
  }
  const deadline = Date.now() + 10_000;
  while (await liveStartTime(rootPid) === startTime && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

/** Publishes the transfer's bytes (at most ten times a second) for progress lines and job events. */
function transferProgress(phases: Phases, totalBytes: number): (bytes: number) => void {
  let last = 0;
  return (bytes) => {
    const now = Date.now();
    if (now - last < 100 || !engineChannels.transfer.hasSubscribers) return;
    last = now;
    engineChannels.transfer.publish({ id: phases.rec.id, operation: 'migrate', bytes, totalBytes } satisfies TransferEvent);
  };
}

interface PauseContext {
  id: string; chosen: MigrateResult['chosen']; t0: number; peer: PeerClient; phases: Phases; interrupt: AbortSignal; send: ImageSender;
  host: HostFacts; destHost: string; record: Extract<Handoff['target'], { kind: 'container' }>; rootPid: number; targetArg: string;
}

/**
 * A runc container's migration. runc runs CRIU itself, so ferry cannot hold its post-dump; the
 * container's freezer holds it instead: pause → checkpoint (leave running: it stays paused) →
 * transfer → restore on the destination (running there, in its own cgroup) → delete the paused
 * source copy → commit. Any failure before the delete resumes the source copy and makes the
 * destination delete its copy and everything it received. (The destination's copy runs before
 * the commit — it is the only one running: the source's is frozen.)
 */
async function byPause(engine: Engine, req: MigrateRequest, c: PauseContext, setPhase: (p: string) => void, setWhere: (w: WorkloadWhere) => void): Promise<MigrateResult> {
  const runc = async (args: string[]): Promise<void> => {
    const r = await runRuntime('runc', c.record.runtimeRoot, args);
    if (r.code !== 0) throw new FerryError('ERR_RUNTIME', `runc ${args[0] ?? ''} ${c.record.id} failed: ${r.stderr.trim().split('\n').at(-1) ?? `status ${r.code}`}`, { hint: `\`runc --root ${c.record.runtimeRoot} state ${c.record.id}\` shows the container` });
  };
  setPhase('freeze');
  const frozenAt = Date.now();
  await c.phases.run('freeze', () => runc(['pause', c.record.id]));
  let handedOff = false;
  let snapshot: string | undefined;
  let sent: ImageSendResult | undefined;
  try {
    setPhase('dump');
    const cp = await engine.checkpoint({ target: c.targetArg, leaveRunning: true, tier: 'memory', dedup: false, name: `migrated-${c.id}`, interrupt: c.interrupt });
    snapshot = cp.snapshot;
    setPhase('transfer');
    const r: ImageSendResult = await c.phases.run('transfer', () => c.send({
      dir: cp.dir, meta: { target: cp.manifest.target, options: cp.manifest.options, criuVersion: cp.manifest.criu.version, name: undefined, host: c.host },
      url: req.to.url, token: req.to.token, migrationId: c.id, compress: req.compress === true, signal: c.interrupt,
      onProgress: transferProgress(c.phases, Object.values(cp.manifest.files).reduce((a, f) => a + f.size, 0)),
    }));
    sent = r;
    if (c.interrupt.aborted) throw interruptedError(c.interrupt, `container ${c.record.id} was resumed on the source`);
    setPhase('restore');
    await c.phases.run('restore', () => c.peer.restore(c.id, r.snapshot, c.interrupt));
    if (c.interrupt.aborted) throw interruptedError(c.interrupt, `container ${c.record.id} was resumed on the source`);
    // The handoff: the paused source copy goes; from here the destination's copy is the one.
    setPhase('handoff');
    await c.phases.run('handoff', () => runc(['delete', '--force', c.record.id]));
    handedOff = true;
  } catch (err) {
    if (!handedOff) {
      await runc(['resume', c.record.id]).catch(() => undefined);
      await c.peer.abort(c.id, `the source failed: ${err instanceof Error ? err.message : String(err)}`).catch(() => undefined);
      if (snapshot !== undefined) await engine.remove([snapshot]).catch(() => undefined);
    }
    throw err;
  }
  setWhere('running on destination (uncommitted)');
  setPhase('commit');
  let answer: CommitAnswer;
  try {
    answer = await c.phases.run('commit', () => c.peer.commit(c.id));
  } catch (err) {
    answer = await afterFailedCommit(engine, c.peer, c.id, snapshot, undefined, req, err, setWhere);
  }
  const resumedAt = Date.now();
  setWhere('running on destination');
  return migrated(engine, req, {
    id: c.id, chosen: c.chosen, t0: c.t0, frozenAt, resumedAt, sent, phases: c.phases, sourceHost: c.host.hostname, sourcePid: c.rootPid,
    sourceSnapshot: snapshot, destHost: c.destHost, answer, restoredPid: undefined,
  });
}

/**
 * The source copy has ended and the commit failed: ask the destination what became of its copy
 * (for as long as it may hold it). Committed → the migration succeeded. Aborted or unknown → the
 * copy is gone there: restore the source's snapshot here. No answer → uncertain: keep the snapshot.
 */
async function afterFailedCommit(
  engine: Engine, peer: PeerClient, id: string, snapshot: string | undefined, address: ServiceAddress | undefined,
  req: MigrateRequest, err: unknown, setWhere: (w: WorkloadWhere) => void,
): Promise<CommitAnswer> {
  const deadline = Date.now() + (req.holdMs ?? 30_000) + 5_000;
  for (;;) {
    const view = await peer.status(id).catch((e: unknown) => (isFerryError(e, 'ERR_NO_MIGRATION') ? 'unknown' as const : undefined));
    if (view !== undefined && view !== 'unknown' && view.state === 'committed') {
      return { migration: id, pid: view.pid ?? 0, name: view.name, snapshot: view.snapshot ?? '', restoreMs: 0, ms: 0, snapshotKept: false };
    }
    if (view === 'unknown' || (view !== undefined && view.state === 'aborted')) break;
    if (Date.now() > deadline) {
      setWhere(snapshot !== undefined ? `restorable from snapshot ${snapshot} on source (it may run on the destination)` : 'unknown: see the source store\'s interrupted checkpoints');
      throw new MigrationError('ERR_MIGRATE_UNCERTAIN', `the commit of migration ${id} failed (${err instanceof Error ? err.message : String(err)}) and the destination stopped answering: the workload may run there`, {
        phase: 'commit', workload: snapshot !== undefined ? `restorable from snapshot ${snapshot} on source` : 'unknown',
        hint: `check the destination (\`ferry ps\` there); if it does not run there, restore it here: \`ferry restore ${snapshot ?? '<snapshot>'}\``, cause: err,
      });
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  // The destination's copy is gone: the source's snapshot comes back here.
  if (snapshot === undefined) {
    setWhere('unknown: see the source store\'s interrupted checkpoints');
    throw new MigrationError('ERR_MIGRATE_PEER', `the commit of migration ${id} failed and the source snapshot was not sealed`, { phase: 'commit', workload: 'restorable after the source store\'s recovery (`ferry snapshots ls`)', cause: err });
  }
  if (address && req.reclaimAddress) await req.reclaimAddress(address).catch(() => undefined);
  const r = await engine.restore({ snapshot });
  setWhere('running on source');
  throw new MigrationError('ERR_MIGRATE_PEER', `the destination aborted migration ${id} at its commit (${err instanceof Error ? err.message : String(err)}); the workload was restored on the source (pid ${r.pid})`, {
    phase: 'commit', workload: 'running on source', hint: 'see the destination agent\'s log; the source snapshot is kept', cause: err,
  });
}
