import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import { Store } from '../../store/store.js';
import { parseAddressSpec } from '../../net/ipv4.js';
import { runWorkload } from '../../targets/run.js';
import { FerryError } from '../../util/errors.js';
import { parse, type Command } from '../command.js';
import { printJson } from '../output.js';

export const command: Command = {
  summary: 'Start a program detached, as pid 1 and session leader of its own pid namespace (so a restore\n' +
    'never collides with a live pid). Its stdout/stderr go to log files in the store. --ip gives it a\n' +
    'service address, added on the host before it starts (on --ip-dev, else the interface whose subnet\n' +
    'holds it, else the default route\'s; prefix: the subnet\'s, else /32) and removed when it ends.',
  usage: 'ferry run [--name NAME] [--ip ADDR[/PREFIX] [--ip-dev DEV]] [--json] -- CMD ARGS…',
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, { name: { type: 'string' }, ip: { type: 'string' }, 'ip-dev': { type: 'string' } }, 'run');
    if (values['ip-dev'] !== undefined && values.ip === undefined) {
      throw new FerryError('ERR_USAGE', 'run: --ip-dev names the interface of a service address, and no --ip was given', { hint: 'ferry run --ip 10.0.0.50/24 --ip-dev eth0 -- CMD' });
    }
    const spec = values.ip !== undefined ? parseAddressSpec(values.ip) : undefined;
    const address = spec ? { ...spec, ...(values['ip-dev'] !== undefined ? { dev: values['ip-dev'] } : {}) } : undefined;
    const store = new Store({ root: ctx.store });
    await store.ensure();
    const name = values.name ?? `${basename(positionals[0] ?? 'workload').replace(/[^A-Za-z0-9._-]/g, '')}-${randomBytes(2).toString('hex')}`;
    const rec = await runWorkload(store.workloadsDir, name, positionals, address ? { address } : {});
    const a = rec.address ? { address: rec.address.address, prefix: rec.address.prefix, dev: rec.address.dev } : null;
    if (ctx.json) printJson({ pid: rec.pid, name: rec.name, stdout: rec.stdout, stderr: rec.stderr, address: a });
    else {
      process.stdout.write(`started '${rec.name}' as pid ${rec.pid}${a ? ` with service address ${a.address}/${a.prefix} on ${a.dev}` : ''}\nlogs: ${rec.stdout}, ${rec.stderr}\n`);
    }
    return 0;
  },
};
