import type { Job, JobKind, JobRequest, Jobs } from '../engine/jobs.js';
import { FerryError } from '../util/errors.js';

/**
 * How a scenario runs one operation: as a job of the agent's registry (engine/jobs.ts), so it
 * queues behind the job admission and its checkpoint waits for the freeze scheduler like any
 * other; resolves with the job in its final state (it never throws for a failed job: the caller
 * reports it and goes on with the others).
 */
export type JobRunner = (kind: JobKind, request: JobRequest, priority?: number) => Promise<Job>;

export function jobRunner(jobs: Jobs): JobRunner {
  return async (kind, request, priority) => {
    const submitted = jobs.submit(kind, request, priority !== undefined ? { priority } : {});
    const done = await jobs.settled(submitted.id);
    if (!done) throw new FerryError('ERR_INTERNAL', `job ${submitted.id} vanished from the registry before it ended`);
    return done;
  };
}

/** A failed or cancelled job's error, as the scenario reports it. */
export function jobError(job: Job): { code: string; message: string; hint?: string } {
  const e = job.error;
  if (e) return { code: e.code, message: e.message, ...(e.hint !== undefined ? { hint: e.hint } : {}) };
  return { code: 'ERR_INTERNAL', message: `job ${job.id} ended ${job.state} without an error` };
}
