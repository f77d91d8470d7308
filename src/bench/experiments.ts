import { runConcurrency } from './concurrency.js';
import { runDedupExperiment } from './dedup.js';
import type { BenchContext, ExperimentOutcome, ExperimentResult } from './harness.js';
import { runMemory } from './memory.js';
import { defaultOptions as overheadDefaults, runOverhead, type OverheadReport } from './overhead.js';
import { runWarmstart } from './warmstart.js';

/** Every experiment `ferry bench` knows, in the order `all` runs them. */
export const EXPERIMENTS = ['memory', 'concurrency', 'warmstart', 'dedup', 'overhead'] as const;
export type ExperimentName = (typeof EXPERIMENTS)[number];

export function experiment(name: ExperimentName): (ctx: BenchContext) => Promise<ExperimentOutcome> {
  switch (name) {
    case 'memory': return (ctx) => runMemory(ctx);
    case 'concurrency': return (ctx) => runConcurrency(ctx);
    case 'warmstart': return (ctx) => runWarmstart(ctx);
    case 'overhead': return overheadExperiment;
    case 'dedup': return (ctx) => runDedupExperiment(ctx);
  }
}

/** `overhead` is src/bench/overhead.ts (its own report); this shows it in the harness's terms. */
async function overheadExperiment(ctx: BenchContext): Promise<ExperimentResult> {
  const o = overheadDefaults(ctx.quick);
  o.baseDir = ctx.tmpfsDir;
  o.progress = (line) => ctx.say(line);
  return overheadResult(await runOverhead(o));
}

export function overheadResult(r: OverheadReport): ExperimentResult {
  const d = r.results.detail;
  const label = { engine: `engine, ${r.workloadMiB} MiB`, tiny: `engine, ${r.tinyMiB} MiB`, cli: `CLI, ${r.tinyMiB} MiB`, node: 'node -e 0' } as const;
  const bars = r.samples.filter((s) => s.phase !== 'node').map((s) => ({ what: `${label[s.phase]}, ${s.op}`, arm: s.arm === 'ferry' ? 'ferry' : 'raw criu CLI', ms: s.ms }));
  const f = (k: string, digits = 1): string => {
    const s = d[k];
    return s ? `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})` : '-';
  };
  return {
    name: 'overhead',
    title: 'What ferry adds on top of raw CRIU',
    question: 'For the same work into the same tmpfs: how much slower (or faster) is ferry than the `criu` CLI, as a ratio and in ms?',
    params: { workloadMiB: r.workloadMiB, tinyMiB: r.tinyMiB, reps: r.reps },
    durationMs: 0,
    summary: r.results,
    charts: [{
      id: 'overhead', title: 'ferry or the raw criu CLI: how long does the same work take?',
      caption: 'Medians (bars) and every sample (ticks); the ratios are taken pair by pair, interleaved (see the table). runc is not measured here.',
      spec: {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json', width: 460, height: 300, data: { values: bars },
        encoding: { y: { field: 'what', type: 'nominal', title: null, sort: [...new Set(bars.map((b) => b.what))] }, yOffset: { field: 'arm' }, color: { field: 'arm', type: 'nominal', title: null } },
        layer: [
          { mark: { type: 'bar', tooltip: true }, encoding: { x: { aggregate: 'median', field: 'ms', type: 'quantitative', title: 'ms' } } },
          { mark: { type: 'tick', color: 'black' }, encoding: { x: { field: 'ms', type: 'quantitative' } } },
        ],
      },
    }],
    tables: [{
      title: 'Pair by pair: median (min–max)',
      columns: ['work', 'ferry ms', 'raw criu ms', 'ferry / raw', 'ferry − raw ms'],
      rows: [
        [`engine, ${r.workloadMiB} MiB, dump`, f('engineFerryDumpMs'), f('engineRawDumpMs'), f('engineDumpRatio', 3), f('engineDumpAddedMs')],
        [`engine, ${r.workloadMiB} MiB, restore`, f('engineFerryRestoreMs'), f('engineRawRestoreMs'), f('engineRestoreRatio', 3), f('engineRestoreAddedMs')],
        [`engine, ${r.tinyMiB} MiB, dump`, f('tinyFerryDumpMs'), f('tinyRawDumpMs'), '', f('tinyDumpAddedMs')],
        [`engine, ${r.tinyMiB} MiB, restore`, f('tinyFerryRestoreMs'), f('tinyRawRestoreMs'), '', f('tinyRestoreAddedMs')],
        [`CLI, ${r.tinyMiB} MiB, dump`, f('cliFerryDumpMs'), f('cliRawDumpMs'), '', f('cliDumpAddedMs')],
        [`CLI, ${r.tinyMiB} MiB, restore`, f('cliFerryRestoreMs'), f('cliRawRestoreMs'), '', f('cliRestoreAddedMs')],
        ['node -e 0', f('nodeStartupMs'), '', '', ''],
      ],
    }],
    notes: ['runc is not an arm yet: this-machine.md measured `runc checkpoint`/`restore` no different from raw CRIU on the same memory.'],
    samples: r.samples,
  };
}

