import { formatBytes } from '../../util/format.js';
import { checkpoint } from '../../engine/checkpoint.js';
import { parseContainerTarget } from '../../targets/container.js';
import { CONTAINER_CHECKPOINT_OPTIONS, CONTAINER_CHECKPOINT_USAGE, runContainerCheckpoint } from '../container.js';
import { parseSize } from '../../store/budget.js';
import { Store } from '../../store/store.js';
import { FerryError } from '../../util/errors.js';
import { parse, type Command } from '../command.js';
import { printJson } from '../output.js';
import { startProgress } from '../progress.js';

export const command: Command = {
  summary: 'Checkpoint a process tree (a pid, or a workload started with `ferry run`) into the store.\n' +
    'The process is stopped unless --leave-running. Prints the snapshot id.',
  usage: 'ferry checkpoint <pid|name> [--name SNAP] [--leave-running] [--tier memory|disk]\n' +
    '                  [--tcp-established] [--ext-unix-sk] [--file-locks] [--shell-job] [--json]\n' +
    '                  [--memory-budget SIZE] [--spill-to-disk | --no-spill] [--dedup newest-flat|forward | --no-dedup]\n' +
    '                  [--max-depth N]\n' +
    '  Page dedup (a CRIU image chain, no soft-dirty needed): pages equal to the workload\'s previous snapshot in the\n' +
    '  same tier are stored once. newest-flat (default): the new snapshot stays whole (fastest restore) and the\n' +
    '  previous one is rewritten to read its unchanged pages from it. forward: the new one reads them from the\n' +
    '  previous one (the checkpoint writes less; restores read through the chain). --no-dedup stores every page.\n' +
    '  --max-depth N: no snapshot reads through more than N parents (forward: a new chain starts; newest-flat: the\n' +
    '  previous snapshot stays whole). Restores slow down ≈ 20% per level; default: forward 16, newest-flat no limit.\n' +
    '  --memory-budget caps the memory tier (else $FERRY_MEMORY_BUDGET, else memoryBudgetBytes in <store>/config.json);\n' +
    '  past it a --tier memory checkpoint spills to disk if allowed (--spill-to-disk, FERRY_SPILL_TO_DISK=1,\n' +
    '  "spillToDisk": true), and is refused before CRIU runs otherwise.\n' + CONTAINER_CHECKPOINT_USAGE,
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, {
      name: { type: 'string' },
      'leave-running': { type: 'boolean' },
      tier: { type: 'string' },
      'tcp-established': { type: 'boolean' },
      'ext-unix-sk': { type: 'boolean' },
      'file-locks': { type: 'boolean' },
      'shell-job': { type: 'boolean' },
      'memory-budget': { type: 'string' },
      'spill-to-disk': { type: 'boolean' },
      'no-spill': { type: 'boolean' },
      'no-dedup': { type: 'boolean' },
      dedup: { type: 'string' },
      'max-depth': { type: 'string' },
      ...CONTAINER_CHECKPOINT_OPTIONS,
    }, 'checkpoint');
    if (values.dedup !== undefined && values.dedup !== 'newest-flat' && values.dedup !== 'forward') {
      throw new FerryError('ERR_USAGE', `checkpoint: --dedup must be newest-flat or forward, not '${values.dedup}'`, { hint: 'or --no-dedup to store every page' });
    }
    if (values.dedup !== undefined && values['no-dedup']) throw new FerryError('ERR_USAGE', 'checkpoint: --dedup and --no-dedup contradict each other', { hint: 'give one of them' });
    const [target, ...extra] = positionals;
    if (!target || extra.length) throw new FerryError('ERR_USAGE', 'checkpoint: give exactly one pid or workload name', { hint: 'see `ferry checkpoint --help`' });
    const tier = values.tier ?? 'disk';
    if (tier !== 'memory' && tier !== 'disk') throw new FerryError('ERR_USAGE', `checkpoint: --tier must be memory or disk, not '${tier}'`, { hint: 'see `ferry checkpoint --help`' });
    const containerId = parseContainerTarget(target);
    if (containerId !== undefined) return runContainerCheckpoint(containerId, values, tier, ctx);
    if (values.runtime !== undefined || values['runtime-root'] !== undefined) throw new FerryError('ERR_USAGE', 'checkpoint: --runtime and --runtime-root apply to container:<id> targets only', { hint: 'see `ferry checkpoint --help`' });
    if (values['spill-to-disk'] && values['no-spill']) throw new FerryError('ERR_USAGE', 'checkpoint: --spill-to-disk and --no-spill contradict each other', { hint: 'give one of them' });
    const memoryBudget = {
      ...(values['memory-budget'] !== undefined ? { memoryBudgetBytes: parseSize(values['memory-budget'], '--memory-budget') } : {}),
      ...(values['spill-to-disk'] ? { spillToDisk: true } : values['no-spill'] ? { spillToDisk: false } : {}),
    };
    const stop = startProgress(`checkpointing ${target}`, ctx.json);
    const r = await checkpoint(new Store({ root: ctx.store }), {
      target, tier, memoryBudget,
      ...(values.name !== undefined ? { name: values.name } : {}),
      ...(values['leave-running'] ? { leaveRunning: true } : {}),
      ...(values['tcp-established'] ? { tcpEstablished: true } : {}),
      ...(values['ext-unix-sk'] ? { extUnixSk: true } : {}),
      ...(values['file-locks'] ? { fileLocks: true } : {}),
      ...(values['shell-job'] ? { shellJob: true } : {}),
      ...(values['no-dedup'] ? { dedup: false } : values.dedup === 'forward' || values.dedup === 'newest-flat' ? { dedup: values.dedup } : {}),
      ...(values['max-depth'] !== undefined ? { maxDepth: positiveIntOrZero(values['max-depth']) } : {}),
    }).finally(stop);
    const m = r.manifest;
    if (ctx.json) {
      printJson({ snapshot: r.snapshot, tier: m.tier, stats: m.stats ?? {}, timings: m.timings, bytesWritten: m.bytes,
        logicalBytes: m.logicalBytes ?? m.bytes, parent: m.parent ?? null, dedup: m.dedup ?? null, rebased: r.rebased ?? null, telemetry: r.telemetry,
        spilled: r.placement.spilled, ...(r.placement.reason ? { reason: r.placement.reason } : {}) });
    } else {
      const s = m.stats;
      process.stdout.write(`${r.snapshot}\n`);
      if (r.placement.spilled) process.stderr.write(`spilled to the disk tier: ${r.placement.reason ?? ''}\n`);
      process.stderr.write(`checkpointed pid ${m.target.pid} (${m.target.command.join(' ').slice(0, 60)}) in ${m.timings.totalMs} ms` +
        `${s ? `, frozen ${(s.frozen_time / 1000).toFixed(1)} ms, ${s.pages_written} pages written` : ''}, ${m.bytes} bytes (${m.tier} tier)\n` +
        (m.dedup ? `dedup: ${m.dedup.inParent} of ${m.dedup.pages} pages unchanged since ${m.dedup.parent}, ${formatBytes(m.dedup.savedBytes)} not stored (${m.dedup.ms} ms)\n` : '') +
        (r.rebased && 'error' in r.rebased ? `dedup: ${r.rebased.id} was left whole: ${r.rebased.error}\n` : '') +
        (r.rebased && 'savedBytes' in r.rebased ? `dedup: ${r.rebased.id} now reads ${r.rebased.inParent} of its ${r.rebased.pages} pages from this snapshot, ${formatBytes(r.rebased.savedBytes)} freed (${r.rebased.ms} ms)\n` : ''));
    }
    return 0;
  },
};

function positiveIntOrZero(v: string): number {
  if (!/^\d+$/.test(v)) throw new FerryError('ERR_USAGE', `checkpoint: --max-depth must be a whole number, not '${v}'`, { hint: 'e.g. --max-depth 2 (0: every snapshot whole)' });
  return Number(v);
}
