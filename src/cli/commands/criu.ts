import { CriuClient } from '../../criu/client.js';
import type { CriuOptions } from '../../criu/options.js';
import { FerryError } from '../../util/errors.js';
import { parse, positiveInt, type Command } from '../command.js';
import { printJson } from '../output.js';

const USAGE = `ferry criu <version|check|features|dump|restore> [options] [--json]

  version                           CRIU's version (RPC VERSION)
  check                             CRIU's basic kernel check (RPC CHECK)
  features                          kernel features CRIU can use (RPC FEATURE_CHECK)
  dump --pid PID --images-dir DIR   checkpoint a process tree into DIR (it is killed unless --leave-running)
       [--leave-running] [--tcp-established] [--ext-unix-sk] [--shell-job] [--file-locks]
  restore --images-dir DIR          restore the tree in DIR, detached; prints its pid
       [--tcp-established] [--ext-unix-sk] [--shell-job] [--file-locks]

Low-level: runs CRIU through ferry's RPC client with no checks of ferry's own. Each run writes
<verb>.log in the images directory; failures print CRIU's first error and the log around it.`;

const dumpRestoreFlags = {
  'images-dir': { type: 'string' },
  pid: { type: 'string' },
  'leave-running': { type: 'boolean' },
  'tcp-established': { type: 'boolean' },
  'ext-unix-sk': { type: 'boolean' },
  'shell-job': { type: 'boolean' },
  'file-locks': { type: 'boolean' },
} as const;

export const command: Command = {
  summary: 'Talk to CRIU directly through ferry\'s RPC client.',
  usage: USAGE,
  async run(argv, ctx) {
    const [sub, ...rest] = argv;
    const client = new CriuClient();
    const out = (json: unknown, text: string): number => {
      if (ctx.json) printJson(json);
      else process.stdout.write(text + '\n');
      return 0;
    };
    switch (sub) {
      case 'version': {
        parse(rest, {}, 'criu version', false);
        const v = await client.version();
        return out(v, `CRIU ${v.text}${v.gitid ? ` (${v.gitid})` : ''}`);
      }
      case 'check': {
        parse(rest, {}, 'criu check', false);
        const r = await client.check();
        if (ctx.json) printJson(r);
        else process.stdout.write(r.ok ? 'Looks good.\n' : `criu check failed: ${r.firstError ?? 'see the log'}\n`);
        return r.ok ? 0 : 1;
      }
      case 'features': {
        parse(rest, {}, 'criu features', false);
        const f = await client.features();
        return out(f, Object.entries(f).map(([k, v]) => `${k}: ${v ? 'yes' : 'no'}`).join('\n'));
      }
      case 'dump':
      case 'restore': {
        const { values } = parse(rest, dumpRestoreFlags, `criu ${sub}`, false);
        const imagesDir = values['images-dir'];
        if (!imagesDir) throw new FerryError('ERR_USAGE', `criu ${sub}: --images-dir is required`, { hint: 'see `ferry criu --help`' });
        const opts: CriuOptions = {
          imagesDir,
          ...(values['tcp-established'] ? { tcpEstablished: true } : {}),
          ...(values['ext-unix-sk'] ? { extUnixSk: true } : {}),
          ...(values['shell-job'] ? { shellJob: true } : {}),
          ...(values['file-locks'] ? { fileLocks: true } : {}),
        };
        if (sub === 'dump') {
          const pid = positiveInt(values.pid, '--pid', 'criu dump');
          const r = await client.dump({ ...opts, pid, ...(values['leave-running'] ? { leaveRunning: true } : {}) });
          return out({ ok: true, ...r }, `dumped pid ${pid} into ${imagesDir} in ${r.durationMs} ms (log: ${r.logPath})`);
        }
        if (values.pid !== undefined || values['leave-running']) {
          throw new FerryError('ERR_USAGE', 'criu restore: --pid and --leave-running are dump options', { hint: 'see `ferry criu --help`' });
        }
        const r = await client.restore(opts);
        return out({ ok: true, ...r }, `restored pid ${r.pid} from ${imagesDir} in ${r.durationMs} ms (log: ${r.logPath})`);
      }
      default:
        throw new FerryError('ERR_USAGE', sub ? `criu: unknown subcommand '${sub}'` : 'criu: which subcommand?', { hint: 'see `ferry criu --help`' });
    }
  },
};
