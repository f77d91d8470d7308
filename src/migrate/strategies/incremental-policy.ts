/**
 * When `--strategy incremental` stops its pre-copy rounds and freezes. Each round dumps the
 * running workload (frozen only while CRIU dumps it) and sends the pages whose content changed
 * since the round before: what it sends is what the workload rewrote in the meantime, the best
 * estimate of what the final, frozen round would send now. Another round is worth it while:
 *
 *   - fewer than `maxRounds` were made (each one pauses the workload once, and the destination
 *     restores through one more link of its chain);
 *   - what is left is more than `bytesLeft` (below it, the frozen round is already short);
 *   - rounds shrink: one that sends more than `convergence` × the one before means the workload
 *     rewrites memory about as fast as the link carries it — more rounds do not converge;
 *   - it pays for itself: the wire time it is expected to take off the frozen round (what is left,
 *     less what the next round is expected to leave, at the link's measured rate) exceeds the
 *     pause the round costs the workload (its dump's freeze).
 *
 * Pure, so it is tested on recorded figures (incremental-policy.test.ts).
 */

export interface IncrementalLimits {
  maxRounds: number;
  bytesLeft: number;
  convergence: number;
}

export const INCREMENTAL_LIMITS: IncrementalLimits = { maxRounds: 6, bytesLeft: 16 * 2 ** 20, convergence: 0.6 };

/** What one round measured (pages-round.ts's figures). */
export interface RoundRecord {
  /** Bytes sent. */
  bytes: number;
  /** The transfer's time (bytes / sendMs is the link's measured rate). */
  sendMs: number;
  /** How long the workload was frozen for the round's dump. */
  frozenMs: number;
}

export type IncrementalDecision = { again: true; because: string } | { again: false; because: string };

const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;

export function incrementalNext(rounds: readonly RoundRecord[], limits: IncrementalLimits = INCREMENTAL_LIMITS): IncrementalDecision {
  const n = rounds.length;
  const last = rounds[n - 1];
  if (last === undefined) return { again: true, because: 'the first round sends what the destination lacks while the workload runs' };
  if (last.bytes <= limits.bytesLeft) return { again: false, because: `round ${n} sent ${mib(last.bytes)} (≤ ${mib(limits.bytesLeft)}): the frozen round is short` };
  if (n >= limits.maxRounds) return { again: false, because: `${n} rounds, the limit` };
  const prev = rounds[n - 2];
  if (prev === undefined) return { again: true, because: `round 1 sent ${mib(last.bytes)}: what changed meanwhile goes in a second round` };
  const ratio = last.bytes / Math.max(1, prev.bytes);
  if (ratio > limits.convergence) {
    return { again: false, because: `round ${n} sent ${mib(last.bytes)} after ${mib(prev.bytes)} (×${ratio.toFixed(2)} > ×${limits.convergence}): the workload rewrites memory about as fast as the rounds move it` };
  }
  // The next round is expected to shrink what is left as the last one did.
  const rate = last.bytes / Math.max(1, last.sendMs);
  const savedMs = (last.bytes - last.bytes * ratio) / rate;
  if (savedMs <= last.frozenMs) {
    return { again: false, because: `another round would take ≈ ${Math.round(savedMs)} ms off the frozen round and pause the workload ≈ ${last.frozenMs} ms: it does not pay` };
  }
  return { again: true, because: `round ${n} sent ${mib(last.bytes)} (×${ratio.toFixed(2)} of round ${n - 1}): another round takes ≈ ${Math.round(savedMs)} ms off the frozen one` };
}
