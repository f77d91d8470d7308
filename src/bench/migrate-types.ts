import type { MigrateWorkloadKind } from './migrate-workloads.js';

/** What `ferry bench migrate` is asked and what each of its samples records (bench/migrate.ts). */

export type Arm = 'ferry' | 'raw';

export interface MigrateBenchOptions {
  strategy: 'cold';
  /** Workload size, MiB (memcheck's memory; redis's data). */
  mib: number;
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
  wireBytes?: number;
  /** ferry: whether the downtime was split by the agent's job timeline. */
  timeline?: boolean;
  /** What the moved copy's verification said. */
  verified: string;
  /** ferry: snapshots either host still listed after the migration and the stop (should be none). */
  leftovers?: string[];
}
