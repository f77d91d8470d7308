#!/usr/bin/env node
// Bundles the command line (tsc's dist/cli/main.js and what it imports) into one CommonJS file,
// dist/bundle/ferry.cjs, with esbuild. Why: on Node 20 a command spent ~100 ms loading ~100 ES
// modules, and merely starting Node's ES module loader costs ~30 ms; a CommonJS file needs
// neither. The verbs stay lazy (esbuild evaluates a module only when main() imports it), and every
// one of them is in the bundle, so each of ferry's modules exists once per process (nothing is
// loaded a second time from tsc's output beside it).
// Beside it, inputs.json lists every file it was built from with its size and mtime; bin/ferry
// runs the bundle only while all of them are unchanged, tsc's output otherwise, so a later `tsc`
// that changes any of them never leaves a stale CLI behind (and one that does not, keeps it).
// Run after tsc (scripts/setup.sh does): node scripts/build-cli.mjs
import { build } from 'esbuild';
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DIST = join(ROOT, 'dist');
const OUT = join(DIST, 'bundle');
const NEXT = join(DIST, `.bundle-next-${process.pid}`);
const OLD = join(DIST, `.bundle-old-${process.pid}`);

// Only pure-JS packages on the hot path are bundled; every other dependency (native addons,
// big optional ones such as vega) stays an ordinary import from node_modules.
const BUNDLED_PACKAGES = new Set(['@bufbuild/protobuf', 'zod']);
// Packages that are ES modules only (top-level await): the code import()s them where it needs them
// (bench/report.ts), which stays an import() in the bundle; a static import would become require().
const ESM_ONLY_PACKAGES = new Set(['vega', 'vega-lite']);

function fail(message) {
  rmSync(NEXT, { recursive: true, force: true });
  process.stderr.write(`build-cli: error: ${message}\n`);
  process.exit(1);
}

try {
  await stat(join(DIST, 'cli', 'main.js'));
} catch {
  fail('dist/cli/main.js is missing; run tsc first (node_modules/.bin/tsc -p tsconfig.json)');
}

const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8'));
const external = Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })
  .filter((name) => !BUNDLED_PACKAGES.has(name))
  .flatMap((name) => [name, `${name}/*`]);

/**
 * Reads every input itself, between two stats that must agree, and keeps that stat: so the size
 * and mtime recorded in inputs.json are those of the content bundled, even while a concurrent
 * `tsc` rewrites files (a rewrite after the read changes the mtime: bin/ferry sees a stale bundle).
 */
const seen = new Map();
const statted = {
  name: 'statted-inputs',
  setup(b) {
    b.onLoad({ filter: /\.[cm]?js$/ }, async (args) => {
      for (let attempt = 0; ; attempt++) {
        const before = await stat(args.path, { bigint: true });
        const contents = await readFile(args.path, 'utf8');
        const after = await stat(args.path, { bigint: true });
        if (before.mtimeNs === after.mtimeNs && before.size === after.size) {
          seen.set(relative(ROOT, args.path), [Number(after.size), String(after.mtimeNs)]);
          return { contents, loader: 'js', resolveDir: dirname(args.path) };
        }
        if (attempt === 20) throw new Error(`${args.path} keeps changing while it is read`);
        await new Promise((r) => setTimeout(r, 50));
      }
    });
  },
};

await rm(NEXT, { recursive: true, force: true });
const result = await build({
  absWorkingDir: ROOT,
  entryPoints: [join(DIST, 'cli', 'main.js')],
  outfile: join(NEXT, 'ferry.cjs'),
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  external,
  plugins: [statted],
  // ES module code finds files next to itself through import.meta.url; in CommonJS that is
  // the bundle's own file, which sits two directories below the project root exactly as
  // every dist/<layer>/<file>.js does (checked below), so relative paths resolve the same.
  define: { 'import.meta.url': '__ferryModuleUrl', FERRY_BUNDLED: 'true' },
  banner: {
    // ("use strict" first: ES modules are strict, and a banner would otherwise push esbuild's
    // own directive out of the prologue.)
    // The import() of an ES-module-only package (rewritten below) goes through bin/ferry's, which
    // passes it in as __ferryImport: code compiled with V8's code cache (vm.Script) has no import()
    // of its own on Node 20. Required directly, the bundle uses its own.
    js: '"use strict";\nconst __ferryModuleUrl = require("node:url").pathToFileURL(__filename).href;\n' +
      'const __ferryImportOf = typeof __ferryImport === "function" ? __ferryImport : (specifier) => import(specifier);',
  },
  write: false,
  metafile: true,
  logLevel: 'warning',
}).catch((err) => fail(err.message));

// Modules that use import.meta must sit at dist/<dir>/<file>.js (see above).
for (const input of Object.keys(result.metafile.inputs)) {
  const rel = relative(DIST, join(ROOT, input));
  if (rel.startsWith('..')) continue; // node_modules
  const src = await readFile(join(DIST, rel), 'utf8');
  if (src.includes('import.meta') && rel.split(sep).length !== 2) {
    fail(`dist/${rel} uses import.meta but is not at dist/<dir>/<file>.js, so it would resolve ` +
      'paths differently inside the bundle; find files through PROJECT_ROOT (src/criu/binary.ts) instead');
  }
}
// Every package the bundle require()s must be loadable by require() (not an ES-module-only one).
const requireFromDist = createRequire(join(DIST, 'cli', 'main.js'));
for (const out of Object.values(result.metafile.outputs)) {
  for (const imp of out.imports) {
    if (!imp.external || imp.kind !== 'require-call' || imp.path.startsWith('node:') || imp.path.startsWith('.')) continue;
    try {
      requireFromDist(imp.path);
    } catch (err) {
      if (err.code === 'MODULE_NOT_FOUND') continue; // optional at run time; its verb reports it
      fail(`the bundle would require('${imp.path}'), which fails (${err.code ?? err.message}); ` +
        'import() it where it is used (as bench/report.ts does vega) and add it to ESM_ONLY_PACKAGES in scripts/build-cli.mjs');
    }
  }
}

// One copy of each module: the bundle loads nothing from tsc's output (no relative external), and
// its only import() calls are of the ES-module-only packages.
if (result.outputFiles.length !== 1) fail(`expected one output file, got ${result.outputFiles.length}`);
const [output] = result.outputFiles;
for (const out of Object.values(result.metafile.outputs)) {
  for (const imp of out.imports) {
    if (imp.external && imp.path.startsWith('.')) fail(`the bundle loads ${imp.path} from outside itself, a second copy of ferry's code`);
  }
}
const bannerEnd = output.text.indexOf('\n', output.text.indexOf('const __ferryImportOf'));
let code = output.text.slice(bannerEnd);
for (const pkg of ESM_ONLY_PACKAGES) code = code.replaceAll(`import("${pkg}")`, `__ferryImportOf("${pkg}")`);
const stray = code.match(/\bimport\([^)]{0,80}\)/);
if (stray) {
  fail(`the bundle calls ${stray[0]}, which fails under bin/ferry's code cache; only the ES-module-only packages ` +
    `(${[...ESM_ONLY_PACKAGES].join(', ')}) may be import()ed (add one to ESM_ONLY_PACKAGES), everything else is a static import`);
}
await mkdir(NEXT, { recursive: true });
await writeFile(join(NEXT, 'ferry.cjs'), output.text.slice(0, bannerEnd) + code);

// What bin/ferry checks before it trusts the bundle: [path relative to the root, size, mtime ns].
const inputs = [];
for (const input of Object.keys(result.metafile.inputs)) {
  const st = seen.get(relative(ROOT, join(ROOT, input)));
  if (!st) fail(`no recorded stat for ${input}`);
  inputs.push([input, ...st]);
}
await writeFile(join(NEXT, 'inputs.json'), JSON.stringify(inputs) + '\n');

// Swap in atomically enough for concurrent users: while dist/bundle is absent, bin/ferry
// falls back to dist/cli/main.js.
await rename(OUT, OLD).catch(() => undefined);
await rename(NEXT, OUT);
await rm(OLD, { recursive: true, force: true });
// One run writes V8's code cache beside the bundle (bin/ferry does that when there is none);
// `checkpoint --help` loads the modules of the hottest path.
await new Promise((resolve) => {
  execFile(process.execPath, [join(ROOT, 'bin', 'ferry'), 'checkpoint', '--help'], { env: { ...process.env, FERRY_BUNDLE: '1' } }, (err, _o, stderr) => {
    if (err) process.stderr.write(`build-cli: warning: the bundle's first run failed (no code cache yet): ${stderr.trim() || err.message}\n`);
    resolve();
  });
});
const bytes = Object.values(result.metafile.outputs).reduce((a, o) => a + o.bytes, 0);
process.stdout.write(`build-cli: dist/bundle/ferry.cjs (${Math.round(bytes / 1024)} KiB)\n`);
