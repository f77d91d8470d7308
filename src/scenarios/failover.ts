import type { Engine } from '../engine/engine.js';
import { isErrorCode, type ErrorCode } from '../util/error-codes.js';
import { FerryError } from '../util/errors.js';
import { jobError, type JobRunner } from './job-runner.js';
import { listReplicas, type ReplicaRecord } from './replicas.js';

/**
 * `ferry failover <name> [--from HOST]` on a standby: restores the newest complete replica of a
 * workload (replicas.ts: sealed here and confirmed by its source), as a restore job — the restore
 * checks the images against their checksums and verifies the pages before the workload runs —
 * then checks the workload is alive. A replica that fails to restore because it is damaged is
 * reported and the next older one is tried: an older complete state beats none. Any other failure
 * (the workload already runs here, a pid taken) ends the failover with its error.
 */
export interface FailoverRequest {
  /** The workload's name (or container:ID). */
  name: string;
  /** Only replicas from this source: its agent URL or hostname, as the replica records name it. */
  from?: { url?: string | undefined; host?: string | undefined };
}

export interface FailoverResult {
  ok: true;
  workload: string;
  pid: number;
  /** The replica restored (a snapshot of this store), when its source took it, and how old it was. */
  replica: string;
  takenAt: string;
  /** The state lost: from when the replica was taken to the failover. */
  replicaAgeMs: number;
  from: ReplicaRecord['from'];
  /** Newer replicas that could not be restored (damaged), with why. */
  skipped: { replica: string; takenAt: string; error: { code: string; message: string } }[];
  restoreMs: number;
  job: string;
}

const DAMAGE = new Set(['ERR_SNAPSHOT_DAMAGED', 'ERR_SNAPSHOT_CORRUPT', 'ERR_SNAPSHOT_BROKEN_CHAIN', 'ERR_NO_SNAPSHOT']);

export async function failover(engine: Engine, run: JobRunner, req: FailoverRequest): Promise<FailoverResult> {
  const t0 = Date.now();
  const all = (await listReplicas(engine.store.root)).filter((r) => r.workload === req.name);
  const from = req.from;
  const candidates = from ? all.filter((r) => (from.url !== undefined && r.from.url === from.url) || (from.host !== undefined && r.from.host === from.host)) : all;
  if (!candidates.length) {
    const others = [...new Set(all.map((r) => r.from.url ?? r.from.host))];
    throw new FerryError('ERR_NO_REPLICA', `no complete replica of '${req.name}' here${from ? ` from ${from.url ?? from.host ?? '?'}` : ''}`, {
      hint: others.length ? `replicas of it came from: ${others.join(', ')}` : `schedule it on its host with \`ferry schedule ${req.name} --every 30s --replicate-to THIS_HOST\``,
    });
  }
  const skipped: FailoverResult['skipped'] = [];
  for (const r of candidates) {
    const job = await run('restore', { snapshot: r.snapshot });
    const pid = job.result?.['pid'];
    if (job.state === 'succeeded' && typeof pid === 'number') {
      await new Promise((res) => setTimeout(res, 300));
      try {
        process.kill(pid, 0);
      } catch {
        throw new FerryError('ERR_TARGET_DIED', `${req.name} was restored from replica ${r.snapshot} (pid ${pid}) but is not running 300 ms later`, { hint: `see its logs and the restore log under the store's logs/; older replicas: \`ferry failover ${req.name}\` again after removing ${r.snapshot}` });
      }
      return {
        ok: true, workload: req.name, pid, replica: r.snapshot, takenAt: r.takenAt, replicaAgeMs: Math.max(0, t0 - Date.parse(r.takenAt)),
        from: r.from, skipped, restoreMs: Date.now() - t0, job: job.id,
      };
    }
    const e = jobError(job);
    if (!DAMAGE.has(e.code)) throw new FerryError(isCode(e.code), `failover of '${req.name}' to replica ${r.snapshot} failed: ${e.message}`, e.hint !== undefined ? { hint: e.hint } : {});
    skipped.push({ replica: r.snapshot, takenAt: r.takenAt, error: { code: e.code, message: e.message } });
  }
  throw new FerryError('ERR_SNAPSHOT_DAMAGED', `every replica of '${req.name}' here is damaged (${skipped.length} tried)`, { hint: `see \`ferry snapshots ls\`; ${skipped.map((s) => `${s.replica}: ${s.error.message}`).join('; ').slice(0, 500)}` });
}

function isCode(c: string): ErrorCode {
  return isErrorCode(c) ? c : 'ERR_INTERNAL';
}
