#!/usr/bin/env node
// Bundles the command line (tsc's dist/cli/main.js and what it imports) into one CommonJS file,
// dist/bundle/ferry.cjs, with esbuild. Why: on Node 20 a command spent ~100 ms loading ~100 ES
// modules, and merely starting Node's ES module loader costs ~30 ms; a CommonJS file needs
// neither. The verbs stay lazy (esbuild evaluates a module only when main() imports it).
// Beside it, inputs.json lists every file it was built from with its size and mtime; bin/ferry
// runs the bundle only while all of them are unchanged, tsc's output otherwise, so a later `tsc`
// that changes any of them never leaves a stale CLI behind (and one that does not, keeps it).
// Run after tsc (scripts/setup.sh does): node scripts/build-cli.mjs
import { build } from 'esbuild';
import { readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
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
const BUNDLED_PACKAGES = new Set(['@bufbuild/protobuf']);
// Verbs left to tsc's ES module output (imported from the bundle on demand): their
// dependencies cannot be loaded with require() (vega and vega-lite are ES modules only).
const ESM_VERBS = new Set(['bench']);

function fail(message) {
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

/** `import('./commands/<verb>.js')` of an ESM_VERBS verb → tsc's file, imported at run time. */
const esmVerbs = {
  name: 'esm-verbs',
  setup(b) {
    b.onResolve({ filter: /^\.\/commands\/[a-z-]+\.js$/ }, (args) => {
      const verb = args.path.slice('./commands/'.length, -'.js'.length);
      if (!ESM_VERBS.has(verb) || args.kind !== 'dynamic-import') return undefined;
      // Relative to dist/bundle/ferry.cjs.
      return { path: `../cli/commands/${verb}.js`, external: true };
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
  plugins: [esmVerbs],
  // ES module code finds files next to itself through import.meta.url; in CommonJS that is
  // the bundle's own file, which sits two directories below the project root exactly as
  // every dist/<layer>/<file>.js does (checked below), so relative paths resolve the same.
  define: { 'import.meta.url': '__ferryModuleUrl', FERRY_BUNDLED: 'true' },
  banner: { js: 'const __ferryModuleUrl = require("node:url").pathToFileURL(__filename).href;' },
  metafile: true,
  logLevel: 'warning',
}).catch((err) => fail(err.message));

// Modules that use import.meta must sit at dist/<dir>/<file>.js (see above).
for (const input of Object.keys(result.metafile.inputs)) {
  const rel = relative(DIST, join(ROOT, input));
  if (rel.startsWith('..')) continue; // node_modules
  const src = await readFile(join(DIST, rel), 'utf8');
  if (src.includes('import.meta') && rel.split(sep).length !== 2) {
    await rm(NEXT, { recursive: true, force: true });
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
      await rm(NEXT, { recursive: true, force: true });
      fail(`the bundle would require('${imp.path}'), which fails (${err.code ?? err.message}); ` +
        'add the verb that needs it to ESM_VERBS in scripts/build-cli.mjs');
    }
  }
}

// What bin/ferry checks before it trusts the bundle: [path relative to the root, size, mtime ns].
const inputs = [];
for (const input of Object.keys(result.metafile.inputs)) {
  const st = await stat(join(ROOT, input), { bigint: true });
  inputs.push([input, Number(st.size), String(st.mtimeNs)]);
}
await writeFile(join(NEXT, 'inputs.json'), JSON.stringify(inputs) + '\n');

// Swap in atomically enough for concurrent users: while dist/bundle is absent, bin/ferry
// falls back to dist/cli/main.js.
await rename(OUT, OLD).catch(() => undefined);
await rename(NEXT, OUT);
await rm(OLD, { recursive: true, force: true });
const bytes = Object.values(result.metafile.outputs).reduce((a, o) => a + o.bytes, 0);
process.stdout.write(`build-cli: dist/bundle/ferry.cjs (${Math.round(bytes / 1024)} KiB)\n`);
