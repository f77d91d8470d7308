import type { StrategyContext } from '../strategy.js';

/**
 * `--snapshot-first`: a leave-running snapshot of the source, taken just before the post-copy
 * freeze and kept (memory tier) until the window closes. If the window fails, the workload is
 * restored from it on the source — what it did after the snapshot is lost, but it runs.
 */
export interface SafetyNet {
  snapshot: string;
  /** Restores the workload from the snapshot here (the source copy must be gone); keeps the snapshot. */
  restore(): Promise<{ snapshot: string; pid: number }>;
  /** The window closed well: the snapshot goes. */
  discard(): Promise<void>;
  /** At the end: removes the snapshot unless it was restored from. */
  discardIfUnused(): Promise<void>;
}

export async function safetyNet(ctx: StrategyContext): Promise<SafetyNet> {
  ctx.setPhase('snapshot-first');
  const cp = await ctx.phases.run('snapshot-first', () => ctx.engine.checkpoint({
    target: ctx.pre.targetArg, leaveRunning: true, tier: 'memory', tcpEstablished: ctx.pre.options.tcpEstablished,
    dedup: false, name: `postcopy-net-${ctx.id}`, memoryBudget: { spillToDisk: true }, interrupt: ctx.interrupt,
  }));
  let used = false;
  let gone = false;
  const remove = async (): Promise<void> => {
    if (gone) return;
    gone = true;
    await ctx.engine.remove([cp.snapshot]).catch(() => undefined);
  };
  return {
    snapshot: cp.snapshot,
    async restore() {
      used = true;
      const r = await ctx.engine.restore({ snapshot: cp.snapshot });
      return { snapshot: cp.snapshot, pid: r.pid };
    },
    discard: remove,
    async discardIfUnused() { if (!used) await remove(); },
  };
}
