import type { SnapshotManifest } from '../store/manifest.js';
import type { CriuClient, OperationControl } from '../criu/client.js';
import type { RestoreStats } from '../criu/images/stats.js';
import type { NotifyHandlers } from '../criu/notify.js';
import type { RecordedOptions, RestoreOnlyOptions } from './recorded-options.js';
import type { Runtime } from './container.js';

/**
 * What can be checkpointed, behind one interface: a process tree, a runc container, a crun
 * container. The engine runs the same steps for all of them (lock, budget, intent, dump,
 * seal, commit; verify, preflight, restore) and asks a driver only what differs.
 */

/** What the user names: a pid or `ferry run` workload, or `container:<id>`. */
export type TargetRef =
  | { kind: 'process'; pid: number }
  | { kind: 'workload'; name: string }
  | { kind: 'container'; id: string; runtime?: Runtime; runtimeRoot?: string };

export type DriverName = 'process' | 'runc' | 'crun';

/** Where drivers keep their bookkeeping (owned by the store; drivers get paths). */
export interface DriverPaths {
  /** `ferry run` workload records. */
  workloadsDir: string;
  /** Restored containers' stdout/stderr logs. */
  containersDir: string;
}

/** A target found live and checked: everything the engine needs to lock, budget and describe it. */
export interface LiveTarget<T = unknown> {
  driver: DriverName;
  /** Host pid of the tree's root (watched during the dump; its RSS sizes the budget). */
  rootPid: number;
  /** One operation per target at a time: the lock's name. */
  lockKey: string;
  /** For messages: "pid 123 (redis-server)", "container web (runc)". */
  label: string;
  /** What the manifest records about the target, once dumped. */
  record: SnapshotTargetRecord;
  /** Driver-private facts found while resolving (spec, stdio, mounts …). */
  private: T;
}

/** The manifest's `target` (see store/manifest.ts), as drivers produce it. */
export type SnapshotTargetRecord = SnapshotManifest['target'];

export interface DumpCall {
  imagesDir: string;
  /** CRIU's log and stats go here (outside the snapshot: they survive an abandoned one). */
  workDir: string;
  options: RecordedOptions;
  leaveRunning: boolean;
  criu: CriuClient;
  /** The engine's notify handlers (the post-dump hold); drivers add their own around them. */
  handlers: NotifyHandlers;
  /** The watchdog's kill switch, for the CRIU that ferry drives. */
  control: OperationControl;
  /** Post-copy: leave anonymous memory lazy and serve it on this port after post-dump (engine/checkpoint.ts). */
  lazyPages?: { port: number };
}

export interface RestoreCall {
  manifest: SnapshotManifest;
  dir: string;
  workDir: string;
  criu: CriuClient;
  /** The engine's handlers (read-path verification answers post-restore). */
  handlers: NotifyHandlers;
  control: OperationControl;
  /** Restore as this name (workload) or id (container) instead of the recorded one. */
  as?: string;
  /** Container restores: another bundle, runtime or runtime root. */
  bundle?: string;
  runtime?: Runtime;
  runtimeRoot?: string;
  extra: RestoreOnlyOptions;
  paths: DriverPaths;
}

/** What a restore brought back. */
export interface RestoredTarget {
  pid: number;
  /** CRIU's log of the restore. */
  logPath: string;
  stats: RestoreStats | undefined;
  /** The restored workload's name (process) or container id (container). */
  name: string | undefined;
  /** Containers: runtime and where stdout/stderr go. */
  container?: { id: string; runtime: Runtime; stdout: string; stderr: string };
}

export interface TargetDriver<T = unknown> {
  readonly name: DriverName;
  /**
   * True when ferry drives CRIU itself, so its notifications reach the engine (the post-dump
   * hold, read-path verification). runc runs CRIU on its own: the engine verifies before and
   * keeps signals away for the whole dump instead.
   */
  readonly ownsCriu: boolean;
  /** Finds the target live and refuses, with the reason, what cannot be checkpointed. */
  resolve(ref: TargetRef, paths: DriverPaths, options: RecordedOptions): Promise<LiveTarget<T>>;
  /** Writes the images into `call.imagesDir` (and whatever the driver needs beside them). */
  dump(live: LiveTarget<T>, call: DumpCall): Promise<void>;
  /** Driver-specific refusals before a restore (an id in use, a bundle missing …). */
  preflightRestore(call: RestoreCall): Promise<void>;
  restore(call: RestoreCall): Promise<RestoredTarget>;
}
