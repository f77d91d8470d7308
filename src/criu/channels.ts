import diagnostics_channel from 'node:diagnostics_channel';

/**
 * Every event the criu layer emits, on named diagnostics channels (declared here, once).
 * The engine and telemetry subscribe; nothing in this layer prints.
 */
export const criuChannels = {
  /** { id, request, options } when a CRIU operation starts. */
  start: diagnostics_channel.channel('ferry:criu:start'),
  /** { id, request, script, pid } for each NOTIFY CRIU sends. */
  notify: diagnostics_channel.channel('ferry:criu:notify'),
  /** { id, request, success, durationMs, error? } when it ends. */
  end: diagnostics_channel.channel('ferry:criu:end'),
} as const;

export interface CriuStartEvent { id: number; request: string; imagesDir: string | undefined }
export interface CriuNotifyEvent { id: number; request: string; script: string; pid: number | undefined }
export interface CriuEndEvent { id: number; request: string; success: boolean; durationMs: number; error?: unknown }
