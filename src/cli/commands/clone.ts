import { Store } from '../../store/store.js';
import { FerryError } from '../../util/errors.js';
import { emitJson, parse, positiveInt, type Command } from '../command.js';
import { runInterruptible } from '../interrupt.js';

export const command: Command = {
  summary: 'Start N copies of a workload, each restored in its own pid namespace under a new name, the\n' +
    'original left running. From a snapshot of the store, or from a live pid or `ferry run` workload (a\n' +
    '--leave-running checkpoint into the memory tier, removed once the copies run unless --keep-snapshot).\n' +
    'The source must be pid 1 of its own pid namespace (as `ferry run` starts programs); copies share the\n' +
    'host\'s network, so a program listening on a port cannot run beside a copy of itself.',
  usage: 'ferry clone <snapshot|pid|name> [--count N] [--to HOST|URL] [--keep-snapshot] [--json]\n' +
    '  --to: the copies run on another host\'s agent (a testbed host name, or an agent URL with its token in\n' +
    '  $FERRY_PEER_TOKEN), sent over the migration protocol, one transfer per copy.',
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, { count: { type: 'string' }, 'keep-snapshot': { type: 'boolean' }, to: { type: 'string' } }, 'clone');
    const [source, ...extra] = positionals;
    if (!source || extra.length) throw new FerryError('ERR_USAGE', 'clone: give one snapshot id, pid or workload name', { hint: 'ferry clone web --count 3' });
    const count = values.count === undefined ? 1 : positiveInt(values.count, '--count', 'clone');
    const store = new Store({ root: ctx.store });
    const to = values.to !== undefined ? await (await import('../peer-ref.js')).resolvePeer(values.to) : undefined;
    const { cloneWorkload } = await import('../../scenarios/clone.js');
    const { result: r } = await runInterruptible(`cloning ${source}`, ctx, (interrupt) => cloneWorkload({
      store, source, count, interrupt,
      ...(values['keep-snapshot'] ? { keepSnapshot: true } : {}),
      ...(to ? { to: { url: to.url, token: to.token } } : {}),
      ...(ctx.json ? {} : { say: (line: string) => ctx.out.stderr(`ferry: ${line}\n`) }),
    }));
    if (ctx.json) {
      emitJson(ctx.out, { clones: r.clones, snapshot: r.snapshot, snapshotKept: r.snapshotKept, source: r.source, host: to?.name ?? r.host });
      return 0;
    }
    for (const c of r.clones) ctx.out.stdout(`${c.name} ${c.pid}\n`);
    ctx.out.stderr(`cloned ${r.source.label} ${r.clones.length} time(s)${to ? ` on ${to.name ?? to.url}` : ''}, each in its own pid namespace` +
      `${r.source.kind === 'live' ? `; snapshot ${r.snapshot} ${r.snapshotKept ? 'kept' : 'removed'}` : ''}\n`);
    return 0;
  },
};
