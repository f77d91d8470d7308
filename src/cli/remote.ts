import { AgentClient } from '../agent/client.js';
import type { CheckpointBody, RestoreBody } from '../agent/schemas.js';
import { engineChannels, type PhaseEvent, type TransferEvent } from '../engine/channels.js';
import type { CheckpointRequest, CheckpointResult, RestoreRequest, RestoreResult } from '../engine/engine.js';
import type { Job, JobKind } from '../engine/jobs.js';
import type { SnapshotManifest } from '../store/manifest.js';
import { isErrorCode } from '../util/error-codes.js';
import { FerryError, InterruptedError } from '../util/errors.js';
import { MigrationError } from '../migrate/errors.js';
import { emitJson, type CommandContext, type Output } from './command.js';
import { progressLine } from './progress.js';

/**
 * The CLI's remote mode (`--agent URL`): a command's request becomes a job on the agent; its phase
 * events feed the same progress line (republished on the engine's phase channel here), Ctrl-C or
 * SIGTERM cancels the job (a checkpoint stops at its safe point there), and the job's result is
 * printed as the local command prints its own — `--json` is the result itself, which the agent
 * shapes with the same functions — with the same exit codes (the error's code).
 */
/** The client of the agent the command runs through (--agent URL / $FERRY_AGENT, with its token). */
export function agentClient(ctx: CommandContext): AgentClient {
  const agent = ctx.agent;
  if (!agent) throw new FerryError('ERR_INTERNAL', 'remote mode without an agent URL');
  return new AgentClient({ url: agent.url, ...(agent.token !== undefined ? { token: agent.token } : {}) });
}

async function runJob(ctx: CommandContext, kind: JobKind, body: CheckpointBody | RestoreBody, what: string): Promise<{ job: Job; client: AgentClient }> {
  const client = agentClient(ctx);
  const submitted = kind === 'checkpoint' ? await client.checkpoint(body as CheckpointBody) : await client.restore(body as RestoreBody);
  return { job: await followJob(ctx, client, submitted, what, 'a checkpoint stops at its safe point'), client };
}

/**
 * Follows a submitted job to its end: its place in the line, phases and transfer bytes on the
 * progress line; SIGINT, SIGTERM or SIGHUP cancel it on the agent (`onCancel` says what that
 * means for this kind of job). Resolves with the succeeded job; a failed or cancelled one throws
 * its error (a MigrationError when the agent says where the workload is).
 */
export async function followJob(ctx: CommandContext, client: AgentClient, submitted: Job, what: string, onCancel: string): Promise<Job> {
  const kind = submitted.kind;
  const progress = progressLine(what, ctx.json);
  let signal: NodeJS.Signals | undefined;
  const onSignal = (s: NodeJS.Signals) => () => {
    if (signal) return;
    signal = s;
    ctx.out.stderr(`\nferry: ${s} received: cancelling job ${submitted.id} on the agent (${onCancel})…\n`);
    client.cancel(submitted.id).catch(() => undefined);
  };
  const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((s) => [s, onSignal(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  let job: Job;
  try {
    job = await client.wait(submitted.id, (e) => {
      // While it waits (to start, or for a freeze slot with its workload running): its place.
      if (e.type === 'progress') progress.note(queuedNote(e.queuePosition, e.queueLength));
      else if (e.type === 'state') progress.note(e.state === 'queued' && e.job.queuePosition !== undefined ? queuedNote(e.job.queuePosition, e.job.queueLength) : undefined);
      else if (e.type === 'transfer') engineChannels.transfer.publish({ id: -1, operation: kind, bytes: e.bytes, totalBytes: e.totalBytes } satisfies TransferEvent);
      else if (engineChannels.phase.hasSubscribers) {
        engineChannels.phase.publish({ id: -1, operation: kind, phase: e.phase, state: e.state, ...(e.ms !== undefined ? { ms: e.ms } : {}) } satisfies PhaseEvent);
      }
    });
  } finally {
    progress.stop();
    for (const [s, h] of handlers) process.off(s, h);
  }
  if (job.state !== 'succeeded' || !job.result) {
    const e = job.error;
    const code = e && isErrorCode(e.code) ? e.code : 'ERR_INTERNAL';
    if (code === 'ERR_INTERRUPTED' || code === 'ERR_CANCELLED') throw new InterruptedError(signal ?? 'SIGTERM', e?.message ?? `job ${job.id} was cancelled`);
    if (e?.workload !== undefined) throw new MigrationError(code, e.message, { phase: e.phase ?? 'unknown', workload: e.workload, ...(e.hint ? { hint: e.hint } : {}) });
    throw new FerryError(code, e?.message ?? `job ${job.id} ended ${job.state}`, e?.hint ? { hint: e.hint } : {});
  }
  return job;
}

const queuedNote = (position: number, length: number | undefined) => `queued (position ${position}${length !== undefined ? ` of ${length}` : ''})`;

export async function remoteCheckpoint(req: CheckpointRequest, ctx: CommandContext, render: (r: CheckpointResult, json: boolean, out: Output, interrupt: AbortSignal) => void, priority?: number): Promise<number> {
  const { memoryBudget, target, interrupt: _, ...rest } = req;
  if (typeof target !== 'string' && typeof target !== 'number') throw new FerryError('ERR_USAGE', 'checkpoint: a parsed target reference cannot be sent to an agent');
  const body = {
    ...rest, target,
    ...(memoryBudget?.memoryBudgetBytes !== undefined ? { memoryBudget: memoryBudget.memoryBudgetBytes } : {}),
    ...(memoryBudget?.spillToDisk !== undefined ? { spillToDisk: memoryBudget.spillToDisk } : {}),
    ...(priority !== undefined ? { priority } : {}),
  } as CheckpointBody;
  const { job, client } = await runJob(ctx, 'checkpoint', body, `checkpointing ${target} (agent)`);
  const r = job.result!;
  if (ctx.json) {
    emitJson(ctx.out, r);
    return 0;
  }
  // The human summary needs the manifest (the command line, the container's pid): the agent has it.
  const snap = await client.snapshot(String(r['snapshot'])) as unknown as SnapshotManifest & { dir: string };
  const { dir, ...manifest } = snap;
  const deferred = r['deferredInterrupt'];
  render({
    snapshot: manifest.id, dir, manifest, telemetry: r['telemetry'], rebased: r['rebased'] ?? undefined,
    placement: { spilled: r['spilled'], ...(r['reason'] ? { reason: r['reason'] } : {}) },
  } as unknown as CheckpointResult, false, ctx.out, typeof deferred === 'string' ? AbortSignal.abort(deferred) : new AbortController().signal);
  return 0;
}

export async function remoteRestore(req: RestoreRequest, ctx: CommandContext, render: (id: string, r: Pick<RestoreResult, 'pid' | 'name' | 'timings' | 'container'>, out: Output) => void, priority?: number): Promise<number> {
  const { interrupt: _, ...body } = req;
  const { job } = await runJob(ctx, 'restore', { ...body, ...(priority !== undefined ? { priority } : {}) } as RestoreBody, `restoring ${req.snapshot} (agent)`);
  const r = job.result!;
  if (ctx.json) {
    emitJson(ctx.out, r);
    return 0;
  }
  const timings = r['timings'] as RestoreResult['timings'];
  render(req.snapshot, r['kind'] === 'container'
    ? { pid: r['pid'] as number, name: undefined, timings, container: { id: r['container'] as string, runtime: r['runtime'] as 'runc', stdout: r['stdout'] as string, stderr: r['stderr'] as string } }
    : { pid: r['pid'] as number, name: (r['name'] as string | null) ?? undefined, timings }, ctx.out);
  return 0;
}

