import { Store } from '../../store/store.js';
import { stopWorkload } from '../../targets/workload-stop.js';
import { FerryError } from '../../util/errors.js';
import { emitJson, parse, type Command } from '../command.js';

const DEFAULT_TIMEOUT_MS = 10_000;

/** "10s", "500ms", "2m" or plain seconds ("10") → milliseconds. */
export function parseTimeout(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(v.trim());
  const ms = m ? Number(m[1]) * { ms: 1, s: 1e3, m: 60e3 }[(m[2] ?? 's') as 'ms' | 's' | 'm'] : NaN;
  if (!(ms >= 0) || ms > 3600e3) throw new FerryError('ERR_USAGE', `stop: --timeout '${v}' is not a duration up to 1h`, { hint: 'use e.g. 10s, 500ms or 2m (0 sends SIGKILL right away)' });
  return ms;
}

export const command: Command = {
  summary: 'End a workload started by `ferry run` (or restored from one): SIGTERM to its processes (the\n' +
    'namespace\'s init only if it handles SIGTERM: an init ignores it otherwise), then SIGKILL to the init\n' +
    'after --timeout (default 10s), which ends the whole pid namespace. Exits 0 once it is gone.',
  usage: 'ferry stop NAME [--timeout DUR] [--json]',
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, { timeout: { type: 'string' } }, 'stop');
    const [name, ...extra] = positionals;
    if (!name || extra.length) throw new FerryError('ERR_USAGE', 'stop: give one workload name', { hint: 'ferry stop NAME [--timeout 10s]; `ferry ps` lists them' });
    const timeoutMs = values.timeout === undefined ? DEFAULT_TIMEOUT_MS : parseTimeout(values.timeout);
    const store = new Store({ root: ctx.store });
    const r = await stopWorkload(store.workloadsDir, name, timeoutMs);
    if (ctx.json) {
      emitJson(ctx.out, r);
      return 0;
    }
    const how = r.outcome === 'terminated'
      ? `exited after SIGTERM (sent to ${r.sigtermSent} process(es))`
      : `killed: SIGKILL to its init${r.sigtermSent ? ` after SIGTERM to ${r.sigtermSent} process(es)` : ''}` +
        (r.initHandlesSigterm ? ' (it did not exit within --timeout)' : ' (the init has no SIGTERM handler, so it ignores SIGTERM)');
    ctx.out.stdout(`stopped '${r.name}' (pid ${r.pid}) in ${r.durationMs} ms: ${how}\n`);
    if (r.address) ctx.out.stdout(`service address ${r.address.address} ${r.address.removed ? 'removed' : 'was already gone'}\n`);
    return 0;
  },
};
