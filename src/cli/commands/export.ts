import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { access, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { once } from 'node:events';
import { exportSnapshot } from '../../store/archive.js';
import { Store } from '../../store/store.js';
import { FerryError, errnoCode } from '../../util/errors.js';
import { formatBytes } from '../../util/format.js';
import { parse, positiveInt, type Command } from '../command.js';
import { printJson } from '../output.js';

export const command: Command = {
  summary: 'Write a snapshot, with every ancestor it builds on, to one archive (tar + zstd), streaming.\n' +
    'FILE - writes to stdout (then --json goes to stderr). An existing FILE is not overwritten.',
  usage: 'ferry export <snapshot> <FILE|-> [--level N] [--json]',
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, { level: { type: 'string' } }, 'export');
    const [id, file, ...extra] = positionals;
    if (!id || !file || extra.length) throw new FerryError('ERR_USAGE', 'export: give a snapshot id and a file (or - for stdout)', { hint: 'see `ferry export --help`' });
    const level = values.level === undefined ? undefined : positiveInt(values.level, '--level', 'export');
    if (level !== undefined && level > 19) throw new FerryError('ERR_USAGE', 'export: --level must be 1…19', { hint: 'see `ferry export --help`' });
    const store = new Store({ root: ctx.store });
    const opts = level === undefined ? {} : { level };
    let r;
    if (file === '-') {
      if (process.stdout.isTTY) throw new FerryError('ERR_USAGE', 'export: refusing to write an archive to a terminal', { hint: 'redirect stdout to a file or a pipe, or give a FILE' });
      r = await exportSnapshot(store, id, process.stdout, opts);
    } else {
      if (await access(file).then(() => true, () => false)) {
        throw new FerryError('ERR_FILE_EXISTS', `export: ${file} already exists`, { hint: 'remove it, or give another file name' });
      }
      // Written under a temporary name and renamed when complete: a failed export leaves no file.
      const tmp = join(dirname(file), `.${basename(file)}.tmp-${randomBytes(4).toString('hex')}`);
      const out = createWriteStream(tmp, { flags: 'wx', mode: 0o600 });
      try {
        await once(out, 'open');
        r = await exportSnapshot(store, id, out, opts);
        await rename(tmp, file);
      } catch (err) {
        out.destroy();
        await rm(tmp, { force: true });
        if (errnoCode(err)) throw new FerryError('ERR_EXPORT', `export: cannot write ${file}: ${(err as Error).message}`, { cause: err, hint: 'check the directory exists, is writable and has room' });
        throw err;
      }
    }
    const result = { snapshot: r.snapshot, chain: r.chain, file, members: r.members, bytes: r.bytes, archiveBytes: r.archiveBytes, durationMs: r.durationMs };
    if (ctx.json) {
      if (file === '-') process.stderr.write(JSON.stringify(result, null, 2) + '\n');
      else printJson(result);
    } else {
      process.stderr.write(`exported ${r.snapshot}${r.chain.length > 1 ? ` with ${r.chain.length - 1} ancestor(s)` : ''} to ${file === '-' ? 'stdout' : file}: ` +
        `${formatBytes(r.bytes)} in ${formatBytes(r.archiveBytes)} (${r.durationMs} ms)\n`);
    }
    return 0;
  },
};
