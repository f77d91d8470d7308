import { CriuClient } from '../../criu/client.js';
import { interruptedError } from '../../engine/interrupt.js';
import { FerryError } from '../../util/errors.js';
import type { StreamSendResult } from '../stream/send.js';
import { StreamSender } from '../stream/send.js';
import type { FinalDump, MigrationStrategy, StrategyContext } from '../strategy.js';

/**
 * `stream`: the images travel while CRIU writes them. The transfer starts on the images
 * directory before CRIU does (engine.checkpoint's onImagesDir); the pages go as CRIU appends
 * them, so by the time the dump is complete (post-dump, the tree frozen) most of them are on
 * the destination or on the wire; the handoff sends the rest (the pages' tails, the small
 * images, an index with every file's hash), and the destination seals and restores it, held.
 * Compression is measured (the data's ratio, the compressors' speed, the link) and used only
 * when it shortens the wire time; the result's `details.compression` says what and why.
 * The downtime is max(dump, wire) + the destination's restore (see README: where the rest is).
 */
export const stream: MigrationStrategy = {
  name: 'stream',
  async prepare(ctx: StrategyContext): Promise<FinalDump> {
    const { req, pre } = ctx;
    // The header's metadata (the index at the end carries the dump's own, which the destination seals with).
    const version = await new CriuClient().version();
    const sender = new StreamSender({
      url: req.to.url, token: req.to.token, migrationId: ctx.id,
      compress: req.compress === true ? 'forced' : 'auto',
      headerMeta: { target: pre.live.record, options: pre.options, criuVersion: version.text, host: pre.host },
      signal: ctx.interrupt,
      onProgress: ctx.progress(pre.bytes),
    });
    let result: StreamSendResult | undefined;
    let startError: Error | undefined;
    return {
      // (Called inside engine.checkpoint, which must not be thrown at: a failure to start is the handoff's.)
      checkpoint: {
        onImagesDir: (dir) => {
          try { sender.start(dir); } catch (e) { startError = e instanceof Error ? e : new FerryError('ERR_INTERNAL', 'the stream transfer could not start', { cause: e }); }
        },
      },
      async handoff(h) {
        ctx.setPhase('transfer');
        if (startError) throw startError;
        const r = await ctx.phases.run('transfer', () => sender.complete({ target: h.target, options: h.options, criuVersion: h.criuVersion, name: h.name, host: pre.host }));
        result = r;
        if (ctx.interrupt.aborted) throw interruptedError(ctx.interrupt, `${pre.live.label} was resumed on the source`);
        ctx.setPhase('restore');
        const held = await ctx.phases.run('restore', () => ctx.peer.restore(ctx.id, r.snapshot, ctx.interrupt));
        return { sent: { bytes: r.bytes, wireBytes: r.wireBytes, snapshot: r.snapshot }, restoredPid: held.pid };
      },
      close: () => sender.close(),
      report: () => ({
        compression: result?.compression ?? sender.compression(),
        ...(result ? { streamed: { bytesWhileDumping: result.bytesBeforeComplete, afterDumpMs: result.tailMs, segments: result.segments, files: result.files, transferMs: result.ms } } : {}),
      }),
    };
  },
};
