import { InterruptedError } from '../util/errors.js';

/**
 * Interruption safety. The CLI (or the agent) turns SIGINT/SIGTERM/SIGHUP into an abort of the
 * operation's `interrupt` signal, with the signal's name as the reason; the engine decides what
 * that means where it is:
 * - before CRIU may kill the tree: the operation stops cleanly (CRIU is told to resume the tree
 *   at post-dump, the partial snapshot is removed) and fails with ERR_INTERRUPTED;
 * - from the moment CRIU may kill the tree until the snapshot is committed: the interrupt is
 *   deferred (the engine publishes `critical` so the interface can say why and for how long).
 */

/** The error of an operation stopped by an interrupt; `signal` picks the exit code (130, 143, 129). */
export function interruptedError(signal: AbortSignal, what: string): InterruptedError {
  const name = (typeof signal.reason === 'string' ? signal.reason : 'SIGINT') as NodeJS.Signals;
  return new InterruptedError(name, `interrupted by ${name}: ${what}`);
}

/** Throws ERR_INTERRUPTED when the operation was interrupted. */
export function throwIfInterrupted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw interruptedError(signal, what);
}
