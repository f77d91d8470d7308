// ferry as an installed library, the way a user gets it: `npm pack` the project, install the
// tarball into a scratch project (offline, from npm's cache, which `npm ci` filled), type-check
// examples/library.ts (the README's example) against the package's own declarations under a
// strict consumer tsconfig, and run it: it checkpoints and restores a real process with CRIU.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { describe, it } from 'node:test';
import { PROJECT_ROOT, resolveCriuBinary } from './criu/binary.js';
import { killQuietly, withTempDir } from './testing/processes.js';

interface Ran { code: number; stdout: string; stderr: string; ms: number }

/** Runs a command with a watchdog (`timeoutMs`); never rejects. */
function run(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<Ran> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: opts.cwd, env: opts.env ?? cleanEnv(), timeout: opts.timeoutMs, maxBuffer: 64 * 2 ** 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr: err && typeof err.code !== 'number' ? `${stderr}\n${err.message}` : stderr, ms: Date.now() - started });
    });
  });
}

/** This process's environment without npm's per-run settings (a parent `npm run` would pass its own). */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k)) env[k] = v;
  return { ...env, ...extra };
}

function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

interface LockEntry { version: string; resolved?: string; dev?: boolean; devOptional?: boolean; [k: string]: unknown }
interface PackageJson { name: string; version: string; dependencies: Record<string, string>; [k: string]: unknown }

/**
 * The scratch project's lockfile: ferry from the tarball, and ferry's dependencies pinned to the
 * versions (and integrity hashes) of the project's own lockfile, which `npm ci` put in npm's
 * cache. Each gets its registry URL, so npm finds it in the cache without asking the registry
 * for its versions (the project's lockfile omits them: omit-lockfile-registry-resolved).
 */
function scratchLock(pkg: PackageJson, tarballSpec: string, registry: string, scratch: PackageJson): unknown {
  const lock = readJson<{ packages: Record<string, LockEntry> }>(join(PROJECT_ROOT, 'package-lock.json'));
  const base = registry.endsWith('/') ? registry : `${registry}/`;
  const packages: Record<string, unknown> = {
    '': { name: scratch.name, dependencies: scratch.dependencies, devDependencies: scratch['devDependencies'] },
    'node_modules/ferry': { version: pkg.version, resolved: tarballSpec, hasInstallScript: true, dependencies: pkg.dependencies },
  };
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path === '' || entry.dev === true || entry.devOptional === true) continue;
    const name = path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
    const file = `${name.split('/').pop() ?? name}-${entry.version}.tgz`;
    packages[path] = { ...entry, resolved: entry.resolved ?? `${base}${name}/-/${file}` };
  }
  return { name: scratch.name, lockfileVersion: 3, requires: true, packages };
}

describe('ferry as a library (packed, installed, typed)', () => {
  it('npm pack → install offline → tsc against the package\'s .d.ts → the README example checkpoints and restores', async (t) => {
    const criu = resolveCriuBinary();
    assert.ok(criu, 'no CRIU binary: run scripts/setup.sh');
    await withTempDir('library', async (tmp) => {
      const pkg = readJson<PackageJson>(join(PROJECT_ROOT, 'package.json'));

      // ---- npm pack (tsc has built dist/; the package's prepack would run it again)
      const pack = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], { cwd: PROJECT_ROOT, timeoutMs: 60_000 });
      assert.equal(pack.code, 0, pack.stderr);
      const [packed] = JSON.parse(pack.stdout) as { filename: string; size: number; unpackedSize: number; entryCount: number; files: { path: string }[] }[];
      assert.ok(packed);
      const files = packed.files.map((f) => f.path);
      t.diagnostic(`tarball ${packed.filename}: ${packed.size} bytes, ${packed.entryCount} files (${packed.unpackedSize} bytes unpacked)`);
      for (const f of ['package.json', 'README.md', 'dist/index.js', 'dist/index.d.ts', 'dist/errors.js', 'dist/errors.d.ts',
        'dist/engine/engine.d.ts', 'dist/cli/main.js', 'bin/ferry', 'native/binding.gyp', 'native/ferry_native.c', 'scripts/build-native.mjs']) {
        assert.ok(files.includes(f), `the tarball holds ${f}`);
      }
      const unwanted = files.filter((f) => /\.test\.(js|d\.ts)$|\.map$|^src\/|^native\/build\/|^dist\/bundle\/|^test\/|^\.deps\//.test(f));
      assert.deepEqual(unwanted, [], 'no tests, source maps, sources, the CLI bundle or the addon\'s build output');
      // Every relative import of a packed module (and declaration) is packed too.
      const packedSet = new Set(files);
      const dangling: string[] = [];
      for (const f of files.filter((p) => /\.(js|d\.ts)$/.test(p) && p.startsWith('dist/'))) {
        const text = readFileSync(join(PROJECT_ROOT, f), 'utf8');
        for (const m of text.matchAll(/(?:from\s+|import\()\s*'(\.{1,2}\/[^']+)'/g)) {
          const target = posix.join(posix.dirname(f), m[1] ?? '');
          const wanted = f.endsWith('.d.ts') ? target.replace(/\.js$/, '.d.ts') : target;
          if (!packedSet.has(wanted)) dangling.push(`${f} → ${m[1] ?? ''}`);
        }
      }
      assert.deepEqual(dangling, [], 'imports of files the package does not hold');
      const tarball = join(tmp, packed.filename);

      // ---- a scratch project that depends on the tarball, installed offline
      const app = join(tmp, 'app');
      mkdirSync(app);
      const lock = readJson<{ packages: Record<string, LockEntry> }>(join(PROJECT_ROOT, 'package-lock.json'));
      const typesNode = lock.packages['node_modules/@types/node']?.version;
      assert.ok(typesNode, 'the project\'s lockfile pins @types/node');
      const spec = `file:../${packed.filename}`;
      const scratch: PackageJson = {
        name: 'ferry-library-check', version: '0.0.0', private: true, type: 'module',
        dependencies: { ferry: spec },
        devDependencies: { '@types/node': typesNode },
        // npm 11's install-script policy (README "As a library"): ferry's build is approved (a
        // tarball is named by its path), zstd-napi's is denied: its addon is the project's own
        // build of the same version (below), which spares compiling zstd (~50 s on 2 cores).
        allowScripts: { [`file:${tarball}`]: true, 'zstd-napi': false },
      };
      writeFileSync(join(app, 'package.json'), JSON.stringify(scratch, null, 2) + '\n');
      const registry = await run('npm', ['config', 'get', 'registry'], { cwd: app, timeoutMs: 30_000 });
      assert.equal(registry.code, 0, registry.stderr);
      writeFileSync(join(app, 'package-lock.json'), JSON.stringify(scratchLock(pkg, spec, registry.stdout.trim(), scratch), null, 2) + '\n');
      // --strict-allow-scripts: an install script the policy does not cover fails the install,
      // so the approval above is proven to match (by an npm that has the policy: 11 here).
      const install = await run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--strict-allow-scripts'], { cwd: app, timeoutMs: 120_000 });
      assert.equal(install.code, 0, `npm install failed:\n${install.stdout}\n${install.stderr}`);
      t.diagnostic(`npm install --offline of the tarball: ${install.ms} ms`);
      assert.ok(install.ms < 60_000, `the install took ${install.ms} ms`);
      const installed = join(app, 'node_modules', 'ferry');
      assert.equal(readJson<PackageJson>(join(installed, 'package.json')).version, pkg.version);
      assert.ok(existsSync(join(installed, 'native', 'build', 'Release', 'ferry_native.node')), 'ferry\'s install script built its addon from the packed sources');
      const zstd = join(app, 'node_modules', 'zstd-napi');
      assert.equal(readJson<PackageJson>(join(zstd, 'package.json')).version, readJson<PackageJson>(join(PROJECT_ROOT, 'node_modules', 'zstd-napi', 'package.json')).version);
      // (An npm without the policy has run zstd-napi's script and built it; then it is kept.)
      if (!existsSync(join(zstd, 'build', 'Release', 'binding.node'))) {
        mkdirSync(join(zstd, 'build', 'Release'), { recursive: true });
        copyFileSync(join(PROJECT_ROOT, 'node_modules', 'zstd-napi', 'build', 'Release', 'binding.node'), join(zstd, 'build', 'Release', 'binding.node'));
      }

      // ---- the exports map: the two entries load, deep imports are refused
      const entries = await run(process.execPath, ['--input-type=module', '-e', `
        const main = await import('ferry'), errors = await import('ferry/errors');
        let deep; try { await import('ferry/dist/engine/engine.js'); deep = 'loaded'; } catch (e) { deep = e.code; }
        console.log(JSON.stringify({ main: Object.keys(main).sort(), errors: Object.keys(errors).sort(), same: main.FerryError === errors.FerryError, deep }));`],
      { cwd: app, timeoutMs: 30_000 });
      assert.equal(entries.code, 0, entries.stderr);
      const loaded = JSON.parse(entries.stdout) as { main: string[]; errors: string[]; same: boolean; deep: string };
      for (const name of ['createEngine', 'Store', 'CriuClient', 'FerryError', 'isFerryError', 'engineChannels', 'CriuOperationError']) {
        assert.ok(loaded.main.includes(name), `'ferry' exports ${name}`);
      }
      assert.deepEqual(loaded.errors, ['CriuOperationError', 'CriuTransportError', 'ERROR_CODES', 'FerryError', 'InterruptedError', 'errorCodeOf', 'isErrorCode', 'isFerryError']);
      assert.ok(loaded.same, 'one FerryError behind both entries');
      assert.match(loaded.deep, /^ERR_PACKAGE_PATH_NOT_EXPORTED$/, 'deep imports are refused'); // (Node's code, not ferry's)

      // ---- type-check the README's example against the installed package's declarations
      const exampleSource = readFileSync(join(PROJECT_ROOT, 'examples', 'library.ts'), 'utf8');
      assert.ok(readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8').includes('```ts\n' + exampleSource + '```\n'),
        'README.md shows examples/library.ts verbatim (its "As a library" section)');
      copyFileSync(join(PROJECT_ROOT, 'examples', 'library.ts'), join(app, 'library.ts'));
      copyFileSync(join(PROJECT_ROOT, 'examples', 'tsconfig.json'), join(app, 'tsconfig.json'));
      const tsc = await run(process.execPath, [join(PROJECT_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json', '--listFiles'], { cwd: app, timeoutMs: 120_000 });
      assert.equal(tsc.code, 0, `the example does not type-check against the package:\n${tsc.stdout}${tsc.stderr}`);
      const typed = tsc.stdout.split('\n');
      assert.ok(typed.includes(join(installed, 'dist', 'index.d.ts')), 'the types came from the installed package');
      const elsewhere = typed.filter((f) => f !== '' && !f.startsWith(app + '/') && !/\/typescript\/lib\/lib\.[^/]*\.d\.ts$/.test(f));
      assert.deepEqual(elsewhere, [], 'every declaration came from the scratch project (or TypeScript\'s own lib)');

      // ---- run it: a real checkpoint and restore through the installed package
      const store = join(tmp, 'store');
      mkdirSync(store);
      const env = cleanEnv({ FERRY_CRIU: criu.path, FERRY_MEMORY_TIER: join(tmp, 'memory') });
      const example = await run(process.execPath, ['library.js', store], { cwd: app, env, timeoutMs: 120_000 });
      // The example kills its workload itself; should it have died half-way, so does this test.
      for (const m of example.stdout.matchAll(/\bpid (\d+)/g)) killQuietly(Number(m[1]));
      assert.equal(example.code, 0, `the example failed:\n${example.stdout}${example.stderr}`);
      const result = JSON.parse(example.stdout.trim().split('\n').pop() ?? '') as { ok: boolean; pid: number; restoredPid: number; before: number; after: number; listed: string[]; removed: boolean };
      killQuietly(result.pid);
      killQuietly(result.restoredPid);
      assert.equal(result.ok, true);
      assert.ok(result.after > result.before, 'the restored counter went on');
      assert.deepEqual([...result.listed].sort(), ['counter', 'counter-copy'], 'the snapshot and its exported-and-imported copy');
      assert.equal(result.removed, true);
      t.diagnostic(example.stdout.trim().split('\n').slice(0, 3).join('; '));
    });
  });
});
