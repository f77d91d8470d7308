import diagnostics_channel from 'node:diagnostics_channel';
import type { HostSample, SamplesSummary } from './sampler.js';

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

/**
 * The telemetry of one checkpoint or restore: ferry's phase timings, CRIU's own statistics
 * (under CRIU's names: freezing_time, frozen_time, memdump_time, memwrite_time, pages_*,
 * restore_time, … µs and pages), the host's CPU and memory and the workload's RSS sampled
 * from /proc while it ran, and every raw sample.
 */
export interface OperationTelemetry {
  operation: OperationKind;
  ok: boolean;
  startedAt: string;
  /** ferry's phases in ms: total, criu, verify, checksum, transfer … (whichever ran). */
  phasesMs: Record<string, number>;
  /** CRIU's stats-dump / stats-restore, as CRIU names them; undefined when CRIU wrote none. */
  criu: Record<string, number> | undefined;
  host: { cpus: number; memTotalBytes: number | undefined } & SamplesSummary;
  /** The workload's tree: its root pid (the restored one for a restore) and RSS over the operation. */
  workload: { rootPid: number | undefined; rssBytes: SamplesSummary['rssBytes'] };
  samples: HostSample[];
}
