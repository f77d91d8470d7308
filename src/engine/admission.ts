/**
 * Admission: when a job may start. The Jobs registry asks before it runs an operation and
 * releases after; a job waiting here is not frozen (CRIU has not touched its target yet).
 * This is the seam the budget scheduler replaces (src/scheduler/); the limit below is the
 * simple stand-in: at most `limit` operations at once, first come first served.
 */
export interface Admission {
  /**
   * Resolves with a release function once the job may run; rejects with `signal.reason` if
   * aborted while waiting. A higher `priority` (default 0) goes first.
   */
  acquire(job: { id: string; kind: string; priority?: number }, signal: AbortSignal): Promise<() => void>;
  /** Jobs waiting to be admitted, in order. */
  waiting(): string[];
  /** Calls `fn` whenever the waiting line may have changed; returns the unsubscribe. */
  onChange?(fn: () => void): () => void;
}

/**
 * At most `limit` jobs run at once, higher priorities first, first come first served within a
 * priority (the agent passes a few per core: the freeze scheduler does the real admission).
 */
export class LimitAdmission implements Admission {
  private running = 0;
  private readonly queue: { id: string; priority: number; start: () => void }[] = [];
  private readonly listeners = new Set<() => void>();

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`admission limit must be a positive integer, not ${limit}`);
  }

  acquire(job: { id: string; priority?: number }, signal: AbortSignal): Promise<() => void> {
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
        priority: job.priority ?? 0,
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
        this.changed();
      };
      signal.addEventListener('abort', onAbort, { once: true });
      // Priority descending, then arrival.
      let i = this.queue.length;
      while (i > 0 && this.queue[i - 1]!.priority < entry.priority) i--;
      this.queue.splice(i, 0, entry);
      this.next();
    });
  }

  waiting(): string[] {
    return this.queue.map((e) => e.id);
  }

  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private next(): void {
    while (this.running < this.limit && this.queue.length) this.queue.shift()!.start();
    this.changed();
  }

  private changed(): void {
    for (const fn of this.listeners) fn();
  }
}
