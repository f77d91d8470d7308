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
        const rows = all.map(({ manifest: m }) => ({
          id: m.id, createdAt: m.createdAt, tier: m.tier, pid: m.target.pid, workload: m.target.workload ?? null,
          command: m.target.command, bytes: m.bytes, criu: m.criu.version,
        }));
        if (ctx.json) printJson({ snapshots: rows, totalBytes: rows.reduce((a, r) => a + r.bytes, 0) });
        else if (!rows.length) process.stdout.write('no snapshots\n');
        else {
          for (const r of rows) {
            process.stdout.write(`${r.id}  ${r.createdAt}  ${r.tier.padEnd(6)}  ${formatBytes(r.bytes).padStart(9)}  ${r.workload ?? `pid ${r.pid}`}  ${r.command.join(' ').slice(0, 50)}\n`);
          }
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
