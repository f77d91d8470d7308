/**
 * Admission: when a job may start. The Jobs registry asks before it runs an operation and
 * releases after; a job waiting here is not frozen (CRIU has not touched its target yet).
 * This is the seam the budget scheduler replaces (src/scheduler/); the limit below is the
 * simple stand-in: at most `limit` operations at once, first come first served.
 */
export interface Admission {
  /** Resolves with a release function once the job may run; rejects with `signal.reason` if aborted while waiting. */
  acquire(job: { id: string; kind: string }, signal: AbortSignal): Promise<() => void>;
  /** Jobs waiting to be admitted, in order. */
  waiting(): string[];
}

/** At most `limit` jobs run at once (default: one CRIU dump per core is the brief; the agent passes os.availableParallelism()). */
export class LimitAdmission implements Admission {
  private running = 0;
  private readonly queue: { id: string; start: () => void }[] = [];

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`admission limit must be a positive integer, not ${limit}`);
  }

  acquire(job: { id: string }, signal: AbortSignal): Promise<() => void> {
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason as Error);
      const release = () => {
        let done = false;
        return () => {
          if (done) return;
          done = true;
          this.running--;
          this.next();
        };
      };
      const entry = {
        id: job.id,
        start: () => {
          signal.removeEventListener('abort', onAbort);
          this.running++;
          resolve(release());
        },
      };
      const onAbort = () => {
        const i = this.queue.indexOf(entry);
        if (i >= 0) this.queue.splice(i, 1);
        reject(signal.reason as Error);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.queue.push(entry);
      this.next();
    });
  }

  waiting(): string[] {
    return this.queue.map((e) => e.id);
  }

  private next(): void {
    while (this.running < this.limit && this.queue.length) this.queue.shift()!.start();
  }
}
