import { cpus } from 'node:os';
import { telemetryChannels, type OperationKind, type OperationTelemetry, type TelemetryEndEvent, type TelemetryPhaseEvent, type TelemetrySampleEvent, type TelemetryStartEvent } from './channels.js';
import { readMeminfo } from './proc.js';
import { HostSampler, summarizeSamples, type HostSample } from './sampler.js';

export type { OperationTelemetry } from './channels.js';

let nextId = 1;

/**
 * Records one operation: starts the host sampler, collects phase timings, and on `finish`
 * stops the sampler, publishes `ferry:telemetry:end` and returns the record.
 */
export class OperationRecorder {
  /**
   * Runs `body` with a recorder for `operation`; if it throws, the recorder is finished as
   * failed (its sampler stopped, `ferry:telemetry:end` published) and the error rethrown.
   */
  static async run<T>(operation: OperationKind, body: (rec: OperationRecorder) => Promise<T>): Promise<T> {
    const rec = new OperationRecorder(operation);
    try {
      return await body(rec);
    } catch (err) {
      rec.finish({ ok: false });
      throw err;
    }
  }

  readonly id = nextId++;
  private readonly sampler: HostSampler;
  private readonly started = Date.now();
  private readonly phases: Record<string, number> = {};
  private rootPid: number | undefined;
  private done: OperationTelemetry | undefined;

  constructor(readonly operation: OperationKind, opts: { rootPid?: number; intervalMs?: number } = {}) {
    this.rootPid = opts.rootPid;
    const onSample = telemetryChannels.sample.hasSubscribers
      ? (sample: HostSample) => telemetryChannels.sample.publish({ id: this.id, operation, sample } satisfies TelemetrySampleEvent)
      : undefined;
    this.sampler = new HostSampler({
      ...(opts.intervalMs !== undefined ? { intervalMs: opts.intervalMs } : {}),
      ...(opts.rootPid !== undefined ? { rootPid: opts.rootPid } : {}),
      ...(onSample ? { onSample } : {}),
    });
    if (telemetryChannels.start.hasSubscribers) telemetryChannels.start.publish({ id: this.id, operation, rootPid: opts.rootPid } satisfies TelemetryStartEvent);
    this.sampler.start();
  }

  /** The workload tree to watch from now on (for a restore: the restored root). */
  watch(rootPid: number): void {
    this.rootPid = rootPid;
    this.sampler.watch(rootPid);
  }

  /** Records a phase's duration (ms); phases with the same name add up. */
  phase(name: string, ms: number): void {
    this.phases[name] = (this.phases[name] ?? 0) + ms;
    if (telemetryChannels.phase.hasSubscribers) telemetryChannels.phase.publish({ id: this.id, operation: this.operation, phase: name, ms } satisfies TelemetryPhaseEvent);
  }

  /** The phases recorded so far (ms). */
  phasesSoFar(): Readonly<Record<string, number>> {
    return this.phases;
  }

  /** Times `fn` as phase `name`. */
  async time<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const t0 = Date.now();
    try {
      return await fn();
    } finally {
      this.phase(name, Date.now() - t0);
    }
  }

  /** Stops sampling and returns the record (the same one on a second call). */
  finish(result: { ok: boolean; criu?: object | undefined; phasesMs?: Record<string, number> }): OperationTelemetry {
    if (this.done) return this.done;
    const samples = this.sampler.stop();
    Object.assign(this.phases, result.phasesMs ?? {});
    if (this.phases['total'] === undefined) this.phases['total'] = Date.now() - this.started;
    const summary = summarizeSamples(samples, this.sampler.intervalMs);
    this.done = {
      operation: this.operation,
      ok: result.ok,
      startedAt: new Date(this.started).toISOString(),
      phasesMs: { ...this.phases },
      criu: result.criu ? { ...(result.criu as Record<string, number>) } : undefined,
      host: { cpus: cpus().length, memTotalBytes: readMeminfo()?.totalBytes, ...summary },
      workload: { rootPid: this.rootPid, rssBytes: summary.rssBytes },
      samples,
    };
    if (telemetryChannels.end.hasSubscribers) telemetryChannels.end.publish({ id: this.id, operation: this.operation, telemetry: this.done } satisfies TelemetryEndEvent);
    return this.done;
  }
}
