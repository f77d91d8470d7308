import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { access, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { once } from 'node:events';
import { exportSnapshot, resolveChain } from '../../store/archive.js';
import { verifyChecksums } from '../../store/checksums.js';
import { Store } from '../../store/store.js';
import { FerryError, errnoCode, isFerryError } from '../../util/errors.js';
import { formatBytes } from '../../util/format.js';
import { parse, positiveInt, type Command } from '../command.js';
import { printJson } from '../output.js';

export const command: Command = {
  summary: 'Write a snapshot, with every ancestor it builds on, to one archive (tar + zstd), streaming.\n' +
    'Every image is checked against its checksum first (--no-verify skips that): a damaged snapshot is\n' +
    'refused, naming the snapshot and the file.\n' +
    'FILE - writes to stdout (then --json goes to stderr). An existing FILE is not overwritten.',
  usage: 'ferry export <snapshot> <FILE|-> [--level N] [--no-verify] [--json]',
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, { level: { type: 'string' }, 'no-verify': { type: 'boolean' } }, 'export');
    const [id, file, ...extra] = positionals;
    if (!id || !file || extra.length) throw new FerryError('ERR_USAGE', 'export: give a snapshot id and a file (or - for stdout)', { hint: 'see `ferry export --help`' });
    const level = values.level === undefined ? undefined : positiveInt(values.level, '--level', 'export');
    if (level !== undefined && level > 19) throw new FerryError('ERR_USAGE', 'export: --level must be 1…19', { hint: 'see `ferry export --help`' });
    const store = new Store({ root: ctx.store });
    const opts = level === undefined ? {} : { level };
    const chain = await verifiedChain(store, id, values['no-verify'] !== true);
    let r;
    if (file === '-') {
      if (process.stdout.isTTY) throw new FerryError('ERR_USAGE', 'export: refusing to write an archive to a terminal', { hint: 'redirect stdout to a file or a pipe, or give a FILE' });
      r = await exportSnapshot(store, id, process.stdout, opts).catch((err: unknown) => { throw blame(err, chain, file); });
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
        throw blame(err, chain, file);
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

/**
 * The snapshot and its ancestors, each checked against its manifest's checksums before anything
 * is written: a damaged snapshot is refused with its id and the damaged file (the import on the
 * other side would refuse it anyway, after the whole transfer).
 */
async function verifiedChain(store: Store, id: string, verify: boolean): Promise<{ id: string; dir: string }[]> {
  const chain = await resolveChain(store, id);
  for (const s of verify ? chain : []) {
    try {
      await verifyChecksums(s.dir, s.manifest.files, s.manifest.id, s.manifest.algorithm ?? 'sha256');
    } catch (err) {
      if (!isFerryError(err, 'ERR_SNAPSHOT_CORRUPT')) throw err;
      throw new FerryError('ERR_SNAPSHOT_CORRUPT', `export: ${err.message}${s.manifest.id !== id ? ` (an ancestor ${id} builds on)` : ''}`, {
        cause: err, hint: `nothing was written; export another snapshot, or take a new checkpoint (\`ferry snapshots ls\`)`,
      });
    }
  }
  return chain.map((s) => ({ id: s.manifest.id, dir: s.dir }));
}

/**
 * Says whose fault a failed export was: a system error on a file of the snapshot (read) names
 * the snapshot and the file; any other system error is the output's; ferry's own errors (a
 * damaged or missing snapshot) pass through as they are.
 */
export function blame(err: unknown, chain: readonly { id: string; dir: string }[], file: string): unknown {
  const sys = isFerryError(err) ? (err.code === 'ERR_EXPORT' ? err.cause : undefined) : err;
  const code = errnoCode(sys);
  if (code === undefined || !/^E[A-Z0-9]+$/.test(code)) return err;
  const path = (sys as { path?: unknown }).path;
  const owner = typeof path === 'string' ? chain.find((s) => path.startsWith(`${s.dir}/`)) : undefined;
  if (owner && typeof path === 'string') {
    return new FerryError('ERR_SNAPSHOT_CORRUPT', `export: cannot read ${path.slice(owner.dir.length + 1)} of snapshot ${owner.id}: ${(sys as Error).message}`, {
      cause: err, hint: 'the snapshot changed or is unreadable; nothing was written. Check it with `ferry snapshots inspect`, or export another one',
    });
  }
  return new FerryError('ERR_EXPORT', `export: cannot write ${file === '-' ? 'stdout' : file}: ${(sys as Error).message}`, { cause: err, hint: 'check the directory exists, is writable and has room' });
}
