import { parseDuration } from '../../store/config.js';
import { recoverInterrupted } from '../../engine/recover.js';
import { Store } from '../../store/store.js';
import { leftoverRow, storeListing } from '../../engine/listing.js';
import { formatBytes } from '../../util/format.js';
import { FerryError } from '../../util/errors.js';
import { parse, positiveInt, type Command } from '../command.js';
import { printJson } from '../output.js';

export const command: Command = {
  summary: 'List, inspect, remove, compact and garbage-collect snapshots.',
  usage: 'ferry snapshots [ls | inspect ID [--show-env] | rm ID | compact ID [--levels N] | gc [--keep-last N] [--keep-every DUR]\n' +
    '                 [--max-depth N] [--flatten-older-than DUR] [--stale-after DUR] [--logs-max-age DUR] [--logs-keep N]\n' +
    '                 [--dry-run]] [--json]\n' +
    '  ls: valid snapshots, damaged ones (with the reason), and leftovers of interrupted or running operations.\n' +
    '  inspect: the environment recovered from memory may hold secrets: names only unless --show-env.\n' +
    '  rm: snapshots that build on ID (dedup chains) first take over its pages, so they keep working. A damaged\n' +
    '      snapshot can be removed too.\n' +
    '  compact: fold ID\'s chain into it (all of it, or the nearest N levels); its content is checked against its page index.\n' +
    '  gc: per workload, keep the newest N and/or the newest of every DUR (e.g. 1h, 30m, 1d); fold chains deeper\n' +
    '      than --max-depth (0: make every snapshot whole), and make snapshots older than --flatten-older-than flat;\n' +
    '      remove leftovers whose operation\'s process is gone, and unexplained ones unchanged for --stale-after\n' +
    '      (default 10m); sweep operation logs past --logs-max-age (14d) / beyond the newest --logs-keep (200);\n' +
    '      remove memory-tier directories of stores that no longer exist. Damaged snapshots are kept (rm them).\n' +
    '      --dry-run shows the plan.',
  async run(argv, ctx) {
    const { positionals, values } = parse(argv, {
      levels: { type: 'string' },
      'keep-last': { type: 'string' },
      'keep-every': { type: 'string' },
      'max-depth': { type: 'string' },
      'flatten-older-than': { type: 'string' },
      'stale-after': { type: 'string' },
      'logs-max-age': { type: 'string' },
      'logs-keep': { type: 'string' },
      'dry-run': { type: 'boolean' },
      'show-env': { type: 'boolean' },
    }, 'snapshots');
    const [sub = 'ls', id, ...extra] = positionals;
    const store = new Store({ root: ctx.store });
    // Interrupted checkpoints are finished (committed) or undone before anything is listed (ls: in storeListing).
    if (sub === 'gc') await recoverInterrupted(store);
    const needId = (): string => {
      if (!id || extra.length) throw new FerryError('ERR_USAGE', `snapshots ${sub}: give exactly one snapshot id`, { hint: 'list them with `ferry snapshots ls`' });
      return id;
    };
    if (ctx.agent && sub !== 'ls' && sub !== 'inspect' && sub !== 'rm') {
      throw new FerryError('ERR_USAGE', `\`ferry snapshots ${sub}\` does not run through an agent yet (snapshots ls, inspect and rm do)`, { hint: 'run it without --agent (and with FERRY_AGENT empty) on the agent\'s host' });
    }
    const remote = ctx.agent ? await import('../remote.js') : undefined;
    switch (sub) {
      case 'ls': {
        // Through an agent (--agent URL): its store's listing, printed the same way.
        const listing = remote ? await remote.agentClient(ctx).listing() : await storeListing(store);
        const { snapshots: rows, damaged, leftovers, memoryTier, ...totals } = listing;
        if (ctx.json) { printJson(listing); return 0; }
        const out: string[] = [];
        if (!rows.length) out.push('no snapshots');
        else {
          out.push(`${'ID'.padEnd(22)}  ${'CREATED'.padEnd(24)}  TIER    ${'LOGICAL'.padStart(9)}  ${'STORED'.padStart(9)}  WHAT`);
          for (const r of rows) {
            out.push(`${r.id.padEnd(22)}  ${r.createdAt.padEnd(24)}  ${r.tier.padEnd(6)}  ${formatBytes(r.logicalBytes).padStart(9)}  ${formatBytes(r.storedBytes).padStart(9)}  ` +
              `${r.workload ?? `pid ${r.pid}`}  ${r.command.join(' ').slice(0, 50)}${r.parent ? `  (parent ${r.parent})` : ''}`);
          }
        }
        if (damaged.length) {
          out.push('', `DAMAGED (cannot be restored; \`ferry snapshots rm ID\` removes one):`);
          for (const d of damaged) out.push(`${d.id.padEnd(22)}  ${d.tier.padEnd(6)}  ${formatBytes(d.storedBytes).padStart(9)}  ${d.reason}`);
        }
        if (leftovers.length) {
          out.push('', 'LEFTOVERS of interrupted or running operations (`ferry snapshots gc` removes those whose process is gone):');
          for (const l of leftovers) {
            out.push(`${l.id.padEnd(22)}  ${(l.tier ?? '-').padEnd(6)}  ${formatBytes(l.bytes).padStart(9)}  ${formatAge(l.ageMs).padStart(6)} old  ` +
              `${l.ownerAlive === true ? `running (${l.op ?? '?'}, ${l.phase ?? '?'})` : l.ownerAlive === false ? `interrupted: its process is gone (${l.op ?? '?'}, ${l.phase ?? '?'})` : l.damaged ? `unreadable intent record: ${l.damaged}` : `${l.kind}, no intent record`}`);
          }
        }
        out.push(`${rows.length} snapshot(s): ${formatBytes(totals.totalLogicalBytes)} logical, ${formatBytes(totals.totalStoredBytes)} stored; ` +
          `memory tier ${formatBytes(memoryTier.usedBytes)} used${memoryTier.budgetBytes !== null ? ` of a ${formatBytes(memoryTier.budgetBytes)} budget` : ''}` +
          ` (all stores under ${memoryTier.base}: ${formatBytes(memoryTier.allStoresBytes)}` +
          `${memoryTier.hostAvailableBytes !== null ? `; host memory available ${formatBytes(memoryTier.hostAvailableBytes)}, reserve ${formatBytes(memoryTier.reserveBytes ?? 0)}` : ''})`);
        if (memoryTier.orphans.length) {
          out.push(`${memoryTier.orphans.length} memory-tier director${memoryTier.orphans.length === 1 ? 'y' : 'ies'} of deleted stores hold ` +
            `${formatBytes(memoryTier.orphans.reduce((a, o) => a + o.bytes, 0))} of RAM (\`ferry snapshots gc\` removes them): ` +
            memoryTier.orphans.map((o) => o.dir).join(', '));
        }
        process.stdout.write(out.join('\n') + '\n');
        return 0;
      }
      case 'inspect': {
        const target = needId();
        // The environment recovered from memory may hold secrets: names only unless --show-env.
        const showEnv = values['show-env'] === true;
        // Through an agent: its store's snapshot, decoded there (the same report).
        const report = remote ? await remote.agentClient(ctx).inspect(target, showEnv)
          : await (await import('../../engine/inspect-report.js')).inspectReport(await store.get(target), showEnv);
        if (ctx.json) { printJson(report); return 0; }
        const { manifest: m, images } = report;
        const lines = [
          `snapshot ${m.id}  (${m.tier} tier, ${formatBytes(m.bytes)}, taken ${m.createdAt} on ${m.host.hostname}, CRIU ${m.criu.version})`,
          ...(m.target.kind === 'container' ? [
            `container ${m.target.id} (${m.target.runtime}, ${m.target.driver === 'runtime' ? `checkpointed by ${m.target.runtime}` : 'checkpointed by ferry\'s CRIU'}), bundle ${m.target.bundle}`,
            `  rootfs ${m.target.rootfs}; own namespaces: ${m.target.namespaces.join(', ') || 'none'}; stdio: ${m.target.stdio.join(', ')}`,
            ...m.target.externalMounts.map((e) => `  external mount ${e.key} <- ${e.source}`),
          ] : []),
          'processes:',
          ...images.processes.flatMap((p) => [
            `  ${p.pid} (ppid ${p.ppid}) ${p.threads.length} thread(s)  ${p.commandLine.join(' ').slice(0, 100)}`,
            ...(p.environment === undefined ? [] : showEnv
              ? [`    environment (${p.environment.length}):`, ...p.environment.map((v) => `      ${v}`)]
              : [`    environment (${p.environment.length} variables, values hidden; --show-env shows them): ${p.environment.join(' ')}`]),
          ]),
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
        const { withSnapshotLock } = await import('../../store/locks.js');
        const r = remote ? (await remote.agentClient(ctx).removeSnapshot(target)).result
          : await withSnapshotLock(store.root, target, `a change of snapshot ${target}`, () => removeSnapshot(store, target));
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
        const { withSnapshotLock } = await import('../../store/locks.js');
        const m = await withSnapshotLock(store.root, target, `a change of snapshot ${target}`, async () => foldInto(store, await store.get(target), levels));
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
          ...(values['keep-every'] !== undefined ? { keepEveryMs: positiveDuration(values['keep-every'], '--keep-every') } : {}),
          ...(values['max-depth'] !== undefined ? { maxDepth: wholeNumber(values['max-depth'], '--max-depth') } : {}),
          ...(values['flatten-older-than'] !== undefined ? { flattenOlderThanMs: positiveDuration(values['flatten-older-than'], '--flatten-older-than') } : {}),
          ...(values['stale-after'] !== undefined ? { staleMs: parseDuration(values['stale-after'], '--stale-after') } : {}),
          ...(values['logs-max-age'] !== undefined ? { logsMaxAgeMs: parseDuration(values['logs-max-age'], '--logs-max-age') } : {}),
          ...(values['logs-keep'] !== undefined ? { logsKeep: wholeNumber(values['logs-keep'], '--logs-keep') } : {}),
        };
        const r = await gc(store, policy, values['dry-run'] === true);
        if (ctx.json) { printJson({ ...r, leftovers: r.leftovers.map(leftoverRow), keptLeftovers: r.keptLeftovers.map(leftoverRow) }); return 0; }
        const would = (done: string, plan: string): string => (r.dryRun ? plan : done);
        const lines = [
          `${would('removed', 'would remove')} ${r.remove.length} snapshot(s)${r.remove.length ? `: ${r.remove.join(', ')}` : ''}; kept ${r.keep.length}; ` +
          `${would('folded', 'would fold')} ${r.dryRun ? r.fold.length : r.compacted.length} chain(s); ${formatBytes(r.freedBytes)} of snapshots ${would('freed', 'to free')}`,
        ];
        for (const l of r.leftovers) {
          lines.push(`${would('removed', 'would remove')} leftover ${l.id} (${l.tier ?? 'store'}, ${formatBytes(l.bytes)}, ${formatAge(l.ageMs)} old): ` +
            `${l.ownerAlive === false ? `its ${l.op ?? 'operation'}'s process is gone` : l.damaged ? `unreadable intent record (${l.damaged})` : 'no operation owns it'}`);
        }
        for (const l of r.keptLeftovers) {
          lines.push(`kept leftover ${l.id} (${formatBytes(l.bytes)}): ${l.ownerAlive === true ? `its ${l.op ?? 'operation'} is still running` : `younger than --stale-after (${formatAge(l.ageMs)} old)`}`);
        }
        for (const o of r.orphans) lines.push(`${would('removed', 'would remove')} ${o.dir} (${formatBytes(o.bytes)} of RAM): ${o.reason}`);
        if (r.logs.length) lines.push(`${would('removed', 'would remove')} ${r.logs.length} old operation log(s)`);
        for (const d of r.damaged) lines.push(`damaged snapshot ${d.id} kept (${d.reason}); \`ferry snapshots rm ${d.id}\` removes it`);
        process.stdout.write(lines.join('\n') + '\n');
        return 0;
      }
      default:
        throw new FerryError('ERR_USAGE', `snapshots: unknown subcommand '${sub}'`, { hint: 'ferry snapshots [ls|inspect ID|rm ID|compact ID|gc]' });
    }
  },
};

/** A duration that must be more than zero. */
function positiveDuration(v: string, flag: string): number {
  const ms = parseDuration(v, flag);
  if (!(ms > 0)) throw new FerryError('ERR_USAGE', `${flag} must be more than zero`, { hint: 'use e.g. 1h' });
  return ms;
}

/** 0, 1, 2 ... (as checkpoint's --max-depth: 0 means every snapshot whole). */
function wholeNumber(v: string, flag: string): number {
  if (!/^\d+$/.test(v)) throw new FerryError('ERR_USAGE', `snapshots gc: ${flag} must be a whole number, not '${v}'`, { hint: `e.g. ${flag} 2${flag === '--max-depth' ? ' (0: every snapshot whole)' : ''}` });
  return Number(v);
}

function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : s < 172800 ? `${Math.round(s / 3600)}h` : `${Math.round(s / 86400)}d`;
}

