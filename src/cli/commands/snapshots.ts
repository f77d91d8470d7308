import { memoryTierUsage, resolveBudget, storedBytes } from '../../store/budget.js';
import { Store } from '../../store/store.js';
import { formatBytes } from '../../util/format.js';
import { FerryError } from '../../util/errors.js';
import { parse, type Command } from '../command.js';
import { printJson } from '../output.js';

export const command: Command = {
  summary: 'List, inspect and remove snapshots.',
  usage: 'ferry snapshots [ls|inspect ID|rm ID] [--json]',
  async run(argv, ctx) {
    const { positionals } = parse(argv, {}, 'snapshots');
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
        await store.remove(target);
        if (ctx.json) printJson({ removed: target });
        else process.stdout.write(`removed ${target}\n`);
        return 0;
      }
      default:
        throw new FerryError('ERR_USAGE', `snapshots: unknown subcommand '${sub}'`, { hint: 'ferry snapshots [ls|inspect ID|rm ID]' });
    }
  },
};
