import type { Socket } from 'node:net';
import type { Handoff } from '../../engine/checkpoint.js';
import { CriuClient } from '../../criu/client.js';
import { FerryError } from '../../util/errors.js';
import type { PostcopyProgress } from '../postcopy/handler.js';
import { freePort, PageRelay } from '../postcopy/relay.js';
import { openPageTunnel } from '../postcopy/tunnel.js';
import type { FinalDump, HandoffResult, MigrationStrategy, StrategyContext } from '../strategy.js';
import { interruptedError } from '../../engine/interrupt.js';
import type { ImageSendResult } from '../protocol.js';
import { safetyNet, type SafetyNet } from '../postcopy/safety-net.js';

/**
 * `postcopy`: freeze, dump everything but the anonymous memory (CRIU's lazy pages), send that
 * (small), restore it on the destination with userfaultfd — then commit: the copy there runs
 * at once while its memory follows, on demand where it faults and pushed in the background,
 * from the source's frozen tree (CRIU's page server) over an authenticated stream to ferry's
 * own page handler (native/uffd_handler.c). The downtime does not grow with the memory.
 *
 * The risk: until the last page has moved, the workload depends on the source. If the source's
 * CRIU, its agent or the link dies in that window, the destination's copy cannot go on (part of
 * its memory is gone): the destination stops it and the migration fails with
 * ERR_POSTCOPY_SOURCE_LOST, naming the pages still remote. `snapshotFirst` keeps a
 * leave-running snapshot of the source, taken just before the freeze, until the window closes,
 * and restores it on the source if the window fails (what changed after it is lost).
 */
export const postcopy: MigrationStrategy = {
  name: 'postcopy',

  async check(ctx) {
    if (ctx.pre.driver !== 'process') {
      throw new FerryError('ERR_MIGRATE_STRATEGY', `post-copy moves process trees (ferry run workloads, pids), not ${ctx.pre.driver} containers, in this build`, { hint: 'use --strategy cold (or auto); nothing was frozen' });
    }
    const f = await new CriuClient().features();
    if (!f.lazyPages) {
      throw new FerryError('ERR_MIGRATE_STRATEGY', 'post-copy needs userfaultfd with non-cooperative events (CRIU\'s lazy_pages feature), which this kernel lacks', { hint: 'use --strategy cold or incremental; nothing was frozen' });
    }
  },

  async prepare(ctx): Promise<FinalDump> {
    const net: SafetyNet | undefined = ctx.req.snapshotFirst ? await safetyNet(ctx) : undefined;
    const port = await freePort();
    let stream: Socket | undefined;
    let relay: PageRelay | undefined;
    let outcome: PostcopyProgress | undefined;
    let restoredOnSource: { snapshot: string; pid: number } | undefined;
    let sent: HandoffResult['sent'] | undefined;
    let restoring: Promise<unknown> | undefined;
    return {
      checkpoint: { lazyPages: { port } },
      commitAtHandoff: true,
      async handoff(h: Handoff): Promise<HandoffResult> {
        // The page stream first: the destination's handler takes it at its restore.
        ctx.setPhase('page-stream');
        stream = await openPageTunnel(ctx.req.to.url, ctx.req.to.token, ctx.id, ctx.interrupt);
        stream.pause();
        const r = await sendImages(ctx, h);
        const rl = new PageRelay(port, stream);
        relay = rl;
        // CRIU serves the memory once it has the post-dump answer, which goes out when this
        // returns; the tree stays frozen meanwhile. The restore there needs it served (CRIU's
        // restorer touches lazy memory: rseq), so it starts only then; the commit awaits it.
        restoring = (async () => {
          await new Promise((res) => setImmediate(res));
          await rl.start();
          ctx.setPhase('restore');
          return ctx.phases.run('restore', () => ctx.peer.restore(ctx.id, r.snapshot, ctx.interrupt));
        })();
        restoring.catch(() => undefined);
        // (The result's bytes: the images now, the pages added once they moved — see afterCommit.)
        sent = { bytes: r.bytes, wireBytes: r.wireBytes, snapshot: r.snapshot };
        return { sent, restoredPid: 0 };
      },
      async beforeCommit() {
        if (!restoring) throw new FerryError('ERR_INTERNAL', 'post-copy: the commit came before the handoff');
        await restoring;
        if (ctx.interrupt.aborted) throw interruptedError(ctx.interrupt, `${ctx.pre.live.label} was resumed on the source`);
      },
      onCommitted() {
        // From the answered commit on, the copy there is the workload: a clean end of the session lets CRIU end the tree here.
        relay?.arm();
      },
      abandon() {
        // A broken page session makes CRIU resume the frozen tree (a clean end would make it kill it).
        relay?.fail();
      },
      async afterCommit() {
        // The dump has ended here (CRIU served the last page, or failed): the destination knows how the window went.
        ctx.setPhase('post-copy');
        outcome = await windowOutcome(ctx);
        if (sent) { sent.bytes += outcome.bytes; sent.wireBytes += outcome.bytes; }
        if (outcome.state === 'done') {
          await net?.discard();
          return;
        }
        const lost = outcome.state === 'lost';
        let restored = '';
        if (net) {
          restoredOnSource = await net.restore();
          restored = `; the workload was restored on the source from snapshot ${restoredOnSource.snapshot} (pid ${restoredOnSource.pid}), taken just before the freeze`;
        }
        throw new FerryError(lost ? 'ERR_POSTCOPY_SOURCE_LOST' : 'ERR_POSTCOPY',
          `${lost ? 'the source was lost during the post-copy window' : 'the post-copy page handling failed'} (${outcome.reason ?? 'no reason given'}) with ${outcome.remainingPages} of ${outcome.totalPages} pages still on the source: the destination's copy was stopped${restored}`, {
            hint: net ? 'the restored copy runs on the source; migrate again when the destination and the link are sound' : 'post-copy depends on the source until the last page moved: use --snapshot-first to keep a snapshot to fall back on, or a strategy without that window (cold, stream)',
          });
      },
      async close() {
        relay?.close();
        stream?.destroy();
        await net?.discardIfUnused();
      },
      report() {
        return {
          postcopy: {
            ...(outcome ? { windowMs: outcome.windowMs, pages: outcome.totalPages, remainingPages: outcome.remainingPages, faults: outcome.faults, bytes: outcome.bytes, state: outcome.state } : {}),
            snapshotFirst: net !== undefined,
            ...(restoredOnSource ? { restoredOnSource } : {}),
          },
        };
      },
    };
  },
};

/** The destination's account of the window (it ended when the dump ended here); waits up to 10 s for it to settle. */
async function windowOutcome(ctx: StrategyContext): Promise<PostcopyProgress> {
  const deadline = Date.now() + 10_000;
  let last: PostcopyProgress | undefined;
  for (;;) {
    try {
      const v = await ctx.peer.status(ctx.id);
      last = v.postcopy;
      if (last && last.state !== 'moving' && last.state !== 'waiting') return last;
    } catch (e) {
      if (Date.now() > deadline) {
        return { state: 'lost', totalPages: last?.totalPages ?? 0, donePages: last?.donePages ?? 0, remainingPages: last?.remainingPages ?? 0, bytes: 0, faults: 0, ms: 0, reason: `the destination did not answer: ${e instanceof Error ? e.message : String(e)}` };
      }
    }
    if (Date.now() > deadline) {
      return { ...(last ?? { totalPages: 0, donePages: 0, remainingPages: 0, bytes: 0, faults: 0, ms: 0 }), state: 'failed', reason: 'the destination still reports the window open after the source\'s dump ended' };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The images (all but the lazy memory: small) to the destination, as cold sends them. */
async function sendImages(ctx: StrategyContext, h: Handoff): Promise<ImageSendResult> {
  const { req, pre } = ctx;
  ctx.setPhase('transfer');
  const r = await ctx.phases.run('transfer', () => ctx.send({
    dir: h.imagesDir, meta: { target: h.target, options: h.options, criuVersion: h.criuVersion, name: h.name, host: pre.host },
    url: req.to.url, token: req.to.token, migrationId: ctx.id, compress: req.compress === true, signal: ctx.interrupt,
    onProgress: ctx.progress(pre.bytes),
  }));
  if (ctx.interrupt.aborted) throw interruptedError(ctx.interrupt, `${pre.live.label} was resumed on the source`);
  return r;
}
