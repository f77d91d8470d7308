import { createEngine } from '../../engine/engine.js';
import type { MigrateResult } from '../../migrate/migrate.js';
import { STRATEGY_NAMES } from '../../migrate/protocol.js';
import type { StrategyName } from '../../migrate/strategy.js';
import { resolvePeer } from '../peer-ref.js';
import { errorJson, exitCodeOf, FerryError } from '../../util/errors.js';
import { emitJson, parse, positiveInt, type Command, type CommandContext, type Output } from '../command.js';
import { runInterruptible } from '../interrupt.js';
import { style } from '../output.js';

export const command: Command = {
  summary: 'Move a running workload to another host\'s agent: freeze, dump, send, restore there, and end it here only\n' +
    'once the copy there is restored and held (a commit point). Any failure before that leaves it running here.',
  usage: 'ferry migrate <pid|name|container:ID> --to HOST|URL [--strategy auto|cold|postcopy|precopy] [--tcp-established] [--compress]\n' +
    '              [--tier memory|disk]' +
    ' [--to-token-file FILE] [--hold-ms MS] [--keep-snapshot] [--snapshot-first] [--json]\n' +
    '  --strategy    how it moves (default auto: picked from its size, the link and the kernel; the result says why):\n' +
    '                cold     freeze, dump, send, restore: downtime = dump + wire + restore\n' +
    '                postcopy dump all but the anonymous memory, restore it there and run it at once; the memory\n' +
    '                         follows (faults first, the rest pushed at wire speed). RISK: until the last page moved\n' +
    '                         the copy there depends on this host: if this host, its CRIU or the link dies in that\n' +
    '                         window the copy there is stopped (ERR_POSTCOPY_SOURCE_LOST, with the pages still here)\n' +
    '                precopy  CRIU pre-dump rounds: needs the kernel\'s soft-dirty tracking (refused without it)\n' +
    '  --to          the destination: an agent URL (http://ADDR:PORT), or a testbed host name (h2)\n' +
    '  --to-token-file  the destination agent\'s token (default: $FERRY_PEER_TOKEN, else $FERRY_TOKEN; a testbed\'s own)\n' +
    '  --compress    zstd on the wire (worth it on slow links with compressible memory)\n' +
    '  --hold-ms     how long the destination holds its restored copy for the commit (default 30000)\n' +
    '  --snapshot-first  postcopy: keep a snapshot of the workload here (taken just before the freeze) until the\n' +
    '                last page moved; if the window fails, the workload is restored from it here\n' +
    '  With $FERRY_AGENT (or --agent) the migration runs as a job on this host\'s agent and outlives the command.',
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, {
      to: { type: 'string' },
      'to-token-file': { type: 'string' },
      strategy: { type: 'string' },
      'tcp-established': { type: 'boolean' },
      compress: { type: 'boolean' },
      tier: { type: 'string' },
      'hold-ms': { type: 'string' },
      'keep-snapshot': { type: 'boolean' },
      'snapshot-first': { type: 'boolean' },
    }, 'migrate');
    const [target, ...extra] = positionals;
    if (!target || extra.length) throw new FerryError('ERR_USAGE', 'migrate: give exactly one pid or workload name', { hint: 'ferry migrate NAME --to h2' });
    if (values.to === undefined) throw new FerryError('ERR_USAGE', 'migrate: --to HOST|URL is required', { hint: 'ferry migrate NAME --to h2 (a testbed host) or --to http://ADDR:PORT (an agent)' });
    const strategy = values.strategy ?? 'auto';
    if (!isStrategy(strategy)) throw new FerryError('ERR_USAGE', `migrate: unknown strategy '${strategy}'`, { hint: `strategies: ${STRATEGY_NAMES.join(', ')}` });
    if (values['snapshot-first'] && strategy !== 'postcopy' && strategy !== 'auto') {
      throw new FerryError('ERR_USAGE', `migrate: --snapshot-first is post-copy's safety net; the ${strategy} strategy keeps the workload on this host until the commit anyway`, { hint: 'use it with --strategy postcopy (or auto), or drop it' });
    }
    const tier = values.tier ?? 'memory';
    if (!isTier(tier)) throw new FerryError('ERR_USAGE', `--tier must be memory or disk, not '${tier}'`);
    const peer = await resolvePeer(values.to, values['to-token-file']);
    const body = {
      target: /^\d+$/.test(target) ? Number(target) : target,
      to: { url: peer.url, ...(peer.token !== undefined ? { token: peer.token } : {}), ...(peer.name !== undefined ? { name: peer.name } : {}) },
      strategy, tier,
      ...(values['tcp-established'] ? { tcpEstablished: true } : {}),
      ...(values.compress ? { compress: true } : {}),
      ...(values['hold-ms'] !== undefined ? { holdMs: positiveInt(values['hold-ms'], '--hold-ms', 'migrate') } : {}),
      ...(values['keep-snapshot'] ? { keepSnapshot: true } : {}),
      ...(values['snapshot-first'] ? { snapshotFirst: true } : {}),
    };
    try {
      let r: MigrateResult;
      if (ctx.agent) {
        r = await (await import('../remote-migrate.js')).remoteMigrate(body, ctx);
      } else {
        const { migrate } = await import('../../migrate/migrate.js');
        const { releaseAddress, reclaimAddress } = await import('../../migrate/addresses.js');
        ({ result: r } = await runInterruptible(`migrating ${target} to ${values.to}`, ctx, (signal) =>
          migrate(createEngine({ store: ctx.store }), { ...body, interrupt: signal, releaseAddress, reclaimAddress })));
      }
      if (ctx.json) emitJson(ctx.out, r);
      else render(target, values.to, r, ctx.out);
      return 0;
    } catch (err) {
      return failed(err, ctx);
    }
  },
};

const isTier = (t: string): t is 'memory' | 'disk' => t === 'memory' || t === 'disk';
const isStrategy = (s: string): s is StrategyName => (STRATEGY_NAMES as readonly string[]).includes(s);

/** A failed migration: where the workload is, beside the error (the JSON has it at the top). */
function failed(err: unknown, ctx: CommandContext): number {
  const e = errorJson(err);
  const workload = typeof e['workload'] === 'string' ? e['workload'] : undefined;
  if (!ctx.json || workload === undefined) throw err;
  const { workload: _, ...error } = e;
  emitJson(ctx.out, { ok: false, error, workload });
  return exitCodeOf(err);
}

function render(target: string, to: string, r: MigrateResult, out: Output): void {
  out.stdout(`${r.destination.pid}\n`);
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  const phases = Object.entries(r.phases).map(([k, v]) => `${k} ${v} ms`).join(', ');
  out.stderr(`${style.green('migrated')} ${target} to ${to} (pid ${r.destination.pid}${r.destination.name ? `, workload ${r.destination.name}` : ''}): ` +
    `downtime ${r.downtimeMs} ms, total ${r.totalMs} ms, ${mib(r.bytesMoved)} moved (${mib(r.wireBytes)} on the wire)\n` +
    `  strategy: ${r.strategy} (${r.chosen.because})\n  phases: ${phases}\n`);
}
