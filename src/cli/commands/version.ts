import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../criu/binary.js';
import type { Command } from '../command.js';
import { printJson } from '../output.js';

/** Replaced with `true` by scripts/build-cli.mjs (esbuild's define); undeclared in tsc's output. */
declare const FERRY_BUNDLED: boolean | undefined;

/** Which build of the CLI is running: the esbuild bundle (dist/bundle/) or tsc's output. */
export function cliBuild(): 'bundle' | 'dist' {
  return typeof FERRY_BUNDLED !== 'undefined' && FERRY_BUNDLED ? 'bundle' : 'dist';
}

export const command: Command = {
  summary: 'Print ferry\'s version (and whether the bundled CLI or tsc\'s output is running).',
  usage: 'ferry version [--json]',
  run(_argv, ctx) {
    const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string };
    if (ctx.json) printJson({ ferry: pkg.version, node: process.versions.node, build: cliBuild() });
    else process.stdout.write(`ferry ${pkg.version} (node ${process.versions.node}, ${cliBuild()})\n`);
    return Promise.resolve(0);
  },
};
