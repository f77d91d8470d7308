// vega and vega-lite, loaded only when a chart is shown (esbuild puts them in a chunk of their own).
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { Spec } from '../charts.js';

/** Draws the spec as SVG into `el`; returns what frees the view. */
export async function draw(el: HTMLElement, spec: Spec): Promise<() => void> {
  const vl = compile(spec as unknown as TopLevelSpec);
  const view = new vega.View(vega.parse(vl.spec), { renderer: 'svg', container: el, hover: true });
  await view.runAsync();
  return () => view.finalize();
}
