import type { TopLevelSpec } from 'vega-lite';
import { formatBytes } from '../util/format.js';
import { isSkipped, type BenchRun, type Chart, type ExperimentResult, type Table } from './harness.js';

/**
 * The HTML report of a bench run: one self-contained file (no scripts, no network), every chart
 * rendered to SVG here in Node by vega-lite → vega, one chart per question the seeds asked.
 */

const esc = (s: unknown): string => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]!));

const CONFIG = {
  font: 'system-ui, -apple-system, Segoe UI, Roboto, sans-serif',
  axis: { labelFontSize: 11, titleFontSize: 12, gridColor: '#e5e7eb' },
  legend: { labelFontSize: 11, titleFontSize: 12 },
  range: { category: ['#2563eb', '#f59e0b', '#10b981', '#ef4444', '#8b5cf6', '#64748b'] },
  view: { stroke: null },
};

/** Renders one vega-lite spec to an SVG string (no DOM, no canvas). */
export async function renderSvg(spec: Record<string, unknown>): Promise<string> {
  // Imported here, when a chart is drawn: vega and vega-lite are ES modules only (top-level
  // await), which the CLI's CommonJS bundle (scripts/build-cli.mjs) can only import(), not require().
  const [vega, { compile }] = await Promise.all([import('vega'), import('vega-lite')]);
  const vl = compile({ ...spec, config: { ...CONFIG, ...(spec['config'] as object | undefined) } } as unknown as TopLevelSpec);
  const view = new vega.View(vega.parse(vl.spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

async function chartHtml(c: Chart): Promise<string> {
  let body: string;
  try {
    body = await renderSvg(c.spec);
  } catch (err) {
    body = `<p class="error">This chart could not be rendered: ${esc(err instanceof Error ? err.message : err)}</p>`;
  }
  return `<figure class="chart" id="${esc(c.id)}" data-chart="${esc(c.id)}">
<h3>${esc(c.title)}</h3>
${body}
<figcaption>${esc(c.caption)}</figcaption>
</figure>`;
}

function tableHtml(t: Table): string {
  return `<table><caption>${esc(t.title)}</caption>
<thead><tr>${t.columns.map((c) => `<th>${esc(c)}</th>`).join('')}</tr></thead>
<tbody>${t.rows.map((r) => `<tr>${r.map((v) => `<td>${esc(v)}</td>`).join('')}</tr>`).join('\n')}</tbody></table>`;
}

async function experimentHtml(e: ExperimentResult): Promise<string> {
  const charts: string[] = [];
  for (const c of e.charts) charts.push(await chartHtml(c));
  return `<section class="experiment" id="exp-${esc(e.name)}">
<h2>${esc(e.title)} <span class="name">ferry bench ${esc(e.name)}</span></h2>
<p class="question">${esc(e.question)}</p>
<p class="meta">took ${(e.durationMs / 1000).toFixed(1)} s · parameters: <code>${esc(JSON.stringify(e.params))}</code></p>
${charts.join('\n')}
${e.tables.map(tableHtml).join('\n')}
${e.notes.length ? `<ul class="notes">${e.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>` : ''}
<details><summary>summary as JSON</summary><pre>${esc(JSON.stringify(e.summary, null, 2))}</pre></details>
</section>`;
}

const CSS = `
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#111827;max-width:1100px;margin:2rem auto;padding:0 1.5rem;background:#fff}
h1{font-size:1.7rem;margin-bottom:.2rem}h2{margin-top:2.5rem;border-bottom:2px solid #e5e7eb;padding-bottom:.3rem}
h2 .name{font:500 .8rem ui-monospace,monospace;color:#6b7280;margin-left:.6rem}
h3{font-size:1.05rem;margin:.2rem 0 .6rem}
.lede{color:#374151}.meta{color:#6b7280;font-size:.85rem}.question{font-style:italic;color:#374151}
.facts{display:grid;grid-template-columns:repeat(auto-fit,minmax(220px,1fr));gap:.5rem 1.5rem;background:#f9fafb;border:1px solid #e5e7eb;border-radius:8px;padding:.8rem 1rem}
.facts div span{display:block;color:#6b7280;font-size:.75rem;text-transform:uppercase;letter-spacing:.04em}
figure.chart{margin:1.5rem 0;padding:1rem;border:1px solid #e5e7eb;border-radius:8px;overflow-x:auto}
figcaption{color:#4b5563;font-size:.85rem;margin-top:.4rem}
table{border-collapse:collapse;margin:1rem 0;font-size:.85rem;font-variant-numeric:tabular-nums}
caption{text-align:left;font-weight:600;padding-bottom:.3rem}
th,td{border-bottom:1px solid #e5e7eb;padding:.3rem .7rem;text-align:right}th{background:#f9fafb}
td:nth-child(-n+2),th:nth-child(-n+2){text-align:left}
.skipped{background:#fffbeb;border:1px solid #fcd34d;border-radius:8px;padding:.6rem 1rem}
.error{color:#b91c1c}nav a{margin-right:1rem}
pre{background:#f9fafb;padding:.8rem;overflow-x:auto;font-size:.8rem}`;

export async function renderReport(run: BenchRun): Promise<string> {
  const h = run.host;
  const sections: string[] = [];
  for (const r of run.results) {
    if (isSkipped(r)) {
      sections.push(`<section class="experiment skipped-experiment" id="exp-${esc(r.name)}"><h2>${esc(r.name)} <span class="name">ferry bench ${esc(r.name)}</span></h2><p class="skipped">Skipped: ${esc(r.reason)}</p></section>`);
    } else {
      sections.push(await experimentHtml(r));
    }
  }
  const fact = (k: string, v: string): string => `<div><span>${esc(k)}</span>${esc(v)}</div>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>ferry bench ${esc(run.experiments.join(', '))} — ${esc(h.hostname)}</title>
<style>${CSS}</style></head>
<body>
<h1>ferry bench: ${esc(run.experiments.join(', '))}${run.quick ? ' (quick)' : ''}</h1>
<p class="lede">Every comparison here is a ratio or a difference measured <strong>in the same run, on the same machine</strong>, with the arms interleaved;
absolute numbers depend on the machine. The machine's own noise during this run: ${esc(run.noise.what)} took
<strong>${run.noise.ms.median} ms (min ${run.noise.ms.min} – max ${run.noise.ms.max})</strong>, a spread of ${run.noise.spreadPct}%.
Differences smaller than that spread are not evidence.${run.quick ? ' This is a <strong>--quick</strong> run: small sizes, one repetition — a smoke test, not a measurement.' : ''}</p>
<div class="facts">
${fact('host', h.hostname)}${fact('kernel', h.kernel)}${fact('CPU', `${h.cpus} × ${h.cpuModel}`)}${fact('memory', h.memTotalBytes ? formatBytes(h.memTotalBytes) : '?')}
${fact('CRIU', h.criuVersion)}${fact('Node.js', h.node)}${fact('started', run.startedAt)}${fact('duration', `${(run.durationMs / 1000).toFixed(1)} s`)}
</div>
<nav>${run.results.map((r) => `<a href="#exp-${esc(r.name)}">${esc(r.name)}</a>`).join('')}</nav>
${sections.join('\n')}
<p class="meta">Raw samples of every experiment are in the JSON file written beside this report.</p>
</body></html>
`;
}

/** The run as text for the terminal: each experiment's tables, and what was skipped. */
export function formatRunText(run: BenchRun): string {
  const out: string[] = [
    `ferry bench ${run.experiments.join(', ')}${run.quick ? ' (quick)' : ''} — ${run.host.hostname}, kernel ${run.host.kernel}, CRIU ${run.host.criuVersion}, node ${run.host.node}`,
    `noise: ${run.noise.what}: ${run.noise.ms.median} ms (${run.noise.ms.min}–${run.noise.ms.max}); comparisons are measured in this run`,
  ];
  for (const r of run.results) {
    out.push('');
    if (isSkipped(r)) {
      out.push(`${r.name}: skipped: ${r.reason}`);
      continue;
    }
    out.push(`${r.name}: ${r.title} (${(r.durationMs / 1000).toFixed(1)} s)`);
    for (const t of r.tables) {
      const cells = [t.columns, ...t.rows.map((row) => row.map(String))];
      const w = t.columns.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? '').length)));
      out.push(`  ${t.title}`);
      for (const row of cells) out.push(`  ${row.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd()}`);
    }
    for (const c of r.charts) if (/R²/.test(c.caption)) out.push(`  ${c.title} ${c.caption}`);
  }
  return out.join('\n') + '\n';
}
