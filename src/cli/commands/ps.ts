import { Store } from '../../store/store.js';
import { workloadListing } from '../../engine/listing.js';
import { emitJson, parse, type Command } from '../command.js';

export const command: Command = {
  summary: 'List the workloads ferry started (`ferry run`) in this store, with their state: running (the\n' +
    'recorded process, checked by pid and start time), stopped (by `ferry stop`) or exited, and their\n' +
    'service address (`--ip`). The address of a workload that ended is removed from the host here.',
  usage: 'ferry ps [--json]',
  async run(argv, ctx) {
    parse(argv, {}, 'ps', false);
    const store = new Store({ root: ctx.store });
    // Through an agent (--agent URL): the workloads of its store, printed the same way. A workload
    // that ended keeps its service address only until ferry looks at it: now.
    const { workloads: rows, workloadsDir } = ctx.agent ? await (await import('../remote.js')).agentClient(ctx).workloadListing() : await workloadListing(store, (r, err) => {
      ctx.out.stderr(`ferry: warning: could not remove the service address ${r.address?.address ?? ''} of '${r.name}', which ended: ${err instanceof Error ? err.message : String(err)}\n`);
    });
    if (ctx.json) {
      emitJson(ctx.out, { workloads: rows });
      return 0;
    }
    if (!rows.length) {
      ctx.out.stdout(`no workloads in ${workloadsDir} (start one with \`ferry run --name NAME -- CMD\`)\n`);
      return 0;
    }
    const w = Math.max(4, ...rows.map((r) => r.name.length));
    ctx.out.stdout(`${'NAME'.padEnd(w)}  ${'PID'.padStart(7)}  ${'STATE'.padEnd(7)}  ${'STARTED'.padEnd(24)}  COMMAND\n`);
    for (const r of rows) {
      ctx.out.stdout(`${r.name.padEnd(w)}  ${String(r.pid).padStart(7)}  ${r.state.padEnd(7)}  ${r.startedAt.padEnd(24)}  ${r.command.join(' ').slice(0, 60)}\n`);
      const notes = [
        r.restoredFrom ? `restored from ${r.restoredFrom} at ${r.restoredAt ?? '?'}` : '',
        r.stoppedAt && r.state === 'stopped' ? `stopped at ${r.stoppedAt}` : '',
        r.lastSnapshot && r.state !== 'running' ? `last snapshot ${r.lastSnapshot}` : '',
        r.address ? `address ${r.address.address}/${r.address.prefix} on ${r.address.dev}${r.address.state === 'removed' ? ' (removed)' : ''}` : '',
      ].filter(Boolean);
      if (notes.length) ctx.out.stdout(`${''.padEnd(w)}  ${notes.join('; ')}\n`);
      ctx.out.stdout(`${''.padEnd(w)}  logs: ${r.stdout}, ${r.stderr}\n`);
    }
    return 0;
  },
};
