import { restore } from '../../engine/restore.js';
import { CONTAINER_RESTORE_OPTIONS, CONTAINER_RESTORE_USAGE, hasContainerRestoreFlags, runContainerRestore } from '../container.js';
import { Store } from '../../store/store.js';
import { FerryError } from '../../util/errors.js';
import { parse, type Command } from '../command.js';
import { printJson } from '../output.js';
import { startProgress } from '../progress.js';

export const command: Command = {
  summary: 'Restore a snapshot, detached, after checking its checksums and that this host can run it.\nPrints the new host pid.',
  usage: 'ferry restore <snapshot> [--json]\n' + CONTAINER_RESTORE_USAGE,
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, { ...CONTAINER_RESTORE_OPTIONS }, 'restore');
    const [id, ...extra] = positionals;
    if (!id || extra.length) throw new FerryError('ERR_USAGE', 'restore: give exactly one snapshot id', { hint: 'list them with `ferry snapshots ls`' });
    if ((await new Store({ root: ctx.store }).get(id)).manifest.target.kind === 'container') return runContainerRestore(id, values, ctx);
    if (hasContainerRestoreFlags(values)) throw new FerryError('ERR_USAGE', `restore: ${id} is a process snapshot; --as, --bundle, --runtime and --runtime-root apply to container snapshots`, { hint: 'see `ferry restore --help`' });
    const stop = startProgress(`restoring ${id}`, ctx.json);
    const r = await restore(new Store({ root: ctx.store }), id).finally(stop);
    if (ctx.json) printJson({ pid: r.pid, snapshot: r.snapshot, stats: r.stats ?? {}, timings: r.timings, telemetry: r.telemetry });
    else {
      process.stdout.write(`${r.pid}\n`);
      process.stderr.write(`restored ${id} as pid ${r.pid} in ${r.timings.totalMs} ms (checksums ${r.timings.verifyMs} ms, CRIU ${r.timings.criuMs} ms)\n`);
    }
    return 0;
  },
};
