import { readFileSync } from 'node:fs';
import type { Command } from '../command.js';
import { printJson } from '../output.js';

export const command: Command = {
  summary: 'Print ferry\'s version.',
  usage: 'ferry version [--json]',
  run(_argv, ctx) {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    if (ctx.json) printJson({ ferry: pkg.version, node: process.versions.node });
    else process.stdout.write(`ferry ${pkg.version} (node ${process.versions.node})\n`);
    return Promise.resolve(0);
  },
};
