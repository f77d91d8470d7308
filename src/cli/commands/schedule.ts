import type { ScheduleView } from '../../scenarios/schedules.js';
import { parseDuration } from '../../store/config.js';
import { FerryError } from '../../util/errors.js';
import { emitJson, parse, positiveInt, type Command, type CommandContext, type Output } from '../command.js';
import { style } from '../output.js';
import { resolvePeer } from '../peer-ref.js';
import { agentClient } from '../remote.js';

export const command: Command = {
  summary: 'Periodic --leave-running snapshots of a workload, run by this host\'s agent: page dedup (newest-flat),\n' +
    'the newest --keep kept, each optionally replicated to a standby host, where `ferry failover NAME` restores\n' +
    'the newest complete replica. Schedules survive an agent restart. ls lists them (last snapshot, its age,\n' +
    'the replication lag, failures); rm stops one (its snapshots and replicas stay).',
  usage: 'ferry schedule <name|container:ID> --every DUR [--keep N] [--tier memory|disk] [--replicate-to HOST|URL [--to-token-file FILE]] [--json]\n' +
    '       ferry schedule ls [--json]\n' +
    '       ferry schedule rm ID [--json]\n' +
    '  --every         the interval (e.g. 30s, 5m); runs never overlap\n' +
    '  --keep          snapshots kept here and replicas kept on the standby (default 3)\n' +
    '  --tier          this host\'s tier for the snapshots (default disk)\n' +
    '  --replicate-to  the standby: an agent URL (http://ADDR:PORT) or a testbed host name (h2)\n' +
    '  Runs through this host\'s agent ($FERRY_AGENT or --agent URL).',
  async run(argv, ctx) {
    if (!ctx.agent) {
      throw new FerryError('ERR_USAGE', 'ferry schedule needs an agent: schedules are run by `ferry agent`', { hint: 'give --agent URL (or set $FERRY_AGENT), e.g. inside `ferry testbed exec h1 -- …`' });
    }
    const [first, ...rest] = argv;
    if (first === 'ls') {
      parse(rest, {}, 'schedule ls', false);
      const { schedules } = await agentClient(ctx).request<{ schedules: ScheduleView[] }>('GET', '/v1/schedules');
      if (ctx.json) emitJson(ctx.out, { schedules });
      else renderList(schedules, ctx.out);
      return 0;
    }
    if (first === 'rm') {
      const { positionals } = parse(rest, {}, 'schedule rm');
      const [id, ...extra] = positionals;
      if (id === undefined || extra.length) throw new FerryError('ERR_USAGE', 'schedule rm: give one schedule id', { hint: 'ferry schedule ls shows them' });
      const { schedule } = await agentClient(ctx).request<{ schedule: ScheduleView }>('DELETE', `/v1/schedules/${encodeURIComponent(id)}`);
      if (ctx.json) emitJson(ctx.out, { removed: schedule.id, schedule });
      else ctx.out.stdout(`removed schedule ${schedule.id} of ${schedule.target} (its ${schedule.snapshots.length} snapshots${schedule.replicas.length ? ` and ${schedule.replicas.length} replicas` : ''} are kept)\n`);
      return 0;
    }
    return add(argv, ctx);
  },
};

async function add(argv: string[], ctx: CommandContext): Promise<number> {
  const { values, positionals } = parse(argv, {
    every: { type: 'string' }, keep: { type: 'string' }, tier: { type: 'string' }, 'replicate-to': { type: 'string' }, 'to-token-file': { type: 'string' },
  }, 'schedule');
  const [target, ...extra] = positionals;
  if (target === undefined || extra.length) throw new FerryError('ERR_USAGE', 'schedule: give one workload name or container:ID', { hint: 'ferry schedule web --every 30s --keep 5' });
  if (values.every === undefined) throw new FerryError('ERR_USAGE', 'schedule: --every DUR is required', { hint: 'e.g. --every 30s' });
  const everyMs = Math.round(parseDuration(values.every, '--every'));
  const tier = values.tier;
  if (tier !== undefined && tier !== 'memory' && tier !== 'disk') throw new FerryError('ERR_USAGE', `--tier must be memory or disk, not '${tier}'`);
  const peer = values['replicate-to'] !== undefined ? await resolvePeer(values['replicate-to'], values['to-token-file']) : undefined;
  const body = {
    target, everyMs,
    ...(values.keep !== undefined ? { keep: positiveInt(values.keep, '--keep', 'schedule') } : {}),
    ...(tier !== undefined ? { tier } : {}),
    ...(peer ? { replicateTo: { url: peer.url, ...(peer.token !== undefined ? { token: peer.token } : {}), ...(peer.name !== undefined ? { name: peer.name } : {}) } } : {}),
  };
  const { schedule } = await agentClient(ctx).request<{ schedule: ScheduleView }>('POST', '/v1/schedules', body, { timeoutMs: 120_000 });
  if (ctx.json) emitJson(ctx.out, { schedule });
  else {
    ctx.out.stdout(`${schedule.id}\n`);
    ctx.out.stderr(`${style.green('scheduled')} ${target} every ${values.every}, keeping ${schedule.keep}${schedule.replicateTo ? `, replicated to ${schedule.replicateTo.name ?? schedule.replicateTo.url}` : ''}; first snapshot ${schedule.lastSnapshot ?? '?'}\n`);
  }
  return 0;
}

function renderList(list: ScheduleView[], out: Output): void {
  if (!list.length) {
    out.stdout('no schedules (add one with `ferry schedule NAME --every 30s`)\n');
    return;
  }
  const secs = (s: number | null) => (s === null ? '-' : `${s.toFixed(1)}s`);
  out.stdout(`${'ID'.padEnd(14)}  ${'TARGET'.padEnd(20)}  ${'EVERY'.padStart(7)}  KEEP  ${'LAST AGE'.padStart(8)}  ${'LAG'.padStart(7)}  RUNS  FAILED  STANDBY\n`);
  for (const s of list) {
    out.stdout(`${s.id.padEnd(14)}  ${s.target.padEnd(20)}  ${`${s.everyMs / 1000}s`.padStart(7)}  ${String(s.keep).padStart(4)}  ${secs(s.lastSnapshotAgeSeconds).padStart(8)}  ${secs(s.replicationLagSeconds).padStart(7)}  ${String(s.runs).padStart(4)}  ${String(s.failures + s.replicationFailures).padStart(6)}  ${s.replicateTo?.name ?? s.replicateTo?.url ?? '-'}\n`);
    if (s.lastError) out.stdout(`${''.padEnd(14)}  last error: ${s.lastError.code}: ${s.lastError.message}\n`);
    if (s.lastReplicationError) out.stdout(`${''.padEnd(14)}  last replication error: ${s.lastReplicationError.code}: ${s.lastReplicationError.message}\n`);
  }
}
