import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

/**
 * Opens an HTML report in headless Chromium (Debian's /usr/bin/chromium, a fresh profile, no
 * network) and returns what each chart looks like there; used by the report's tests.
 */

export interface RenderedChart { id: string; width: number; height: number; marks: number; hasSvg: boolean }
export interface RenderedReport { title: string; charts: RenderedChart[]; errors: string[]; skipped: string[] }

const IN_PAGE = `(() => ({
  charts: Array.from(document.querySelectorAll('figure.chart')).map((f) => {
    const svg = f.querySelector('svg');
    const box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
    // vega draws each mark set as <g class="mark-… role-mark"> holding one element per mark.
    const marks = svg ? Array.from(svg.querySelectorAll('g.role-mark')).reduce((n, g) => n + g.children.length, 0) : 0;
    return { id: f.getAttribute('data-chart') || '?', width: box.width, height: box.height, marks, hasSvg: !!svg };
  }),
  errors: Array.from(document.querySelectorAll('.error')).map((e) => e.textContent || ''),
  skipped: Array.from(document.querySelectorAll('.skipped-experiment')).map((e) => e.id),
}))()`;

export const CHROMIUM = process.env['FERRY_CHROMIUM'] ?? '/usr/bin/chromium';

export async function openReport(htmlPath: string): Promise<RenderedReport> {
  const profile = await mkdtemp(join(tmpdir(), 'ferry-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await context.newPage();
    // Self-contained means nothing is fetched: any request but the file itself fails the check.
    const requests: string[] = [];
    page.on('request', (r) => { if (!r.url().startsWith('file:')) requests.push(r.url()); });
    await page.goto(pathToFileURL(htmlPath).href, { waitUntil: 'load' });
    // Runs in the page (a string: this project's TypeScript has no DOM types).
    const found = await page.evaluate<{ charts: RenderedChart[]; errors: string[]; skipped: string[] }>(IN_PAGE);
    const { charts, errors, skipped } = found;
    return { title: await page.title(), charts, errors: [...errors, ...requests.map((u) => `fetched ${u}`)], skipped };
  } finally {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  }
}

/** Throws unless every chart rendered with a non-zero size and has marks. */
export function assertChartsRendered(r: RenderedReport, minCharts = 1): void {
  const bad = r.charts.filter((c) => !c.hasSvg || c.width <= 0 || c.height <= 0 || c.marks === 0);
  const problems = [
    ...(r.charts.length < minCharts ? [`${r.charts.length} charts, expected at least ${minCharts}`] : []),
    ...bad.map((c) => `chart ${c.id}: ${c.hasSvg ? `${c.width}×${c.height}, ${c.marks} marks` : 'no SVG'}`),
    ...r.errors,
  ];
  if (problems.length) throw new Error(`the report did not render: ${problems.join('; ')}`);
}
