import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import { Store } from '../../store/store.js';
import { runWorkload } from '../../targets/run.js';
import { parse, type Command } from '../command.js';
import { printJson } from '../output.js';

export const command: Command = {
  summary: 'Start a program detached, as pid 1 and session leader of its own pid namespace (so a restore\n' +
    'never collides with a live pid). Its stdout/stderr go to log files in the store.',
  usage: 'ferry run [--name NAME] [--json] -- CMD ARGS…',
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, { name: { type: 'string' } }, 'run');
    const store = new Store({ root: ctx.store });
    await store.ensure();
    const name = values.name ?? `${basename(positionals[0] ?? 'workload').replace(/[^A-Za-z0-9._-]/g, '')}-${randomBytes(2).toString('hex')}`;
    const rec = await runWorkload(store.workloadsDir, name, positionals);
    if (ctx.json) printJson({ pid: rec.pid, name: rec.name, stdout: rec.stdout, stderr: rec.stderr });
    else process.stdout.write(`started '${rec.name}' as pid ${rec.pid}\nlogs: ${rec.stdout}, ${rec.stderr}\n`);
    return 0;
  },
};
