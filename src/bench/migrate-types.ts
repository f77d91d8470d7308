import type { StrategyName } from '../migrate/strategy.js';
import type { MigrateWorkloadKind } from './migrate-workloads.js';

/** What `ferry bench migrate` is asked and what each of its samples records (bench/migrate.ts). */

/** A ferry strategy (`auto`: whatever it picks, the sample says which), or the raw baseline (criu dump → tar over TCP → criu restore). */
export type Arm = StrategyName | 'raw';

export interface MigrateBenchOptions {
  /** ferry's strategies, each measured against the raw baseline, interleaved. */
  strategies: StrategyName[];
  /** Workload sizes, MiB (memcheck's memory; redis's data). */
  sizes: number[];
  /** Samples per arm and workload. */
  runs: number;
  workloads: MigrateWorkloadKind[];
  /** The links' tc rate. */
  rate: string;
  /** MiB written to and deleted from tmpfs right before each sample (evens out first-touch cost). */
  warmMiB: number;
  /** One unrecorded small pair first, so the first sample does not pay for loading code. */
  warmup: boolean;
  signal?: AbortSignal;
}

export interface MigrateSample {
  workload: MigrateWorkloadKind;
  arm: Arm;
  /** Pairs are numbered from 0; the warm-up pair is not recorded. */
  pair: number;
  mib: number;
  /** ferry: its freeze → the copy on h2 runs; raw: `criu dump` start → `criu restore -d` done. */
  downtimeMs: number;
  /** ferry: the migration from preflight to its end; raw: the same as its downtime. */
  totalMs: number;
  /** Bytes of the images moved. */
  bytes: number;
  /** ferry: FerryPhases; raw: dump, wire, restore. */
  phases: Record<string, number>;
  /** raw: CRIU's frozen_time. */
  frozenMs?: number;
  /** ferry: `ferry migrate` spawn → exit. */
  cliMs?: number;
  /** CPU seconds while the migration ran: the whole machine (both hosts share it); ferry: each host's agent with the CRIU runs it waited for. */
  cpuS?: { machine: number; source?: number; destination?: number };
  /** ferry: why the strategy, and what it adds to the result (rounds, compression, the post-copy window). */
  details?: Record<string, unknown>;
  wireBytes?: number;
  /** ferry: whether the downtime was split by the agent's job timeline. */
  timeline?: boolean;
  /** What the moved copy's verification said. */
  verified: string;
  /** ferry: snapshots either host still listed after the migration and the stop (should be none). */
  leftovers?: string[];
}
