import { availableParallelism } from 'node:os';
import { createEngine } from '../../engine/engine.js';
import { LimitAdmission } from '../../engine/admission.js';
import { Jobs } from '../../engine/jobs.js';
import { runMigration } from '../../migrate/job.js';
import { STRATEGY_NAMES, type MigrateBody } from '../../migrate/protocol.js';
import { Admission, hostBudgets } from '../../scheduler/admission.js';
import { evacuate, restoreEvacuation, type EvacuateResult, type RestoreEvacuationResult } from '../../scenarios/evacuate.js';
import { jobRunner } from '../../scenarios/job-runner.js';
import { parseDuration } from '../../store/config.js';
import { FerryError } from '../../util/errors.js';
import { emitJson, parse, type Command, type CommandContext, type Output } from '../command.js';
import { style } from '../output.js';
import { resolvePeer } from '../peer-ref.js';

export const command: Command = {
  summary: 'Move every ferry workload and container off this host, and bring them back:\n' +
    '  evacuate --to-disk   checkpoint each one into the disk tier (they stop) and write a manifest that survives a reboot\n' +
    '  evacuate --to HOST   migrate each one to another host\'s agent (one migration at a time)\n' +
    '  restore              restore every workload of the newest evacuation manifest, each verified\n' +
    'Each workload is a job of the agent (queued, frozen when the scheduler admits it); one that fails is\n' +
    'reported and the others go on. Exit 1 when any failed.',
  usage: 'ferry host evacuate (--to-disk | --to HOST|URL [--to-token-file FILE] [--tier memory|disk] [--strategy NAME]) [--tcp-established] [--timeout DUR] [--json]\n' +
    '       ferry host restore [--timeout DUR] [--json]\n' +
    '  --to           another host: an agent URL (http://ADDR:PORT) or a testbed host name (h2)\n' +
    '  --strategy     the migrations\' strategy (as ferry migrate; default auto)\n' +
    '  --timeout      how long this command waits for the agent to finish (default 30m; it goes on there)\n' +
    '  Through this host\'s agent ($FERRY_AGENT or --agent); without one, in this process.',
  async run(argv, ctx) {
    const [verb, ...rest] = argv;
    if (verb === 'evacuate') return evacuateCommand(rest, ctx);
    if (verb === 'restore') return restoreCommand(rest, ctx);
    throw new FerryError('ERR_USAGE', `host: unknown subcommand '${verb ?? ''}'`, { hint: 'ferry host evacuate --to-disk | --to HOST; ferry host restore' });
  },
};

async function evacuateCommand(argv: string[], ctx: CommandContext): Promise<number> {
  const { values, positionals } = parse(argv, {
    'to-disk': { type: 'boolean' }, to: { type: 'string' }, 'to-token-file': { type: 'string' }, tier: { type: 'string' }, strategy: { type: 'string' },
    'tcp-established': { type: 'boolean' }, timeout: { type: 'string' },
  }, 'host evacuate');
  if (positionals.length) throw new FerryError('ERR_USAGE', `host evacuate: unexpected argument '${positionals[0] ?? ''}'`, { hint: 'it moves every workload of the host: ferry host evacuate --to-disk | --to HOST' });
  if ((values['to-disk'] === true) === (values.to !== undefined)) {
    throw new FerryError('ERR_USAGE', 'host evacuate: give exactly one of --to-disk and --to HOST', { hint: '--to-disk before a reboot or kernel upgrade; --to h2 to move everything to another host' });
  }
  const tier = values.tier;
  if (tier !== undefined && !isTier(tier)) throw new FerryError('ERR_USAGE', `--tier must be memory or disk, not '${tier}'`);
  const strategy = values.strategy;
  if (strategy !== undefined && !isStrategy(strategy)) throw new FerryError('ERR_USAGE', `host evacuate: unknown strategy '${strategy}'`, { hint: `strategies: ${STRATEGY_NAMES.join(', ')}` });
  if (strategy !== undefined && values.to === undefined) throw new FerryError('ERR_USAGE', 'host evacuate: --strategy is the migrations\' (with --to); --to-disk checkpoints');
  if (tier !== undefined && values.to === undefined) throw new FerryError('ERR_USAGE', 'host evacuate: --tier is the destination\'s tier (with --to); --to-disk always uses the disk tier');
  const limitMs = values.timeout !== undefined ? parseDuration(values.timeout, '--timeout') : 30 * 60_000;
  const peer = values.to !== undefined ? await resolvePeer(values.to, values['to-token-file']) : undefined;
  const to = peer ? { url: peer.url, ...(peer.token !== undefined ? { token: peer.token } : {}), ...(peer.name !== undefined ? { name: peer.name } : {}) } : undefined;
  const opts = { ...(tier !== undefined ? { tier } : {}), ...(strategy !== undefined ? { strategy } : {}), ...(values['tcp-established'] ? { tcpEstablished: true } : {}) };
  let r: EvacuateResult;
  if (ctx.agent) {
    const { remoteHostOperation } = await import('../host-operation.js');
    r = await remoteHostOperation(ctx, 'evacuate', { ...(to ? { to } : { toDisk: true }), ...opts }, limitMs) as unknown as EvacuateResult;
  } else {
    r = await withLocalJobs(ctx, (run, engine) => evacuate(engine, run, { to: to ?? 'disk', ...opts }));
  }
  if (ctx.json) emitJson(ctx.out, r);
  else renderEvacuation(r, ctx.out);
  return r.ok ? 0 : 1;
}

const isTier = (t: string): t is 'memory' | 'disk' => t === 'memory' || t === 'disk';
const isStrategy = (s: string): s is (typeof STRATEGY_NAMES)[number] => (STRATEGY_NAMES as readonly string[]).includes(s);

async function restoreCommand(argv: string[], ctx: CommandContext): Promise<number> {
  const { values, positionals } = parse(argv, { timeout: { type: 'string' } }, 'host restore');
  if (positionals.length) throw new FerryError('ERR_USAGE', `host restore: unexpected argument '${positionals[0] ?? ''}'`, { hint: 'it restores the newest evacuation: ferry host restore' });
  const limitMs = values.timeout !== undefined ? parseDuration(values.timeout, '--timeout') : 30 * 60_000;
  let r: RestoreEvacuationResult;
  if (ctx.agent) {
    const { remoteHostOperation } = await import('../host-operation.js');
    r = await remoteHostOperation(ctx, 'restore', {}, limitMs) as unknown as RestoreEvacuationResult;
  } else {
    r = await withLocalJobs(ctx, (run, engine) => restoreEvacuation(engine, run));
  }
  if (ctx.json) emitJson(ctx.out, r);
  else renderRestore(r, ctx.out);
  return r.ok ? 0 : 1;
}

/**
 * Without an agent: the same jobs registry and freeze scheduler the agent would use, in this
 * process; Ctrl-C cancels every job (a checkpoint stops at its safe point: the workload runs on).
 */
async function withLocalJobs<T>(ctx: CommandContext, fn: (run: ReturnType<typeof jobRunner>, engine: ReturnType<typeof createEngine>) => Promise<T>): Promise<T> {
  const engine = createEngine({ store: ctx.store });
  await engine.store.ensure();
  const jobs = new Jobs({
    engine, admission: new LimitAdmission(4 * availableParallelism()), scheduler: new Admission(hostBudgets()),
    migrate: (req, interrupt) => runMigration(engine, req.migrate as unknown as MigrateBody, interrupt),
  });
  const stop = (s: NodeJS.Signals) => () => {
    ctx.out.stderr(`\nferry: ${s} received: cancelling the remaining jobs (a checkpoint stops at its safe point; the workload runs on)…\n`);
    for (const j of jobs.list()) jobs.cancel(j.id, s);
  };
  const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((s) => [s, stop(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  try {
    return await fn(jobRunner(jobs), engine);
  } finally {
    for (const [s, h] of handlers) process.off(s, h);
    await jobs.close();
  }
}

function renderEvacuation(r: EvacuateResult, out: Output): void {
  if (!r.workloads.length) {
    out.stdout('nothing to evacuate: no ferry workload or container runs on this host\n');
    return;
  }
  for (const w of r.workloads) {
    const head = w.ok ? style.green('ok    ') : style.red('failed');
    const what = w.ok ? (w.snapshot !== undefined ? `snapshot ${w.snapshot}` : `pid ${w.destination?.pid ?? '?'} on ${r.to}`) : `${w.error?.code ?? ''}: ${w.error?.message ?? ''}`;
    out.stdout(`${head}  ${w.target.padEnd(24)}  ${what}\n`);
    if (!w.ok) out.stdout(`        ${''.padEnd(24)}  now: ${w.where}\n`);
  }
  out.stderr(`${r.evacuated} of ${r.workloads.length} evacuated to ${r.to} in ${r.ms} ms${r.evacuation ? `; manifest ${r.evacuation} (\`ferry host restore\` brings them back)` : ''}\n`);
}

function renderRestore(r: RestoreEvacuationResult, out: Output): void {
  for (const w of r.workloads) {
    const head = w.ok ? style.green('ok    ') : style.red('failed');
    const what = w.ok ? `pid ${w.pid ?? '?'}${w.already ? ' (already restored, running)' : ', verified'}` : `${w.error?.code ?? ''}: ${w.error?.message ?? ''}`;
    out.stdout(`${head}  ${w.target.padEnd(24)}  ${what}  (from ${w.snapshot})\n`);
  }
  for (const n of r.notEvacuated) out.stdout(`${style.yellow('skip  ')}  ${n.target.padEnd(24)}  was not evacuated${n.error ? ` (${n.error.code})` : ''}: it was never stopped\n`);
  out.stderr(`${r.restored} of ${r.workloads.length} restored from evacuation ${r.evacuation} (${r.evacuatedAt}) in ${r.ms} ms\n`);
}
