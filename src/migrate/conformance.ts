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

// postcopy: the images before the commit are tens of KiB (the memory follows the commit over its
// own page stream), so a fault at 20 MiB into the image upload never fires. The page stream's own
// fault — the stream cut in the post-copy window — is postcopy.e2e.test.ts's.
const POSTCOPY_SMALL_IMAGES = 'post-copy sends only tens of KiB of images before the commit (the memory follows over the page stream): a fault 20 MiB into the image upload never fires; the page stream cut in the window is tested in postcopy.e2e.test.ts';

export const NOT_APPLICABLE: Partial<Record<ConcreteStrategy, Partial<Record<ConformanceFault, string>>>> = {
  postcopy: { 'flip': POSTCOPY_SMALL_IMAGES, 'cut': POSTCOPY_SMALL_IMAGES, 'kill-during-transfer': POSTCOPY_SMALL_IMAGES, 'source-killed': POSTCOPY_SMALL_IMAGES },
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
 */
export function faultStream(strategy: ConcreteStrategy): { only: RegExp; afterBytes: number } {
  if (strategy === 'incremental') return { only: /^PUT \/v1\/migrations\/m-[0-9a-f]+\/delta/, afterBytes: 128 << 10 };
  return { only: /^PUT \/v1\/migrations\/m-[0-9a-f]+\/images/, afterBytes: 20 * 2 ** 20 };
}

/** The phase a fault in flight is reported in (the image stream's faults: 'transfer'). */
export function faultPhase(strategy: ConcreteStrategy, fault: ConformanceFault): string {
  const special: Partial<Record<ConcreteStrategy, Partial<Record<ConformanceFault, string>>>> = {};
  return special[strategy]?.[fault] ?? (fault === 'kill-during-restore' ? 'restore' : 'transfer');
}
