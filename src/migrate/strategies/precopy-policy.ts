/**
 * The convergence policy of CRIU pre-dump iterations (`--strategy precopy`): after each
 * pre-dump, CRIU's stats say how many pages it wrote; another round is worth it while the rounds
 * shrink fast enough that the final, frozen dump gets smaller. Pure, so it is tested on recorded
 * stats.
 */

export interface PrecopyLimits {
  /** At most this many pre-dump rounds. */
  maxRounds: number;
  /** Stop once a round writes at most this many pages: the final dump will be as small. */
  pagesWritten: number;
  /** Stop when a round wrote more than this fraction of the previous one (it does not converge). */
  growth: number;
}

export const PRECOPY_LIMITS: PrecopyLimits = { maxRounds: 8, pagesWritten: 4096, growth: 0.8 };

export type PrecopyDecision = { again: true } | { again: false; because: string };

/** `written`: pages written by each pre-dump round so far, in order. */
export function precopyNext(written: readonly number[], limits: PrecopyLimits = PRECOPY_LIMITS): PrecopyDecision {
  const n = written.length;
  const last = written[n - 1];
  if (last === undefined) return { again: true };
  if (n >= limits.maxRounds) return { again: false, because: `${n} rounds, the limit` };
  if (last <= limits.pagesWritten) return { again: false, because: `the last round wrote ${last} pages (≤ ${limits.pagesWritten})` };
  const prev = written[n - 2];
  if (prev !== undefined && last > prev * limits.growth) {
    return { again: false, because: `the last round wrote ${last} pages after ${prev}: more than ${limits.growth}× — the workload dirties memory as fast as it is copied` };
  }
  return { again: true };
}
