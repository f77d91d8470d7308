import { performance } from 'node:perf_hooks';
import { cpuBusyPercent, readCpuTimes, readMeminfo, treeRss, type CpuTimes } from './proc.js';

/** One reading of the host (and of the workload's tree, when one is being watched). */
export interface HostSample {
  /** ms since the sampler started. */
  tMs: number;
  /** Busy share of all CPUs since the previous sample (0–100); undefined for the first. */
  cpuBusyPct: number | undefined;
  /** MemTotal − MemAvailable. */
  memUsedBytes: number | undefined;
  /** Resident memory of the watched process tree; undefined when none is watched or it is gone. */
  rssBytes: number | undefined;
}

export interface Range { min: number; max: number; mean: number; first: number; last: number }

export interface SamplesSummary {
  samples: number;
  intervalMs: number;
  durationMs: number;
  cpuBusyPct: Range | undefined;
  memUsedBytes: Range | undefined;
  rssBytes: Range | undefined;
}

export const DEFAULT_INTERVAL_MS = 50;

/**
 * Samples /proc/stat, /proc/meminfo and the watched tree's RSS every `intervalMs` while an
 * operation runs. A sample is also taken at start and at stop, so even a 5 ms operation has two.
 * The timer is unref'd: a sampler never keeps the process alive.
 */
export class HostSampler {
  readonly intervalMs: number;
  private readonly samples: HostSample[] = [];
  private readonly onSample: ((s: HostSample) => void) | undefined;
  private t0 = 0;
  private prevCpu: CpuTimes | undefined;
  private timer: NodeJS.Timeout | undefined;
  private root: number | undefined;

  constructor(opts: { intervalMs?: number; rootPid?: number; onSample?: (s: HostSample) => void } = {}) {
    this.intervalMs = opts.intervalMs ?? DEFAULT_INTERVAL_MS;
    if (!(this.intervalMs > 0)) throw new RangeError(`sampler interval must be > 0 ms, not ${this.intervalMs}`);
    this.root = opts.rootPid;
    this.onSample = opts.onSample;
  }

  get running(): boolean { return this.timer !== undefined; }

  /** Watches another tree from now on (e.g. the restored one once its pid is known). */
  watch(rootPid: number | undefined): void { this.root = rootPid; }

  start(): this {
    if (this.timer) return this;
    this.t0 = performance.now();
    this.take();
    this.timer = setInterval(() => this.take(), this.intervalMs);
    this.timer.unref();
    return this;
  }

  /** Stops (taking a last sample) and returns every sample; safe to call twice. */
  stop(): HostSample[] {
    if (this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
      this.take();
    }
    return [...this.samples];
  }

  private take(): void {
    const cpu = readCpuTimes();
    const mem = readMeminfo();
    const s: HostSample = {
      tMs: Math.round((performance.now() - this.t0) * 10) / 10,
      cpuBusyPct: this.prevCpu && cpu ? round1(cpuBusyPercent(this.prevCpu, cpu)) : undefined,
      memUsedBytes: mem?.usedBytes,
      rssBytes: this.root === undefined ? undefined : treeRss(this.root),
    };
    if (cpu) this.prevCpu = cpu;
    this.samples.push(s);
    this.onSample?.(s);
  }
}

const round1 = (x: number | undefined): number | undefined => (x === undefined ? undefined : Math.round(x * 10) / 10);

function range(values: (number | undefined)[]): Range | undefined {
  const v = values.filter((x): x is number => x !== undefined);
  if (v.length === 0) return undefined;
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (const x of v) { min = Math.min(min, x); max = Math.max(max, x); sum += x; }
  return { min, max, mean: Math.round((sum / v.length) * 10) / 10, first: v[0]!, last: v[v.length - 1]! };
}

export function summarizeSamples(samples: HostSample[], intervalMs: number): SamplesSummary {
  return {
    samples: samples.length,
    intervalMs,
    durationMs: samples.length ? samples[samples.length - 1]!.tMs : 0,
    cpuBusyPct: range(samples.map((s) => s.cpuBusyPct)),
    memUsedBytes: range(samples.map((s) => s.memUsedBytes)),
    rssBytes: range(samples.map((s) => s.rssBytes)),
  };
}
