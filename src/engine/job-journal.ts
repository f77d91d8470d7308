import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Job records that outlive the agent: one JSON file per job in `<store>/jobs/`, rewritten
 * atomically (temp file, fsync, rename) at every change of state. A few files a job, written
 * rarely, read once at start-up: plain files do the job, and an embedded database (SQLite)
 * would add a native build for nothing this needs (no queries beyond "all of them").
 */
/** What the journal needs of a job record (jobs.ts's Job has these and more). */
export interface JournalRecord { id: string; kind: string; state: string; createdAt: string }

export class JobJournal<T extends JournalRecord = JournalRecord> {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  save(job: T): void {
    const path = join(this.dir, `${job.id}.json`);
    const tmp = `${path}.tmp-${process.pid}`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(job) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  }

  /** Drops a record (pruned from the history). */
  forget(id: string): void {
    try {
      unlinkSync(join(this.dir, `${id}.json`));
    } catch {
      // already gone
    }
  }

  /** Every readable record (a damaged or half-written one is skipped), oldest first. */
  load(): T[] {
    const out: T[] = [];
    for (const n of readdirSync(this.dir)) {
      if (!/^j-[0-9a-f]{16}\.json$/.test(n)) continue;
      try {
        const j = JSON.parse(readFileSync(join(this.dir, n), 'utf8')) as T;
        if (typeof j.id === 'string' && typeof j.state === 'string' && typeof j.kind === 'string') out.push(j);
      } catch {
        // a record being replaced when the agent died: its previous version was renamed over
      }
    }
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }
}
