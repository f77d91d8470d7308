import type { ConcreteStrategy } from './strategy.js';

/**
 * The strategies' conformance suite (conformance.e2e.test.ts and the testbed's redis test): the
 * same moves and the same faults run against every strategy listed here. A strategy joins by being
 * added to the list; where a fault cannot apply to it, NOT_APPLICABLE says why and the suite
 * reports that test as skipped with the reason (never silently, never as passed).
 */
export const CONFORMANCE_STRATEGIES: readonly ConcreteStrategy[] = ['cold', 'stream', 'incremental', 'postcopy'];

export type ConformanceFault =
  | 'wrong-token' | 'full-store' | 'old-criu' | 'source-killed'
  | 'flip' | 'cut' | 'kill-during-transfer' | 'kill-during-restore';

// postcopy: a fault in its image upload (tens of KiB) fires and the source resumes and verifies —
// but only after ≈ 120 s (measured for flip, cut and kill-during-transfer: the same slow path, a
// known defect). 'flip' runs in the suite; the two others, the same path at 2 minutes each, not.
const POSTCOPY_SLOW_ABORT = 'post-copy\'s abort after a fault in its image upload resumes the source only after ≈ 120 s (a known defect); the same path runs in this suite as the flip fault';

export const NOT_APPLICABLE: Partial<Record<ConcreteStrategy, Partial<Record<ConformanceFault, string>>>> = {
  postcopy: { 'cut': POSTCOPY_SLOW_ABORT, 'kill-during-transfer': POSTCOPY_SLOW_ABORT },
};

/** The phases every successful migration with this strategy reports (job phases and the result's). */
export const EXPECTED_PHASES: Partial<Record<ConcreteStrategy, readonly string[]>> = {
  cold: ['preflight', 'transfer', 'restore', 'commit'],
  stream: ['preflight', 'transfer', 'restore', 'commit'],
  incremental: ['preflight', 'rounds', 'delta', 'transfer', 'restore', 'commit'],
  // The images (all but the lazy memory) travel and are restored as cold's; the pages follow the commit.
  postcopy: ['preflight', 'transfer', 'restore', 'commit', 'after-commit'],
};

/**
 * Where the in-flight faults strike: the request that carries the frozen part's images, after
 * this many of its bytes. incremental's frozen part is only the pages changed since its last
 * round (a few MiB here), sent to its own route; its rounds' faults are in its own e2e test.
 * post-copy's is tens of KiB.
 */
export function faultStream(strategy: ConcreteStrategy): { only: RegExp; afterBytes: number } {
  if (strategy === 'incremental') return { only: /^PUT \/v1\/migrations\/m-[0-9a-f]+\/delta/, afterBytes: 128 << 10 };
  // post-copy's images before the commit are tens of KiB: the memory follows over the page stream
  // (whose cut in the window is postcopy.e2e.test.ts's).
  if (strategy === 'postcopy') return { only: /^PUT \/v1\/migrations\/m-[0-9a-f]+\/images/, afterBytes: 4 << 10 };
  return { only: /^PUT \/v1\/migrations\/m-[0-9a-f]+\/images/, afterBytes: 20 * 2 ** 20 };
}

/** The phase a fault in flight is reported in (the image stream's faults: 'transfer'). */
export function faultPhase(strategy: ConcreteStrategy, fault: ConformanceFault): string {
  const special: Partial<Record<ConcreteStrategy, Partial<Record<ConformanceFault, string>>>> = {};
  return special[strategy]?.[fault] ?? (fault === 'kill-during-restore' ? 'restore' : 'transfer');
}
