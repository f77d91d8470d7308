import type { ConcreteStrategy } from '../strategy.js';

/**
 * `--strategy auto` (the default): picks a strategy from what is known before anything is
 * frozen, and says why. Pure, so the choice is tested on a table of cases.
 */

export interface AutoFacts {
  /** The workload's resident memory (what a dump writes). */
  bytes: number;
  /** The link's bandwidth, bytes/s (measured, or assumed: `linkMeasured` says which). */
  linkBytesPerSec: number;
  linkMeasured: boolean;
  /** Pages the workload rewrites per second, in bytes, when sampled. */
  dirtyBytesPerSec?: number | undefined;
  /** zstd's ratio on a sample of the workload's memory (≥ 1; 1 = incompressible), when sampled. */
  compressRatio?: number | undefined;
  /** The kernel's userfaultfd support for lazy pages (CRIU FEATURE_CHECK). */
  lazyPages: boolean;
  /** The kernel's soft-dirty tracking (CRIU FEATURE_CHECK). */
  memTrack: boolean;
  /** runc runs CRIU itself: only the cold strategy can hold its commit point (the freezer). */
  driver: string;
  /** The strategies this build of ferry has. */
  available: readonly ConcreteStrategy[];
}

/** Below this much wire time, a cold migration's downtime is already short: nothing to gain. */
export const SMALL_WIRE_S = 0.25;
/** Incremental rounds converge when a round's time dirties less than this share of memory. */
export const CONVERGES_BELOW = 0.2;

export function chooseStrategy(f: AutoFacts): { strategy: ConcreteStrategy; because: string } {
  const has = (s: ConcreteStrategy): boolean => f.available.includes(s);
  const mib = (f.bytes / 2 ** 20).toFixed(0);
  const wireS = f.bytes / Math.max(1, f.linkBytesPerSec);
  const link = `${(f.linkBytesPerSec * 8 / 1e9).toFixed(2)} Gbit/s ${f.linkMeasured ? 'measured' : 'assumed'}`;
  if (f.driver === 'runc') return { strategy: 'cold', because: 'runc runs CRIU itself, so only cold migration (behind the container\'s freezer) holds the commit point' };
  if (wireS <= SMALL_WIRE_S) return { strategy: 'cold', because: `${mib} MiB crosses the link (${link}) in ${(wireS * 1000).toFixed(0)} ms: cold is already short` };
  // The share of memory rewritten while one full copy crosses the wire.
  const dirtyShare = f.dirtyBytesPerSec !== undefined ? (f.dirtyBytesPerSec * wireS) / Math.max(1, f.bytes) : undefined;
  if (has('incremental') && dirtyShare !== undefined && dirtyShare < CONVERGES_BELOW) {
    return { strategy: 'incremental', because: `${mib} MiB takes ${wireS.toFixed(1)} s on the link (${link}) and the workload rewrites ${(dirtyShare * 100).toFixed(0)} % of it meanwhile: pre-copy rounds converge, the frozen part is small` };
  }
  // (post-copy moves process trees only: containers go on to stream or cold.)
  if (has('postcopy') && f.lazyPages && f.driver === 'process' && (dirtyShare === undefined || dirtyShare >= CONVERGES_BELOW)) {
    return { strategy: 'postcopy', because: `${mib} MiB takes ${wireS.toFixed(1)} s on the link (${link})${dirtyShare !== undefined ? ` and the workload rewrites ${(dirtyShare * 100).toFixed(0)} % of it meanwhile (pre-copy would not converge)` : ' and its dirty rate is unknown'}: post-copy keeps the downtime flat` };
  }
  if (has('stream')) {
    const zip = f.compressRatio !== undefined && f.compressRatio >= 1.5 ? `; its memory compresses ${f.compressRatio.toFixed(1)}×, so the wire carries less` : '';
    return { strategy: 'stream', because: `${mib} MiB takes ${wireS.toFixed(1)} s on the link (${link}): streaming overlaps dump, wire and restore${zip}` };
  }
  return { strategy: 'cold', because: `the only strategy available for ${mib} MiB here (${f.available.join(', ')})` };
}
