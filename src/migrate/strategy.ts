import type { CheckpointRequest, Handoff } from '../engine/checkpoint.js';
import type { Engine } from '../engine/engine.js';
import type { Phases } from '../engine/phases.js';
import type { HostFacts } from '../targets/host.js';
import type { LiveTarget } from '../targets/driver.js';
import type { RecordedOptions } from '../targets/recorded-options.js';
import type { PeerClient } from './peer.js';
import type { ConcreteStrategy, ImageSender, ServiceAddress } from './protocol.js';
import type { MigrateRequest } from './migrate-types.js';

/**
 * How a migration moves a workload: one interface, one commit point (migrate.ts). A strategy
 * decides what happens while the workload still runs (pre-copy rounds, a replica), what the
 * frozen dump is (whole, a child of what the destination holds, streamed, lazy), how what is left
 * reaches the destination inside CRIU's post-dump hold, and what still flows after the commit
 * (post-copy). migrate.ts owns everything else: preflight, the freeze, the handoff's failure
 * handling, the commit, and where the workload is when something fails.
 */

export { STRATEGY_NAMES, CONCRETE_STRATEGIES } from './protocol.js';
export type { StrategyName, ConcreteStrategy } from './protocol.js';

/** What the preflight found, with nothing frozen. */
export interface Preflight {
  live: LiveTarget;
  /** The target as engine.checkpoint takes it. */
  targetArg: string | number;
  options: RecordedOptions;
  /** The target's driver: 'process', 'runc' or 'crun'. */
  driver: string;
  address: ServiceAddress | undefined;
  host: HostFacts;
  /** The tree's resident memory (what a dump writes, roughly). */
  bytes: number;
  destHost: string;
  startTime: number | undefined;
}

export interface StrategyContext {
  id: string;
  engine: Engine;
  req: MigrateRequest;
  peer: PeerClient;
  phases: Phases;
  interrupt: AbortSignal;
  send: ImageSender;
  pre: Preflight;
  /** Names the phase that errors report. */
  setPhase(phase: string): void;
  /** Transfer progress (job events, progress lines), given the bytes expected in all. */
  progress(totalBytes: number): (bytes: number) => void;
}

export interface HandoffResult {
  sent: { bytes: number; wireBytes: number; snapshot: string };
  /** The destination's restored copy, held before it runs. */
  restoredPid: number | undefined;
}

/** What a strategy does around the frozen dump. */
export interface FinalDump {
  /** Extra options for the final, frozen engine.checkpoint (a parent, stream mode, lazy pages). */
  checkpoint?: Partial<CheckpointRequest>;
  /**
   * Inside CRIU's post-dump hold (the tree frozen, its images complete): move what is left and
   * have the destination restore it with its post-restore held. Throwing resumes the source.
   */
  handoff(h: Handoff): Promise<HandoffResult>;
  /**
   * Post-copy: the commit goes out as soon as CRIU has its post-dump answer (the destination's
   * copy runs while the source still serves its memory), not when the dump ends.
   */
  commitAtHandoff?: boolean;
  /** With commitAtHandoff: awaited before the commit goes out (the destination's copy gets held). */
  beforeCommit?(): Promise<void>;
  /** With commitAtHandoff: beforeCommit or the commit failed — make CRIU resume the source tree (it is still frozen). */
  abandon?(): void;
  /** With commitAtHandoff: the commit was answered (the destination's copy runs). */
  onCommitted?(): void;
  /** After the commit, while the destination still depends on the source (post-copy). */
  afterCommit?(): Promise<void>;
  /** Always called at the end, success or failure: stops what prepare() started. */
  close?(): Promise<void>;
  /** Extra fields for the result (rounds, whether compression was used and why, ...). */
  report?(): Record<string, unknown>;
}

export interface MigrationStrategy {
  name: ConcreteStrategy;
  /** Before anything is frozen: throws a FerryError to refuse (what is missing, what to use instead). */
  check?(ctx: StrategyContext): Promise<void>;
  /** While the workload still runs; returns the plan for the frozen part. */
  prepare(ctx: StrategyContext): Promise<FinalDump>;
}
