export { telemetryChannels, type OperationKind, type TelemetryEndEvent, type TelemetryPhaseEvent, type TelemetrySampleEvent, type TelemetryStartEvent } from './channels.js';
export { OperationRecorder, type OperationTelemetry } from './operation.js';
export { HostSampler, summarizeSamples, DEFAULT_INTERVAL_MS, type HostSample, type Range, type SamplesSummary } from './sampler.js';
export { cpuBusyPercent, parseMeminfo, parseProcStat, treePids, treeRss } from './proc.js';
