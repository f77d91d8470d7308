import diagnostics_channel from 'node:diagnostics_channel';

/**
 * Every event the engine publishes, on named diagnostics channels declared here, once. The CLI's
 * progress line, the agent's SSE stream and metrics subscribe here — not to CRIU's channels.
 * Nothing in the engine prints.
 */
export const engineChannels = {
  /** {@link PhaseEvent}: a phase of an operation started or ended. */
  phase: diagnostics_channel.channel('ferry:engine:phase'),
  /** {@link CriticalEvent}: the operation entered or left a stretch that must not be interrupted. */
  critical: diagnostics_channel.channel('ferry:engine:critical'),
  /** {@link TransferEvent}: bytes of an operation's transfer so far (a migration's images). */
  transfer: diagnostics_channel.channel('ferry:engine:transfer'),
  /** {@link RecoveredEvent}: an operation interrupted earlier (ferry killed) was finished or undone. */
  recovered: diagnostics_channel.channel('ferry:engine:recovered'),
} as const;

export type EngineOperation = 'checkpoint' | 'restore' | 'migrate';

export interface PhaseEvent {
  /** The operation's telemetry id. */
  id: number;
  operation: EngineOperation;
  phase: string;
  state: 'start' | 'end';
  /** On 'end': how long it took. */
  ms?: number;
}

export interface TransferEvent {
  id: number;
  operation: EngineOperation;
  /** Bytes of the images sent so far, and about how many there are (the tree's RSS). */
  bytes: number;
  totalBytes: number;
}

export interface CriticalEvent {
  id: number;
  operation: EngineOperation;
  entered: boolean;
  /** What is at stake, for a message to someone pressing Ctrl-C: "pid 123 now lives only in snapshot X". */
  what: string;
}

export interface RecoveredEvent {
  snapshot: string;
  /** committed: now a visible snapshot; removed: the workload runs on; kept: left for the user, with the reason. */
  action: 'committed' | 'removed' | 'kept';
  reason: string;
}
