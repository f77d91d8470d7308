import { AgentClient } from '../agent/client.js';
import type { MigrateBody } from '../migrate/protocol.js';
import { engineChannels, type PhaseEvent, type TransferEvent } from '../engine/channels.js';
import type { Job } from '../engine/jobs.js';
import type { MigrateResult } from '../migrate/migrate.js';
import { MigrationError } from '../migrate/errors.js';
import { isErrorCode } from '../util/error-codes.js';
import { FerryError, InterruptedError } from '../util/errors.js';
import type { CommandContext } from './command.js';
import { startProgress } from './progress.js';

/**
 * `ferry migrate` through this host's agent: the migration is a job there (it outlives this
 * command); its phases feed the progress line; Ctrl-C cancels it (before the commit point the
 * source copy resumes). The result and errors are the local command's.
 */
export async function remoteMigrate(body: MigrateBody, ctx: CommandContext): Promise<MigrateResult> {
  const agent = ctx.agent!;
  const client = new AgentClient({ url: agent.url, ...(agent.token !== undefined ? { token: agent.token } : {}) });
  const { job: submitted } = await client.request<{ job: Job }>('POST', '/v1/migrations', body);
  const stop = startProgress(`migrating ${body.target} to ${body.to.name ?? body.to.url} (agent)`, ctx.json);
  let signal: NodeJS.Signals | undefined;
  const onSignal = (s: NodeJS.Signals) => () => {
    if (signal) return;
    signal = s;
    ctx.out.stderr(`\nferry: ${s} received: cancelling migration job ${submitted.id} (before its commit point the workload resumes on the source)…\n`);
    client.cancel(submitted.id).catch(() => undefined);
  };
  const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((s) => [s, onSignal(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  let job: Job;
  try {
    job = await client.wait(submitted.id, (e) => {
      if (e.type === 'transfer') engineChannels.transfer.publish({ id: -1, operation: 'migrate', bytes: e.bytes, totalBytes: e.totalBytes } satisfies TransferEvent);
      if (e.type === 'phase' && engineChannels.phase.hasSubscribers) {
        engineChannels.phase.publish({ id: -1, operation: 'migrate', phase: e.phase, state: e.state, ...(e.ms !== undefined ? { ms: e.ms } : {}) } satisfies PhaseEvent);
      }
    });
  } finally {
    stop();
    for (const [s, h] of handlers) process.off(s, h);
  }
  if (job.state === 'succeeded' && job.result) return job.result as unknown as MigrateResult;
  const e = job.error;
  const code = e && isErrorCode(e.code) ? e.code : 'ERR_INTERNAL';
  if (code === 'ERR_INTERRUPTED' || code === 'ERR_CANCELLED') throw new InterruptedError(signal ?? 'SIGTERM', e?.message ?? `job ${job.id} was cancelled`);
  if (e?.workload !== undefined) throw new MigrationError(code, e.message, { phase: e.phase ?? 'unknown', workload: e.workload, ...(e.hint ? { hint: e.hint } : {}) });
  throw new FerryError(code, e?.message ?? `job ${job.id} ended ${job.state}`, e?.hint ? { hint: e.hint } : {});
}
