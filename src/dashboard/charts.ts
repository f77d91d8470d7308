/**
 * The dashboard's charts as vega-lite specs (the charting library of the bench reports,
 * src/bench/report.ts): an operation's telemetry (CPU, memory, phases) and a job's phase
 * timeline. Plain objects: the page compiles and draws them; the tests compile them in Node.
 * Each mark also differs by shape or dash, not colour alone, and each chart has a description
 * (vega puts it on the SVG as its aria-label).
 */
import type { TimelinePhase } from './model.js';

export type Spec = Record<string, unknown>;

/** What a checkpoint's or a restore's result carries as `telemetry` (telemetry/channels.ts), the fields charted. */
export interface TelemetryLike {
  operation?: string;
  phasesMs?: Record<string, number>;
  samples?: { tMs: number; cpuBusyPct?: number | undefined | null; memUsedBytes?: number | undefined | null; rssBytes?: number | undefined | null }[];
}

const MIB = 1024 * 1024;
const WIDTH = 520;

const CONFIG = {
  font: 'system-ui, sans-serif',
  axis: { labelFontSize: 11, titleFontSize: 12 },
  legend: { labelFontSize: 11, titleFontSize: 12, orient: 'bottom' },
  range: { category: ['#1d4ed8', '#b45309', '#047857', '#b91c1c', '#6d28d9', '#334155'] },
  view: { stroke: null },
};

/** CPU busy % over the operation (line with points). */
export function cpuSpec(t: TelemetryLike): Spec | undefined {
  const values = (t.samples ?? []).filter((s) => typeof s.cpuBusyPct === 'number').map((s) => ({ t: s.tMs / 1000, cpu: s.cpuBusyPct }));
  if (values.length < 2) return undefined;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    description: `Host CPU busy percent during the ${t.operation ?? 'operation'}, ${values.length} samples`,
    width: WIDTH, height: 140, config: CONFIG,
    data: { values },
    mark: { type: 'line', point: { size: 18 } },
    encoding: {
      x: { field: 't', type: 'quantitative', title: 'seconds since start', axis: { format: '.2~f', tickCount: 8 } },
      y: { field: 'cpu', type: 'quantitative', title: 'host CPU busy %', scale: { domain: [0, 100] } },
      tooltip: [{ field: 't', title: 's' }, { field: 'cpu', title: 'CPU %' }],
    },
  };
}

/** Host memory used and the workload's RSS (MiB) over the operation: two lines told apart by dash and point shape too. */
export function memorySpec(t: TelemetryLike): Spec | undefined {
  const values: { t: number; series: string; mib: number }[] = [];
  for (const s of t.samples ?? []) {
    if (typeof s.memUsedBytes === 'number') values.push({ t: s.tMs / 1000, series: 'host memory used', mib: s.memUsedBytes / MIB });
    if (typeof s.rssBytes === 'number') values.push({ t: s.tMs / 1000, series: 'workload RSS', mib: s.rssBytes / MIB });
  }
  if (values.length < 2) return undefined;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    description: `Host memory used and the workload's resident memory in MiB during the ${t.operation ?? 'operation'}`,
    width: WIDTH, height: 140, config: CONFIG,
    data: { values },
    mark: { type: 'line', point: { size: 18 } },
    encoding: {
      x: { field: 't', type: 'quantitative', title: 'seconds since start', axis: { format: '.2~f', tickCount: 8 } },
      y: { field: 'mib', type: 'quantitative', title: 'MiB' },
      // One legend: colour and dash of the same field and title (dashes tell the lines apart without colour).
      color: { field: 'series', type: 'nominal', title: 'memory' },
      strokeDash: { field: 'series', type: 'nominal', title: 'memory' },
      tooltip: [{ field: 'series' }, { field: 't', title: 's' }, { field: 'mib', title: 'MiB', format: '.1f' }],
    },
  };
}

/** ferry's phases of the operation in ms (bars, each labelled with its value). */
export function phasesSpec(t: TelemetryLike): Spec | undefined {
  const values = Object.entries(t.phasesMs ?? {}).filter(([name, ms]) => name !== 'total' && Number.isFinite(ms)).map(([phase, ms]) => ({ phase, ms }));
  if (!values.length) return undefined;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    description: `Time of each phase of the ${t.operation ?? 'operation'} in milliseconds: ${values.map((v) => `${v.phase} ${Math.round(v.ms)}`).join(', ')}`,
    width: WIDTH, height: { step: 18 }, config: CONFIG,
    data: { values },
    layer: [
      { mark: { type: 'bar', color: '#1d4ed8' } },
      { mark: { type: 'text', align: 'left', dx: 3 }, encoding: { text: { field: 'ms', type: 'quantitative', format: '.0f' } } },
    ],
    encoding: {
      y: { field: 'phase', type: 'nominal', title: null, sort: null },
      // (room on the right for the longest bar's label)
      x: { field: 'ms', type: 'quantitative', title: 'ms', scale: { domain: [0, Math.max(1, ...values.map((v) => v.ms)) * 1.12] } },
      tooltip: [{ field: 'phase' }, { field: 'ms', title: 'ms', format: '.1f' }],
    },
  };
}

/** A job's phases on a time axis (a Gantt chart): where each started and how long it took. */
export function timelineSpec(phases: readonly TimelinePhase[], title = 'job'): Spec | undefined {
  if (!phases.length) return undefined;
  const values = phases.map((p, i) => ({ key: `${i + 1}. ${p.name}`, start: p.startMs, end: p.startMs + Math.max(p.ms ?? 0, 1), running: p.endMs === null ? 'running' : 'done' }));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    description: `Phase timeline of the ${title}: ${phases.map((p) => `${p.name} from ${Math.round(p.startMs)} ms${p.endMs !== null ? ` for ${Math.round(p.ms ?? 0)} ms` : ', running'}`).join('; ')}`,
    width: WIDTH, height: { step: 18 }, config: CONFIG,
    data: { values },
    mark: { type: 'bar', cornerRadius: 2, stroke: '#111827', strokeWidth: 1 },
    encoding: {
      y: { field: 'key', type: 'nominal', title: null, sort: null },
      x: { field: 'start', type: 'quantitative', title: 'ms since the first phase' },
      x2: { field: 'end' },
      color: { field: 'running', type: 'nominal', title: null, scale: { domain: ['done', 'running'], range: ['#1d4ed8', '#b45309'] } },
      strokeDash: { field: 'running', type: 'nominal', title: null, scale: { domain: ['done', 'running'], range: [[1, 0], [4, 2]] } },
      tooltip: [{ field: 'key', title: 'phase' }, { field: 'start', title: 'start ms', format: '.0f' }, { field: 'end', title: 'end ms', format: '.0f' }, { field: 'running', title: 'state' }],
    },
  };
}
