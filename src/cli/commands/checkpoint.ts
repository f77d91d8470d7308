import { checkpoint } from '../../engine/checkpoint.js';
import { Store } from '../../store/store.js';
import { FerryError } from '../../util/errors.js';
import { parse, type Command } from '../command.js';
import { printJson } from '../output.js';
import { startProgress } from '../progress.js';

export const command: Command = {
  summary: 'Checkpoint a process tree (a pid, or a workload started with `ferry run`) into the store.\n' +
    'The process is stopped unless --leave-running. Prints the snapshot id.',
  usage: 'ferry checkpoint <pid|name> [--name SNAP] [--leave-running] [--tier memory|disk]\n' +
    '                  [--tcp-established] [--ext-unix-sk] [--file-locks] [--shell-job] [--json]',
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, {
      name: { type: 'string' },
      'leave-running': { type: 'boolean' },
      tier: { type: 'string' },
      'tcp-established': { type: 'boolean' },
      'ext-unix-sk': { type: 'boolean' },
      'file-locks': { type: 'boolean' },
      'shell-job': { type: 'boolean' },
    }, 'checkpoint');
    const [target, ...extra] = positionals;
    if (!target || extra.length) throw new FerryError('ERR_USAGE', 'checkpoint: give exactly one pid or workload name', { hint: 'see `ferry checkpoint --help`' });
    const tier = values.tier ?? 'disk';
    if (tier !== 'memory' && tier !== 'disk') throw new FerryError('ERR_USAGE', `checkpoint: --tier must be memory or disk, not '${tier}'`, { hint: 'see `ferry checkpoint --help`' });
    const stop = startProgress(`checkpointing ${target}`, ctx.json);
    const r = await checkpoint(new Store({ root: ctx.store }), {
      target, tier,
      ...(values.name !== undefined ? { name: values.name } : {}),
      ...(values['leave-running'] ? { leaveRunning: true } : {}),
      ...(values['tcp-established'] ? { tcpEstablished: true } : {}),
      ...(values['ext-unix-sk'] ? { extUnixSk: true } : {}),
      ...(values['file-locks'] ? { fileLocks: true } : {}),
      ...(values['shell-job'] ? { shellJob: true } : {}),
    }).finally(stop);
    const m = r.manifest;
    if (ctx.json) {
      printJson({ snapshot: r.snapshot, tier: m.tier, stats: m.stats ?? {}, timings: m.timings, bytesWritten: m.bytes });
    } else {
      const s = m.stats;
      process.stdout.write(`${r.snapshot}\n`);
      process.stderr.write(`checkpointed pid ${m.target.pid} (${m.target.command.join(' ').slice(0, 60)}) in ${m.timings.totalMs} ms` +
        `${s ? `, frozen ${(s.frozen_time / 1000).toFixed(1)} ms, ${s.pages_written} pages written` : ''}, ${m.bytes} bytes (${m.tier} tier)\n`);
    }
    return 0;
  },
};
