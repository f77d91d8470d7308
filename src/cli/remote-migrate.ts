import type { Job } from '../engine/jobs.js';
import type { MigrateResult } from '../migrate/migrate.js';
import type { MigrateBody } from '../migrate/protocol.js';
import type { CommandContext } from './command.js';
import { agentClient, followJob } from './remote.js';

/**
 * `ferry migrate` through this host's agent: the migration is a job there (it outlives this
 * command); its phases and bytes feed the progress line; Ctrl-C cancels it (before the commit
 * point the source copy resumes). The result and errors are the local command's.
 */
export async function remoteMigrate(body: MigrateBody, ctx: CommandContext): Promise<MigrateResult> {
  const client = agentClient(ctx);
  const { job: submitted } = await client.request<{ job: Job }>('POST', '/v1/migrations', body);
  const job = await followJob(ctx, client, submitted, `migrating ${body.target} to ${body.to.name ?? body.to.url} (agent)`, 'before its commit point the workload resumes on the source');
  return job.result as unknown as MigrateResult;
}
