import { createEngine } from '../../engine/engine.js';
import type { ReplicateResult } from '../../migrate/replicate.js';
import { FerryError } from '../../util/errors.js';
import { emitJson, parse, type Command, type Output } from '../command.js';
import { runInterruptible } from '../interrupt.js';
import { style } from '../output.js';
import { resolvePeer } from '../peer-ref.js';

export const command: Command = {
  summary: 'Keep a copy of a running workload on another host\'s agent (its replica), sent incrementally: only the pages\n' +
    'whose content that host lacks travel. A later `ferry migrate --strategy incremental` there starts from it.',
  usage: 'ferry replicate <pid|name|container:ID> --to HOST|URL [--to-token-file FILE] [--tier disk|memory] [--compress] [--json]\n' +
    '  --to          the destination: an agent URL (http://ADDR:PORT), or a testbed host name (h2)\n' +
    '  --to-token-file  the destination agent\'s token (default: $FERRY_PEER_TOKEN, else $FERRY_TOKEN; a testbed\'s own)\n' +
    '  --tier        where the destination keeps a first replica (default disk; later ones stay in its tier)\n' +
    '  --compress    zstd on the wire\n' +
    '  The workload keeps running (frozen only while CRIU dumps it); a failure leaves it, and the previous replica, as they were.',
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, {
      to: { type: 'string' },
      'to-token-file': { type: 'string' },
      tier: { type: 'string' },
      compress: { type: 'boolean' },
    }, 'replicate');
    const [target, ...extra] = positionals;
    if (!target || extra.length) throw new FerryError('ERR_USAGE', 'replicate: give exactly one pid, workload name or container:ID', { hint: 'ferry replicate NAME --to h2' });
    if (values.to === undefined) throw new FerryError('ERR_USAGE', 'replicate: --to HOST|URL is required', { hint: 'ferry replicate NAME --to h2 (a testbed host) or --to http://ADDR:PORT (an agent)' });
    const tier = values.tier ?? 'disk';
    if (tier !== 'memory' && tier !== 'disk') throw new FerryError('ERR_USAGE', `--tier must be memory or disk, not '${tier}'`);
    const peer = await resolvePeer(values.to, values['to-token-file']);
    const { replicate } = await import('../../migrate/replicate.js');
    const { result } = await runInterruptible(`replicating ${target} to ${values.to}`, ctx, (signal) => replicate(createEngine({ store: ctx.store }), {
      target: /^\d+$/.test(target) ? Number(target) : target, to: { url: peer.url, token: peer.token }, tier,
      ...(values.compress ? { compress: true } : {}), interrupt: signal,
    }));
    if (ctx.json) emitJson(ctx.out, result);
    else render(target, values.to, result, ctx.out);
    return 0;
  },
};

function render(target: string, to: string, r: ReplicateResult, out: Output): void {
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  out.stdout(`${r.destination.snapshot}\n`);
  out.stderr(`${style.green('replicated')} ${target} to ${to} as ${r.key} (snapshot ${r.destination.snapshot}${r.parent ? `, on ${r.parent}` : ', whole'}): ` +
    `${mib(r.bytesSent)} sent of ${mib(r.flatBytes)}, ${r.pagesHeld} of ${r.pages} pages already there; frozen ${r.frozenMs} ms, total ${r.totalMs} ms\n`);
}
