#!/usr/bin/env node
// Builds ferry's native addon (native/*.c → native/build/Release/ferry_native.node) when the
// package is installed: package.json's "install" script. (npm's own default, `node-gyp rebuild`,
// only applies to a binding.gyp at the package root; ferry's lives in native/.) node-gyp compiles
// against this Node's own headers, <prefix>/include/node, as scripts/setup.sh does: nothing is
// downloaded. npm_config_nodedir (`npm install --nodedir=DIR`) points elsewhere.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const nativeDir = join(here, '..', 'native');

function fail(message, hint) {
  process.stderr.write(`ferry: error: ${message}\nhint: ${hint}\n`);
  process.exit(1);
}

const nodedir = process.env['npm_config_nodedir'] || dirname(dirname(process.execPath));
if (!existsSync(join(nodedir, 'include', 'node', 'node_api.h'))) {
  fail(`Node's headers are missing (${join(nodedir, 'include', 'node', 'node_api.h')}), so ferry's native addon cannot be built`,
    'install the headers of this Node (Debian: they come with the nodejs package), or pass --nodedir=DIR to npm install');
}

// npm gives install scripts its own node-gyp (npm_config_node_gyp); run by hand, the project's.
let gyp = process.env['npm_config_node_gyp'];
if (!gyp) {
  try {
    gyp = createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    fail('node-gyp was not found', 'run this through npm (`npm rebuild ferry`), which brings its own node-gyp');
  }
}
const [cmd, args] = gyp.endsWith('.js') ? [process.execPath, [gyp]] : [gyp, []];
const r = spawnSync(cmd, [...args, 'rebuild', `--nodedir=${nodedir}`, '--loglevel=error'], { cwd: nativeDir, stdio: 'inherit' });
if (r.status !== 0) {
  fail(`building ferry's native addon failed (node-gyp ${r.error ? r.error.message : `exited ${r.status ?? r.signal}`})`,
    'it needs a C compiler, make, python3 and xxHash (Debian: build-essential python3 libxxhash-dev)');
}
