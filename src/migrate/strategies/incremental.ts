import { join } from 'node:path';
import type { Handoff } from '../../engine/checkpoint.js';
import { interruptedError } from '../../engine/interrupt.js';
import { PagesClient } from '../pages-client.js';
import { buildDelta, type Delta } from '../pages-delta.js';
import type { HaveSet } from '../pages-have.js';
import { sendRound, type RoundFigures } from '../pages-round.js';
import { keyOfTarget, replicaHave } from '../replicate.js';
import type { FinalDump, HandoffResult, MigrationStrategy, StrategyContext } from '../strategy.js';
import { INCREMENTAL_LIMITS, incrementalNext, type IncrementalLimits } from './incremental-policy.js';

/**
 * `incremental`: pre-copy by content, no kernel dirty tracking needed. While the workload runs,
 * rounds of `--leave-running` dumps go to the destination, each holding only the pages whose
 * content the destination lacks (the first one: everything, or what the workload's replica there
 * lacks — `ferry replicate`); rounds repeat while they shrink enough to pay for themselves
 * (incremental-policy.ts). Then the freeze: the final dump is diffed against the last round and
 * only its changed pages travel, as a CRIU-native child of that round (PE_PARENT pages, a
 * `parent` link), which the destination restores directly through the chain.
 *
 * Every failure before the handoff leaves the source running (migrate.ts); the destination then
 * removes the rounds with the migration (migrate/replicas.ts), and keeps the replica.
 */
export function incrementalStrategy(limits: IncrementalLimits = INCREMENTAL_LIMITS): MigrationStrategy {
  return { name: 'incremental', prepare: (ctx) => prepare(ctx, limits) };
}

export const incremental: MigrationStrategy = incrementalStrategy();

interface FinalFigures { bytes: number; flatBytes: number; pages: number; inParent: number; deltaMs: number; sendMs: number; restoreMs: number }

async function prepare(ctx: StrategyContext, limits: IncrementalLimits): Promise<FinalDump> {
  const { req, pre, id, engine, phases, interrupt } = ctx;
  const client = new PagesClient(req.to.url, req.to.token);
  const key = keyOfTarget(pre.targetArg);
  ctx.setPhase('replica');
  let have: HaveSet | undefined = await phases.run('replica', () => replicaHave(client, key, interrupt));
  const replica = have?.base;
  const rounds: (RoundFigures & { snapshot: string; parent: string | undefined })[] = [];
  let because = '';
  ctx.setPhase('rounds');
  await phases.run('rounds', async () => {
    for (;;) {
      const next = incrementalNext(rounds, limits);
      because = next.because;
      if (!next.again) return;
      if (interrupt.aborted) throw interruptedError(interrupt, `nothing was frozen; ${pre.live.label} runs on`);
      const r = await sendRound(engine, {
        target: pre.targetArg, client, have, transfer: id, name: `${id}.source-round${rounds.length + 1}`,
        route: { kind: 'round', migration: id, replicaKey: rounds.length === 0 && have ? key : undefined },
        compress: req.compress === true, tcpEstablished: pre.options.tcpEstablished, interrupt,
        onProgress: ctx.progress(have ? Math.round(pre.bytes / 4) : pre.bytes),
      });
      rounds.push({ ...r.figures, snapshot: r.snapshot, parent: r.parent });
      have = r.have;
    }
  });
  let final: FinalFigures | undefined;
  return {
    // The final dump's pages are hashed as CRIU writes them: the diff then waits only for the rest.
    checkpoint: { followPages: true },
    async handoff(h: Handoff): Promise<HandoffResult> {
      ctx.setPhase('delta');
      const base = have;
      const delta: Delta = await phases.run('delta', () => buildDelta(h.imagesDir, join(h.imagesDir, '..', `.fold-${h.snapshotId}-delta`), base, h.prehashed));
      try {
        ctx.setPhase('transfer');
        const t0 = Date.now();
        const r = await phases.run('transfer', () => client.send(delta, { kind: 'final', migration: id }, {
          transfer: id, meta: { target: h.target, options: h.options, criuVersion: h.criuVersion, name: h.name, host: pre.host },
          compress: req.compress === true, signal: interrupt, onProgress: ctx.progress(delta.bytes),
        }));
        const sendMs = Date.now() - t0;
        if (interrupt.aborted) throw interruptedError(interrupt, `${pre.live.label} was resumed on the source`);
        ctx.setPhase('restore');
        const t1 = Date.now();
        const held = await phases.run('restore', () => ctx.peer.restore(id, r.snapshot, interrupt));
        final = { bytes: r.bytes, flatBytes: delta.flatBytes, pages: delta.pages, inParent: delta.inParent, deltaMs: delta.ms, sendMs, restoreMs: Date.now() - t1 };
        // What moved in all: the rounds and the frozen part (the report splits them).
        const roundBytes = rounds.reduce((a, x) => a + x.bytes, 0), roundWire = rounds.reduce((a, x) => a + x.wireBytes, 0);
        return { sent: { bytes: r.bytes + roundBytes, wireBytes: r.wireBytes + roundWire, snapshot: r.snapshot }, restoredPid: held.pid };
      } finally {
        await delta.dispose().catch(() => undefined);
      }
    },
    report: () => ({
      startedFrom: replica !== undefined ? { replica: key, snapshot: replica } : undefined,
      rounds: rounds.map((r) => ({ snapshot: r.snapshot, parent: r.parent, bytes: r.bytes, wireBytes: r.wireBytes, flatBytes: r.flatBytes, pages: r.pages, pagesHeld: r.inParent, frozenMs: r.frozenMs, dumpMs: r.dumpMs, deltaMs: r.deltaMs, sendMs: r.sendMs, ms: r.ms })),
      roundsBytes: rounds.reduce((a, r) => a + r.bytes, 0),
      stoppedBecause: because,
      final,
    }),
  };
}
