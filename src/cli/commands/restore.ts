import { restore } from '../../engine/restore.js';
import { Store } from '../../store/store.js';
import { FerryError } from '../../util/errors.js';
import { parse, type Command } from '../command.js';
import { printJson } from '../output.js';
import { startProgress } from '../progress.js';

export const command: Command = {
  summary: 'Restore a snapshot, detached, after checking its checksums and that this host can run it.\nPrints the new host pid.',
  usage: 'ferry restore <snapshot> [--json]',
  async run(argv, ctx) {
    const { positionals } = parse(argv, {}, 'restore');
    const [id, ...extra] = positionals;
    if (!id || extra.length) throw new FerryError('ERR_USAGE', 'restore: give exactly one snapshot id', { hint: 'list them with `ferry snapshots ls`' });
    const stop = startProgress(`restoring ${id}`, ctx.json);
    const r = await restore(new Store({ root: ctx.store }), id).finally(stop);
    if (ctx.json) printJson({ pid: r.pid, snapshot: r.snapshot, stats: r.stats ?? {}, timings: r.timings });
    else {
      process.stdout.write(`${r.pid}\n`);
      process.stderr.write(`restored ${id} as pid ${r.pid} in ${r.timings.totalMs} ms (checksums ${r.timings.verifyMs} ms, CRIU ${r.timings.criuMs} ms)\n`);
    }
    return 0;
  },
};
