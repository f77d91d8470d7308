import diagnostics_channel from 'node:diagnostics_channel';
import type { HostSample } from './sampler.js';
import type { OperationTelemetry } from './operation.js';

/**
 * Every event the telemetry layer carries, on named diagnostics channels (declared here, once).
 * The engine publishes; the CLI, the agent's /metrics and the benchmarks subscribe. Nothing here
 * prints.
 */
export const telemetryChannels = {
  /** { id, operation, rootPid } when an operation starts. */
  start: diagnostics_channel.channel('ferry:telemetry:start'),
  /** { id, operation, sample } for each host sample taken while it runs. */
  sample: diagnostics_channel.channel('ferry:telemetry:sample'),
  /** { id, operation, phase, ms } when a phase of it ends. */
  phase: diagnostics_channel.channel('ferry:telemetry:phase'),
  /** { id, operation, telemetry } when it ends (successfully or not: `telemetry.ok`). */
  end: diagnostics_channel.channel('ferry:telemetry:end'),
} as const;

export type OperationKind = 'checkpoint' | 'restore' | 'migrate';

export interface TelemetryStartEvent { id: number; operation: OperationKind; rootPid: number | undefined }
export interface TelemetrySampleEvent { id: number; operation: OperationKind; sample: HostSample }
export interface TelemetryPhaseEvent { id: number; operation: OperationKind; phase: string; ms: number }
export interface TelemetryEndEvent { id: number; operation: OperationKind; telemetry: OperationTelemetry }
