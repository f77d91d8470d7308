import { createReadStream } from 'node:fs';
import { once } from 'node:events';
import { importArchive } from '../../store/archive.js';
import { Store } from '../../store/store.js';
import { FerryError, errnoCode } from '../../util/errors.js';
import { formatBytes } from '../../util/format.js';
import { parse, type Command } from '../command.js';
import { printJson } from '../output.js';

export const command: Command = {
  summary: 'Import a snapshot archive written by `ferry export` (and the ancestors it carries) into the store.\n' +
    'Everything is checked before anything appears; FILE - reads stdin. --as NEWID imports it under another id.',
  usage: 'ferry import <FILE|-> [--as NEWID] [--tier memory|disk] [--json]',
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, { as: { type: 'string' }, tier: { type: 'string' } }, 'import');
    const [file, ...extra] = positionals;
    if (!file || extra.length) throw new FerryError('ERR_USAGE', 'import: give one archive file (or - for stdin)', { hint: 'see `ferry import --help`' });
    const tier = values.tier;
    if (tier !== undefined && tier !== 'memory' && tier !== 'disk') throw new FerryError('ERR_USAGE', `import: --tier must be memory or disk, not '${tier}'`, { hint: 'see `ferry import --help`' });
    let input;
    if (file === '-') input = process.stdin;
    else {
      input = createReadStream(file);
      try {
        await once(input, 'open');
      } catch (err) {
        throw new FerryError('ERR_USAGE', `import: cannot read ${file} (${errnoCode(err) ?? (err as Error).message})`, { cause: err, hint: 'give the path of an archive written by `ferry export`' });
      }
    }
    const r = await importArchive(new Store({ root: ctx.store }), input, {
      source: file === '-' ? 'stdin' : file,
      ...(tier !== undefined ? { tier } : {}),
      ...(values.as !== undefined ? { as: values.as } : {}),
    });
    if (ctx.json) printJson(r);
    else {
      process.stdout.write(`${r.snapshot}\n`);
      process.stderr.write(`imported ${r.imported.join(', ') || 'nothing new'} into the ${r.tier} tier` +
        `${r.present.length ? ` (already present: ${r.present.join(', ')})` : ''}: ${formatBytes(r.bytes)} from ${formatBytes(r.archiveBytes)} (${r.durationMs} ms)\n`);
    }
    return 0;
  },
};
