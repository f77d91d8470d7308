import { createEngine } from '../../engine/engine.js';
import type { RestoreRequest, RestoreResult } from '../../engine/restore.js';
import { restoreJson } from '../../engine/result-json.js';
import { FerryError } from '../../util/errors.js';
import { emitJson, parse, type Command, type Output } from '../command.js';
import { runInterruptible } from '../interrupt.js';
import { jobPriority } from '../remote-options.js';

export const command: Command = {
  summary: 'Restore a snapshot (a process tree or a container), detached, after checking its checksums and that this host\n' +
    'can run it. Prints the new host pid (a container: container:ID).',
  usage: 'ferry restore <snapshot> [--as NAME | --clone] [--tcp-close] [--priority N] [--json]\n' +
    '       ferry restore <container snapshot> [--as container:<new-id> | --clone] [--bundle DIR] [--runtime runc|crun] [--runtime-root DIR] [--json]\n' +
    '  A snapshot whose workload still runs is refused: stop it (`ferry stop NAME`), or restore a copy with --as NAME\n' +
    '  (or --clone for a generated name). --tcp-close restores established TCP connections as closed.',
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, {
      as: { type: 'string' },
      clone: { type: 'boolean' },
      'tcp-close': { type: 'boolean' },
      priority: { type: 'string' },
      bundle: { type: 'string' },
      runtime: { type: 'string' },
      'runtime-root': { type: 'string' },
    }, 'restore');
    const [id, ...extra] = positionals;
    if (!id || extra.length) throw new FerryError('ERR_USAGE', 'restore: give exactly one snapshot id', { hint: 'list them with `ferry snapshots ls`' });
    const req: RestoreRequest = {
      snapshot: id,
      ...(values.as !== undefined ? { as: values.as } : {}),
      ...(values.clone ? { clone: true } : {}),
      ...(values['tcp-close'] ? { tcpClose: true } : {}),
      ...(values.bundle !== undefined ? { bundle: values.bundle } : {}),
      ...(values.runtime !== undefined ? { runtime: values.runtime } : {}),
      ...(values['runtime-root'] !== undefined ? { runtimeRoot: values['runtime-root'] } : {}),
    };
    // Through an agent (--agent URL): the same request as a job there, rendered the same way here.
    const priority = jobPriority(values.priority, ctx, 'restore');
    if (ctx.agent) return (await import('../remote.js')).remoteRestore(req, ctx, render, priority);
    const { result: r } = await runInterruptible(`restoring ${id}`, ctx, (signal) => createEngine({ store: ctx.store }).restore({ ...req, interrupt: signal }));
    if (ctx.json) emitJson(ctx.out, restoreJson(r));
    else render(id, r, ctx.out);
    return 0;
  },
};

/** The human summary: the new pid (or container:ID) on stdout, what was done on stderr. */
export function render(id: string, r: Pick<RestoreResult, 'pid' | 'name' | 'timings' | 'container'>, out: Output): void {
  const c = r.container;
  if (c) {
    out.stdout(`container:${c.id}\n`);
    out.stderr(`restored ${id} as ${c.runtime} container ${c.id} (pid ${r.pid}) in ${r.timings.totalMs} ms ` +
      `(checksums ${r.timings.verifyMs} ms, restore ${r.timings.criuMs} ms); stdout/stderr → ${c.stdout}, ${c.stderr}\n`);
    return;
  }
  out.stdout(`${r.pid}\n`);
  out.stderr(`restored ${id} as pid ${r.pid}${r.name ? ` (workload ${r.name})` : ''} in ${r.timings.totalMs} ms (images CRIU parses verified in ${r.timings.verifyMs} ms, then CRIU ${r.timings.criuMs} ms with the pages verified beside it)\n`);
}
