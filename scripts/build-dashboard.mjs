#!/usr/bin/env node
// Builds the agent's dashboard (README "Dashboard") into dist/dashboard-ui/: src/dashboard/ui/*.tsx
// (preact views, the agent's typed client, vega-lite charts) bundled by esbuild for the browser,
// beside index.html and app.css. Everything the page loads is in that directory, served by the
// agent (src/agent/routes/dashboard.ts): no CDN, nothing fetched at run time. vega and vega-lite
// sit in a chunk of their own, loaded when a chart is first shown.
// First the views are type-checked (their own tsconfig: DOM types, JSX); --no-check skips that.
// Nothing is done when the build is newer than every file it was made from (inputs.json: esbuild's
// inputs, the page's own files, the type-check's config): setup stays quick; --force rebuilds.
// Run after npm ci (scripts/setup.sh and `make build` do): node scripts/build-dashboard.mjs
import { build } from 'esbuild';
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { copyFile, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const UI = join(ROOT, 'src', 'dashboard', 'ui');
const OUT = join(ROOT, 'dist', 'dashboard-ui');
const NEXT = join(ROOT, 'dist', `.dashboard-ui-next-${process.pid}`);
const OLD = join(ROOT, 'dist', `.dashboard-ui-old-${process.pid}`);

function fail(message) {
  rmSync(NEXT, { recursive: true, force: true });
  process.stderr.write(`build-dashboard: error: ${message}\n`);
  process.exit(1);
}

/** True when dist/dashboard-ui was built after the last change of any of its inputs. */
async function upToDate() {
  try {
    const built = (await stat(join(OUT, 'main.js'))).mtimeMs;
    const inputs = JSON.parse(await readFile(join(OUT, 'inputs.json'), 'utf8'));
    for (const f of inputs) if ((await stat(join(ROOT, f))).mtimeMs > built) return false;
    return inputs.length > 0;
  } catch {
    return false;
  }
}
if (!process.argv.includes('--force') && await upToDate()) {
  process.stdout.write('build-dashboard: dist/dashboard-ui/ is up to date\n');
  process.exit(0);
}

if (!process.argv.includes('--no-check')) {
  await new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(UI, 'tsconfig.json')], { cwd: ROOT, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) fail(`the dashboard's views do not type-check:\n${stdout}${stderr}`);
      resolve();
    });
  });
}

// The typed client's errors module reads signal numbers from node:os for the CLI's exit codes;
// the page never exits, so it gets an empty table.
const nodeShims = {
  name: 'node-shims',
  setup(b) {
    b.onResolve({ filter: /^node:os$/ }, () => ({ path: 'node:os', namespace: 'shim' }));
    b.onLoad({ filter: /.*/, namespace: 'shim' }, () => ({ contents: 'export const constants = { signals: {} };', loader: 'js' }));
    b.onResolve({ filter: /^node:/ }, (args) => ({ errors: [{ text: `${args.path} (imported by ${args.importer}) cannot run in the browser` }] }));
  },
};

await rm(NEXT, { recursive: true, force: true });
const result = await build({
  absWorkingDir: ROOT,
  entryPoints: [join(UI, 'main.tsx')],
  outdir: NEXT,
  entryNames: '[name]',
  chunkNames: 'chunk-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'browser',
  target: ['chrome115', 'firefox115', 'safari17'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  minify: true,
  legalComments: 'linked',
  define: { 'process.env.NODE_ENV': '"production"' },
  plugins: [nodeShims],
  metafile: true,
  logLevel: 'warning',
}).catch((err) => fail(err.message));
await copyFile(join(UI, 'index.html'), join(NEXT, 'index.html'));
await copyFile(join(UI, 'app.css'), join(NEXT, 'app.css'));
// What a later run compares against (node_modules' files count through package-lock.json).
const own = Object.keys(result.metafile.inputs).filter((f) => !f.includes('node_modules/') && !f.startsWith('shim:'));
const inputs = [...new Set([...own, 'src/dashboard/ui/index.html', 'src/dashboard/ui/app.css', 'src/dashboard/ui/tsconfig.json', 'package-lock.json', 'scripts/build-dashboard.mjs'])];
await writeFile(join(NEXT, 'inputs.json'), JSON.stringify(inputs) + '\n');

await mkdir(dirname(OUT), { recursive: true });
await rename(OUT, OLD).catch(() => undefined);
await rename(NEXT, OUT);
await rm(OLD, { recursive: true, force: true });
const sizes = Object.entries(result.metafile.outputs).filter(([f]) => f.endsWith('.js'))
  .map(([f, o]) => `${f.slice(f.lastIndexOf('/') + 1)} ${Math.round(o.bytes / 1024)} KiB`);
process.stdout.write(`build-dashboard: dist/dashboard-ui/ (${sizes.join(', ')})\n`);
