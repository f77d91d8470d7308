import { createEngine } from '../../engine/engine.js';
import type { CheckpointRequest, CheckpointResult } from '../../engine/checkpoint.js';
import { checkpointJson } from '../../engine/result-json.js';
import { parseSize } from '../../store/budget.js';
import { formatBytes } from '../../util/format.js';
import { FerryError } from '../../util/errors.js';
import { emitJson, parse, type Command, type Output } from '../command.js';
import { runInterruptible } from '../interrupt.js';
import { jobPriority } from '../remote-options.js';

export const command: Command = {
  summary: 'Checkpoint a process tree (a pid, or a workload started with `ferry run`) or a container into the store.\n' +
    'The target is stopped unless --leave-running. Prints the snapshot id.',
  usage: 'ferry checkpoint <pid|name|container:ID> [--name SNAP] [--leave-running] [--tier memory|disk] [--json]\n' +
    '                  [--tcp-established] [--ext-unix-sk] [--file-locks] [--shell-job] [--skip-in-flight]\n' +
    '                  [--ghost-limit SIZE] [--force-irmap] [--link-remap] [--external RES]...\n' +
    '                  [--memory-budget SIZE] [--spill-to-disk | --no-spill] [--dedup newest-flat|forward | --no-dedup]\n' +
    '                  [--max-depth N] [--runtime runc|crun] [--runtime-root DIR] [--priority N]\n' +
    '  --priority N (-1000…1000, default 0; through an agent): higher runs first among the agent\'s waiting jobs\n' +
    '  CRIU options (recorded in the snapshot; ferry repeats those CRIU needs again at restore):\n' +
    '    --tcp-established  established TCP connections travel    --ext-unix-sk  unix sockets with a peer outside the tree\n' +
    '    --file-locks       file locks                             --shell-job    a tree that is not a session leader\n' +
    '    --skip-in-flight   skip half-open TCP connections          --ghost-limit  largest deleted-but-open file kept (e.g. 10M)\n' +
    '    --force-irmap      resolve inotify watch paths by scanning --link-remap   relink deleted-but-linked files\n' +
    '    --external RES     an external resource, as CRIU writes it (e.g. mnt[/data]:data); repeatable\n' +
    '  Interrupting (Ctrl-C, SIGTERM, SIGHUP): before the dump is complete, CRIU resumes the target and the partial\n' +
    '  snapshot is removed (exit 130/143/129); once CRIU may stop the target, ferry finishes committing the snapshot first.\n' +
    '  Page dedup (a CRIU image chain, no soft-dirty needed): pages equal to the workload\'s previous snapshot in the\n' +
    '  same tier are stored once. newest-flat (default): the new snapshot stays whole (fastest restore) and the\n' +
    '  previous one is rewritten to read its unchanged pages from it. forward: the new one reads them from the\n' +
    '  previous one (the checkpoint writes less; restores read through the chain). --no-dedup stores every page.\n' +
    '  --max-depth N: no snapshot reads through more than N parents (forward: a new chain starts; newest-flat: the\n' +
    '  previous snapshot stays whole). Restores slow down ≈ 20% per level; default: forward 16, newest-flat no limit.\n' +
    '  --memory-budget caps the memory tier (else $FERRY_MEMORY_BUDGET, else memoryBudgetBytes in <store>/config.json);\n' +
    '  past it a --tier memory checkpoint spills to disk if allowed (--spill-to-disk, FERRY_SPILL_TO_DISK=1,\n' +
    '  "spillToDisk": true), and is refused before CRIU runs otherwise.\n' +
    '  Containers (container:ID): runc or crun (found by id unless --runtime), with --runtime-root for their state dir.',
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, {
      name: { type: 'string' },
      'leave-running': { type: 'boolean' },
      priority: { type: 'string' },
      tier: { type: 'string' },
      'tcp-established': { type: 'boolean' },
      'ext-unix-sk': { type: 'boolean' },
      'file-locks': { type: 'boolean' },
      'shell-job': { type: 'boolean' },
      'skip-in-flight': { type: 'boolean' },
      'ghost-limit': { type: 'string' },
      'force-irmap': { type: 'boolean' },
      'link-remap': { type: 'boolean' },
      external: { type: 'string', multiple: true },
      'memory-budget': { type: 'string' },
      'spill-to-disk': { type: 'boolean' },
      'no-spill': { type: 'boolean' },
      'no-dedup': { type: 'boolean' },
      dedup: { type: 'string' },
      'max-depth': { type: 'string' },
      runtime: { type: 'string' },
      'runtime-root': { type: 'string' },
    }, 'checkpoint');
    if (values.dedup !== undefined && values.dedup !== 'newest-flat' && values.dedup !== 'forward') {
      throw new FerryError('ERR_USAGE', `checkpoint: --dedup must be newest-flat or forward, not '${values.dedup}'`, { hint: 'or --no-dedup to store every page' });
    }
    if (values.dedup !== undefined && values['no-dedup']) throw new FerryError('ERR_USAGE', 'checkpoint: --dedup and --no-dedup contradict each other', { hint: 'give one of them' });
    const [target, ...extra] = positionals;
    if (!target || extra.length) throw new FerryError('ERR_USAGE', 'checkpoint: give exactly one pid, workload name or container:ID', { hint: 'see `ferry checkpoint --help`' });
    const tier = values.tier ?? 'disk';
    if (tier !== 'memory' && tier !== 'disk') throw new FerryError('ERR_USAGE', `checkpoint: --tier must be memory or disk, not '${tier}'`, { hint: 'see `ferry checkpoint --help`' });
    if (values['spill-to-disk'] && values['no-spill']) throw new FerryError('ERR_USAGE', 'checkpoint: --spill-to-disk and --no-spill contradict each other', { hint: 'give one of them' });
    const memoryBudget = {
      ...(values['memory-budget'] !== undefined ? { memoryBudgetBytes: parseSize(values['memory-budget'], '--memory-budget') } : {}),
      ...(values['spill-to-disk'] ? { spillToDisk: true } : values['no-spill'] ? { spillToDisk: false } : {}),
    };
    const req: CheckpointRequest = {
      target, tier, memoryBudget,
      ...(values.runtime !== undefined ? { runtime: values.runtime } : {}),
      ...(values['runtime-root'] !== undefined ? { runtimeRoot: values['runtime-root'] } : {}),
      ...(values.name !== undefined ? { name: values.name } : {}),
      ...(values['leave-running'] ? { leaveRunning: true } : {}),
      ...(values['tcp-established'] ? { tcpEstablished: true } : {}),
      ...(values['ext-unix-sk'] ? { extUnixSk: true } : {}),
      ...(values['file-locks'] ? { fileLocks: true } : {}),
      ...(values['shell-job'] ? { shellJob: true } : {}),
      ...(values['skip-in-flight'] ? { skipInFlight: true } : {}),
      ...(values['ghost-limit'] !== undefined ? { ghostLimit: parseSize(values['ghost-limit'], '--ghost-limit') } : {}),
      ...(values['force-irmap'] ? { forceIrmap: true } : {}),
      ...(values['link-remap'] ? { linkRemap: true } : {}),
      ...(values.external?.length ? { external: values.external } : {}),
      ...(values['no-dedup'] ? { dedup: false } : values.dedup === 'forward' || values.dedup === 'newest-flat' ? { dedup: values.dedup } : {}),
      ...(values['max-depth'] !== undefined ? { maxDepth: wholeNumber(values['max-depth']) } : {}),
    };
    // Through an agent (--agent URL): the same request as a job there, rendered the same way here.
    const priority = jobPriority(values.priority, ctx, 'checkpoint');
    if (ctx.agent) return (await import('../remote.js')).remoteCheckpoint(req, ctx, render, priority);
    const { result, interrupt } = await runInterruptible(`checkpointing ${target}`, ctx, (signal) => createEngine({ store: ctx.store }).checkpoint({ ...req, interrupt: signal }));
    render(result, ctx.json, ctx.out, interrupt);
    return 0;
  },
};

export function render(r: CheckpointResult, json: boolean, out: Output, interrupt: AbortSignal): void {
  const m = r.manifest;
  const t = m.target;
  const deferred = interrupt.aborted ? String(interrupt.reason) : undefined;
  if (json) {
    emitJson(out, checkpointJson(r, deferred ? { deferredInterrupt: deferred } : {}));
    return;
  }
  const s = m.stats;
  out.stdout(`${r.snapshot}\n`);
  if (r.placement.spilled) out.stderr(`spilled to the disk tier: ${r.placement.reason ?? ''}\n`);
  const what = t.kind === 'container' ? `container ${t.id} (${t.runtime}, pid ${t.pid})` : `pid ${t.pid} (${t.command.join(' ').slice(0, 60)})`;
  out.stderr(`checkpointed ${what} in ${m.timings.totalMs} ms` +
    `${s ? `, frozen ${(s.frozen_time / 1000).toFixed(1)} ms, ${s.pages_written} pages written` : ''}, ${m.bytes} bytes (${m.tier} tier)\n` +
    (m.dedup ? `dedup: ${m.dedup.inParent} of ${m.dedup.pages} pages unchanged since ${m.dedup.parent}, ${formatBytes(m.dedup.savedBytes)} not stored (${m.dedup.ms} ms)\n` : '') +
    (r.rebased && 'error' in r.rebased ? `dedup: ${r.rebased.id} was left whole: ${r.rebased.error}\n` : '') +
    (r.rebased && 'savedBytes' in r.rebased ? `dedup: ${r.rebased.id} now reads ${r.rebased.inParent} of its ${r.rebased.pages} pages from this snapshot, ${formatBytes(r.rebased.savedBytes)} freed (${r.rebased.ms} ms)\n` : '') +
    (deferred ? `(${deferred} arrived while the snapshot was being committed; it is committed and complete)\n` : ''));
}

function wholeNumber(v: string): number {
  if (!/^\d+$/.test(v)) throw new FerryError('ERR_USAGE', `checkpoint: --max-depth must be a whole number, not '${v}'`, { hint: 'e.g. --max-depth 2 (0: every snapshot whole)' });
  return Number(v);
}
