import { engineChannels, type CriticalEvent } from '../engine/channels.js';
import type { Output } from './command.js';
import { startProgress } from './progress.js';

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * Turns SIGINT, SIGTERM and SIGHUP into an abort of the operation's `interrupt` signal, for as
 * long as the operation runs. The engine decides what an interrupt means where it is (stop
 * cleanly, or finish a commit first); this says so to the person pressing Ctrl-C.
 */
export function interruptible(out: Output): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  let critical: CriticalEvent | undefined;
  let criticalSince = 0;
  const onCritical = (m: unknown) => {
    const e = m as CriticalEvent;
    critical = e.entered ? e : undefined;
    criticalSince = Date.now();
  };
  engineChannels.critical.subscribe(onCritical);
  let count = 0;
  const on = (sig: (typeof SIGNALS)[number]) => {
    count++;
    if (!controller.signal.aborted) controller.abort(sig);
    if (critical) {
      out.stderr(`\nferry: ${sig} received while committing: ${critical.what}. Stopping now would lose it, so ferry finishes first ` +
        `(${((Date.now() - criticalSince) / 1000).toFixed(1)} s so far; a commit takes about as long as checksumming the images).\n`);
    } else {
      out.stderr(count === 1
        ? `\nferry: ${sig} received: stopping cleanly (CRIU resumes the workload at its next step; the partial snapshot is removed)…\n`
        : `\nferry: still stopping cleanly; waiting for CRIU to hand the workload back…\n`);
    }
  };
  const handlers = SIGNALS.map((s) => [s, () => on(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  return {
    signal: controller.signal,
    dispose() {
      for (const [s, h] of handlers) process.off(s, h);
      engineChannels.critical.unsubscribe(onCritical);
    },
  };
}

/**
 * Runs a long local operation the way every command does: a progress line, and interrupts
 * turned into the operation's `interrupt` signal (returned too, to say whether one was deferred).
 */
export async function runInterruptible<T>(what: string, ctx: { json: boolean; out: Output }, op: (interrupt: AbortSignal) => Promise<T>): Promise<{ result: T; interrupt: AbortSignal }> {
  const stop = startProgress(what, ctx.json);
  const intr = interruptible(ctx.out);
  try {
    return { result: await op(intr.signal), interrupt: intr.signal };
  } finally {
    stop();
    intr.dispose();
  }
}
