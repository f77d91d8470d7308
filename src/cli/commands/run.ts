import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import { Store } from '../../store/store.js';
import { parseDuration } from '../../store/config.js';
import { parseAddressSpec } from '../../net/ipv4.js';
import { runWorkload } from '../../targets/run.js';
import { FerryError } from '../../util/errors.js';
import { emitJson, parse, type Command } from '../command.js';
import { runInterruptible } from '../interrupt.js';
import { printJson } from '../output.js';

/** How long `--ready` waits by default. */
const DEFAULT_READY_TIMEOUT_MS = 60_000;

export const command: Command = {
  summary: 'Start a program detached, as pid 1 and session leader of its own pid namespace (so a restore\n' +
    'never collides with a live pid). Its stdout/stderr go to log files in the store. --ip gives it a\n' +
    'service address, added on the host before it starts (on --ip-dev, else the interface whose subnet\n' +
    'holds it, else the default route\'s; prefix: the subnet\'s, else /32) and removed when it ends.\n' +
    '--ready PROBE returns only once the program is ready (tcp:PORT, tcp:HOST:PORT, file:/PATH, log:REGEX\n' +
    'on its stdout/stderr log, cmd:\'SHELL\' exiting 0), within --ready-timeout (default 60s; past it the\n' +
    'program is left running and the run fails). --warm KEY (with --ready): the first run boots, waits until\n' +
    'ready and takes a --leave-running snapshot; later runs restore it instead of booting. It boots cold\n' +
    '(and takes a fresh snapshot) when the executable, arguments, environment, working directory or an\n' +
    '--input FILE changed, or when the restore fails. `ferry warm ls|rm` manages the keys.',
  usage: 'ferry run [--name NAME] [--ip ADDR[/PREFIX] [--ip-dev DEV]] [--json] -- CMD ARGS…\n' +
    '       ferry run [--name NAME] --ready tcp:PORT|file:PATH|log:REGEX|cmd:SHELL [--ready-timeout DUR]\n' +
    '                 [--warm KEY [--input FILE]… [--tier memory|disk]] [--json] -- CMD ARGS…',
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, {
      name: { type: 'string' }, ip: { type: 'string' }, 'ip-dev': { type: 'string' },
      ready: { type: 'string' }, 'ready-timeout': { type: 'string' }, warm: { type: 'string' },
      input: { type: 'string', multiple: true }, tier: { type: 'string' },
    }, 'run');
    if (values['ip-dev'] !== undefined && values.ip === undefined) {
      throw new FerryError('ERR_USAGE', 'run: --ip-dev names the interface of a service address, and no --ip was given', { hint: 'ferry run --ip 10.0.0.50/24 --ip-dev eth0 -- CMD' });
    }
    const warmOnly = (['input', 'tier'] as const).filter((k) => values[k] !== undefined);
    if (values.warm === undefined && warmOnly.length) {
      throw new FerryError('ERR_USAGE', `run: --${warmOnly[0] ?? ''} applies to a warm start, and no --warm was given`, { hint: 'ferry run --warm KEY --ready tcp:PORT --input FILE -- CMD' });
    }
    if (values['ready-timeout'] !== undefined && values.ready === undefined) {
      throw new FerryError('ERR_USAGE', 'run: --ready-timeout bounds the wait of --ready, and no --ready was given', { hint: 'ferry run --ready tcp:PORT --ready-timeout 30s -- CMD' });
    }
    if (values.tier !== undefined && values.tier !== 'memory' && values.tier !== 'disk') {
      throw new FerryError('ERR_USAGE', `run: --tier must be memory or disk, not '${values.tier}'`);
    }
    const spec = values.ip !== undefined ? parseAddressSpec(values.ip) : undefined;
    const address = spec ? { ...spec, ...(values['ip-dev'] !== undefined ? { dev: values['ip-dev'] } : {}) } : undefined;
    const store = new Store({ root: ctx.store });
    await store.ensure();
    const name = values.name ?? `${basename(positionals[0] ?? 'workload').replace(/[^A-Za-z0-9._-]/g, '')}-${randomBytes(2).toString('hex')}`;
    if (values.ready !== undefined || values.warm !== undefined) {
      const readyTimeoutMs = values['ready-timeout'] !== undefined ? parseDuration(values['ready-timeout'], '--ready-timeout') : DEFAULT_READY_TIMEOUT_MS;
      if (!(readyTimeoutMs > 0)) throw new FerryError('ERR_USAGE', 'run: --ready-timeout must be more than 0', { hint: 'e.g. --ready-timeout 30s' });
      const { runReady } = await import('../../scenarios/warm.js');
      const { result: r } = await runInterruptible(values.warm !== undefined ? `starting ${name} (warm key ${values.warm})` : `starting ${name}`, ctx, (interrupt) => runReady({
        store, name, command: positionals, readyTimeoutMs, interrupt,
        // readyMs from this process's start: what the user waits for includes ferry's start-up.
        since: 0,
        ...(values.ready !== undefined ? { ready: values.ready } : {}),
        ...(values.warm !== undefined ? { warm: values.warm } : {}),
        ...(values.input ? { inputs: values.input } : {}),
        ...(values.tier === 'memory' || values.tier === 'disk' ? { tier: values.tier } : {}),
        ...(address ? { run: { address } } : {}),
        ...(ctx.json ? {} : { say: (line: string) => ctx.out.stderr(`ferry: ${line}\n`) }),
      }));
      if (ctx.json) {
        emitJson(ctx.out, {
          pid: r.pid, name: r.name, warm: r.warm, readyMs: r.readyMs, stdout: r.stdout, stderr: r.stderr,
          ...(r.snapshot !== undefined ? { snapshot: r.snapshot } : {}),
          ...(r.coldReasons ? { coldReasons: r.coldReasons } : {}),
          ...(r.snapshotError ? { snapshotError: r.snapshotError } : {}),
        });
        return 0;
      }
      ctx.out.stdout(`started '${r.name}' as pid ${r.pid}${r.warm ? ` from warm snapshot ${r.snapshot ?? ''}` : ''}` +
        `${r.readyMs !== null ? `, ready after ${r.readyMs} ms` : ''}\nlogs: ${r.stdout}, ${r.stderr}\n`);
      if (values.warm !== undefined && !r.warm) {
        ctx.out.stderr(r.snapshot !== undefined
          ? `ferry: warm snapshot ${r.snapshot} taken for key ${values.warm}: the next run restores it\n`
          : `ferry: warning: no warm snapshot was taken (${r.snapshotError?.message ?? 'unknown'}); the program runs on, and the next run boots cold\n`);
      }
      return 0;
    }
    const rec = await runWorkload(store.workloadsDir, name, positionals, address ? { address } : {});
    const a = rec.address ? { address: rec.address.address, prefix: rec.address.prefix, dev: rec.address.dev } : null;
    if (ctx.json) printJson({ pid: rec.pid, name: rec.name, stdout: rec.stdout, stderr: rec.stderr, address: a });
    else {
      process.stdout.write(`started '${rec.name}' as pid ${rec.pid}${a ? ` with service address ${a.address}/${a.prefix} on ${a.dev}` : ''}\nlogs: ${rec.stdout}, ${rec.stderr}\n`);
    }
    return 0;
  },
};
