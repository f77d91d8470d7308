import type { Handoff } from '../../engine/checkpoint.js';
import { interruptedError } from '../../engine/interrupt.js';
import type { ImageSendResult } from '../protocol.js';
import type { HandoffResult, MigrationStrategy, StrategyContext } from '../strategy.js';

/**
 * `cold`: freeze, dump everything, send the images, restore on the destination. The downtime is
 * the sum of the three; nothing runs before the freeze and nothing flows after the commit.
 */
export const cold: MigrationStrategy = {
  name: 'cold',
  prepare: (ctx) => Promise.resolve({ handoff: (h) => sendAndRestore(ctx, h) }),
};

/** The handoff of a strategy whose images are complete in `h.imagesDir`: send them, restore them held. */
export async function sendAndRestore(ctx: StrategyContext, h: Handoff): Promise<HandoffResult> {
  const { req, pre } = ctx;
  ctx.setPhase('transfer');
  const r: ImageSendResult = await ctx.phases.run('transfer', () => ctx.send({
    dir: h.imagesDir, meta: { target: h.target, options: h.options, criuVersion: h.criuVersion, name: h.name, host: pre.host },
    url: req.to.url, token: req.to.token, migrationId: ctx.id, compress: req.compress === true, signal: ctx.interrupt,
    onProgress: ctx.progress(pre.bytes),
  }));
  if (ctx.interrupt.aborted) throw interruptedError(ctx.interrupt, `${pre.live.label} was resumed on the source`);
  ctx.setPhase('restore');
  const held = await ctx.phases.run('restore', () => ctx.peer.restore(ctx.id, r.snapshot, ctx.interrupt));
  return { sent: { bytes: r.bytes, wireBytes: r.wireBytes, snapshot: r.snapshot }, restoredPid: held.pid };
}
