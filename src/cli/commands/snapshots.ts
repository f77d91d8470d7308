import { memoryTierUsage, resolveBudget, storedBytes } from '../../store/budget.js';
import { Store } from '../../store/store.js';
import { formatBytes } from '../../util/format.js';
import { FerryError } from '../../util/errors.js';
import { parse, positiveInt, type Command } from '../command.js';
import { printJson } from '../output.js';

export const command: Command = {
  summary: 'List, inspect, remove, compact and garbage-collect snapshots.',
  usage: 'ferry snapshots [ls | inspect ID | rm ID | compact ID [--levels N] | gc [--keep-last N] [--keep-every DUR]\n' +
    '                 [--max-depth N] [--flatten-older-than DUR] [--dry-run]] [--json]\n' +
    '  rm: snapshots that build on ID (dedup chains) first take over its pages, so they keep working.\n' +
    '  compact: fold ID\'s chain into it (all of it, or the nearest N levels); its content is checked against its page index.\n' +
    '  gc: per workload, keep the newest N and/or the newest of every DUR (e.g. 1h, 30m, 1d); fold chains deeper\n' +
    '      than --max-depth, and make snapshots older than --flatten-older-than flat; sweep leftovers of\n' +
    '      interrupted operations. --dry-run shows the plan.',
  async run(argv, ctx) {
    const { positionals, values } = parse(argv, {
      levels: { type: 'string' },
      'keep-last': { type: 'string' },
      'keep-every': { type: 'string' },
      'max-depth': { type: 'string' },
      'flatten-older-than': { type: 'string' },
      'dry-run': { type: 'boolean' },
    }, 'snapshots');
    const [sub = 'ls', id, ...extra] = positionals;
    const store = new Store({ root: ctx.store });
    const needId = (): string => {
      if (!id || extra.length) throw new FerryError('ERR_USAGE', `snapshots ${sub}: give exactly one snapshot id`, { hint: 'list them with `ferry snapshots ls`' });
      return id;
    };
    switch (sub) {
      case 'ls': {
        const all = await store.list();
        const rows = await Promise.all(all.map(async ({ manifest: m, dir }) => ({
          id: m.id, createdAt: m.createdAt, tier: m.tier, parent: m.parent ?? null, pid: m.target.pid, workload: m.target.workload ?? null,
          command: m.target.command, bytes: m.bytes,
          // What a restore materialises (deduped snapshots record it) vs what its own files occupy.
          logicalBytes: 'logicalBytes' in m && typeof m.logicalBytes === 'number' ? m.logicalBytes : m.bytes,
          storedBytes: await storedBytes(dir),
          criu: m.criu.version,
        })));
        const budget = await resolveBudget(store.root);
        const memoryTier = { dir: store.memoryDir, usedBytes: await memoryTierUsage(store), budgetBytes: budget.budgetBytes ?? null, spillToDisk: budget.spillToDisk };
        const totals = {
          totalBytes: rows.reduce((a, r) => a + r.bytes, 0),
          totalLogicalBytes: rows.reduce((a, r) => a + r.logicalBytes, 0),
          totalStoredBytes: rows.reduce((a, r) => a + r.storedBytes, 0),
        };
        if (ctx.json) printJson({ snapshots: rows, ...totals, memoryTier });
        else if (!rows.length) process.stdout.write('no snapshots\n');
        else {
          process.stdout.write(`${'ID'.padEnd(22)}  ${'CREATED'.padEnd(24)}  TIER    ${'LOGICAL'.padStart(9)}  ${'STORED'.padStart(9)}  WHAT\n`);
          for (const r of rows) {
            process.stdout.write(`${r.id.padEnd(22)}  ${r.createdAt.padEnd(24)}  ${r.tier.padEnd(6)}  ${formatBytes(r.logicalBytes).padStart(9)}  ${formatBytes(r.storedBytes).padStart(9)}  ` +
              `${r.workload ?? `pid ${r.pid}`}  ${r.command.join(' ').slice(0, 50)}${r.parent ? `  (parent ${r.parent})` : ''}\n`);
          }
          process.stdout.write(`${rows.length} snapshot(s): ${formatBytes(totals.totalLogicalBytes)} logical, ${formatBytes(totals.totalStoredBytes)} stored; ` +
            `memory tier ${formatBytes(memoryTier.usedBytes)} used${memoryTier.budgetBytes !== null ? ` of a ${formatBytes(memoryTier.budgetBytes)} budget` : ''}\n`);
        }
        return 0;
      }
      case 'inspect': {
        const s = await store.get(needId());
        // Loaded only here: the image decoders are the heaviest modules of the CLI.
        const { inspectImages } = await import('../../criu/images/inspect.js');
        const images = await inspectImages(s.dir);
        if (ctx.json) { printJson({ manifest: { ...s.manifest, files: undefined }, images }); return 0; }
        const m = s.manifest;
        const lines = [
          `snapshot ${m.id}  (${m.tier} tier, ${formatBytes(m.bytes)}, taken ${m.createdAt} on ${m.host.hostname}, CRIU ${m.criu.version})`,
          ...(m.target.kind === 'container' ? [
            `container ${m.target.id} (${m.target.runtime}, ${m.target.driver === 'runtime' ? `checkpointed by ${m.target.runtime}` : 'checkpointed by ferry\'s CRIU'}), bundle ${m.target.bundle}`,
            `  rootfs ${m.target.rootfs}; own namespaces: ${m.target.namespaces.join(', ') || 'none'}; stdio: ${m.target.stdio.join(', ')}`,
            ...m.target.externalMounts.map((e) => `  external mount ${e.key} <- ${e.source}`),
          ] : []),
          'processes:',
          ...images.processes.map((p) => `  ${p.pid} (ppid ${p.ppid}) ${p.threads.length} thread(s)  ${p.commandLine.join(' ').slice(0, 100)}`),
          'memory:',
          ...images.memory.map((mm) => `  pid ${mm.pid}: ${formatBytes(mm.mappedBytes)} mapped, ${formatBytes(mm.anonPrivateBytes)} anonymous, ${formatBytes(mm.pages?.presentBytes ?? 0)} in images, ${mm.vmaCount} mappings`),
          'open files:',
          ...images.files.flatMap((f) => f.fds.map((d) => `  pid ${f.pids.join(',')} fd ${d.fd}: ${d.description}`)),
          `namespaces of its own: ${images.namespaces.own.join(', ') || 'none'}`,
        ];
        if (m.stats) lines.push(`CRIU stats: frozen ${m.stats.frozen_time} µs, memdump ${m.stats.memdump_time} µs, memwrite ${m.stats.memwrite_time} µs, pages scanned ${m.stats.pages_scanned}, written ${m.stats.pages_written}`);
        process.stdout.write(lines.join('\n') + '\n');
        return 0;
      }
      case 'rm': {
        const target = needId();
        const { removeSnapshot } = await import('../../store/retention.js');
        const r = await removeSnapshot(store, target);
        if (ctx.json) printJson(r);
        else process.stdout.write(`removed ${target}${r.compacted.length ? ` (its pages were folded into ${r.compacted.join(', ')}, which built on it)` : ''}\n`);
        return 0;
      }
      case 'compact': {
        const target = needId();
        const levels = values.levels === undefined ? Infinity : positiveInt(values.levels, '--levels', 'snapshots compact');
        const { foldInto } = await import('../../store/chain.js');
        const started = Date.now();
        const before = (await store.get(target)).manifest;
        const m = await foldInto(store, await store.get(target), levels);
        const result = { snapshot: target, parentBefore: before.parent ?? null, parent: m.parent ?? null, bytesBefore: before.bytes, bytes: m.bytes, ms: Date.now() - started };
        if (ctx.json) printJson(result);
        else process.stdout.write(before.parent === undefined ? `${target} is already flat\n`
          : `compacted ${target}: builds on ${m.parent ?? 'nothing (flat)'} now; ${formatBytes(before.bytes)} -> ${formatBytes(m.bytes)} in ${result.ms} ms\n`);
        return 0;
      }
      case 'gc': {
        if (id !== undefined) throw new FerryError('ERR_USAGE', 'snapshots gc takes no snapshot id', { hint: 'ferry snapshots gc --keep-last 5 [--keep-every 1h] [--max-depth 8] [--dry-run]' });
        const { gc } = await import('../../store/retention.js');
        const policy = {
          ...(values['keep-last'] !== undefined ? { keepLast: positiveInt(values['keep-last'], '--keep-last', 'snapshots gc') } : {}),
          ...(values['keep-every'] !== undefined ? { keepEveryMs: parseDuration(values['keep-every'], '--keep-every') } : {}),
          ...(values['max-depth'] !== undefined ? { maxDepth: positiveInt(values['max-depth'], '--max-depth', 'snapshots gc') } : {}),
          ...(values['flatten-older-than'] !== undefined ? { flattenOlderThanMs: parseDuration(values['flatten-older-than'], '--flatten-older-than') } : {}),
        };
        const r = await gc(store, policy, values['dry-run'] === true);
        if (ctx.json) printJson(r);
        else {
          const verb = r.dryRun ? 'would remove' : 'removed';
          process.stdout.write(`${verb} ${r.remove.length} snapshot(s)${r.remove.length ? `: ${r.remove.join(', ')}` : ''}; kept ${r.keep.length}; ` +
            `${r.dryRun ? 'would fold' : 'folded'} ${r.dryRun ? r.fold.length : r.compacted.length} chain(s); ${formatBytes(r.freedBytes)} of snapshots ${r.dryRun ? 'to free' : 'freed'}` +
            `${r.swept.length ? `; swept ${r.swept.length} leftover(s)` : ''}\n`);
        }
        return 0;
      }
      default:
        throw new FerryError('ERR_USAGE', `snapshots: unknown subcommand '${sub}'`, { hint: 'ferry snapshots [ls|inspect ID|rm ID|compact ID|gc]' });
    }
  },
};

/** "90s", "30m", "1h", "2d" or plain milliseconds. */
function parseDuration(v: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(v.trim());
  if (!m) throw new FerryError('ERR_USAGE', `${flag}: '${v}' is not a duration`, { hint: 'use e.g. 90s, 30m, 1h or 2d' });
  const mult = { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[(m[2] ?? 'ms') as 'ms' | 's' | 'm' | 'h' | 'd'];
  const ms = Number(m[1]) * mult;
  if (!(ms > 0)) throw new FerryError('ERR_USAGE', `${flag} must be more than zero`, { hint: 'use e.g. 1h' });
  return ms;
}
