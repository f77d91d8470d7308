import { readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { PROJECT_ROOT } from '../criu/binary.js';
import { memcheckWorkload } from '../testing/workloads.js';
import { FerryError } from '../util/errors.js';
import { findOnPath } from '../util/path.js';
import { sleep } from './harness.js';
import type { BenchHost, Testbed } from './migrate-hosts.js';

/**
 * The migration benchmark's workloads, fresh for every sample, started on h1 with `ferry run`
 * (pid 1 and session leader of their own pid namespace; stdio in the host's store), so both arms
 * move the same kind of process:
 *   memcheck  N MiB of pseudo-random pages, rewritten as it runs (1000 pages/s); verified byte by
 *             byte by the restored process itself (SIGUSR1 → verdict), from the same incarnation.
 *   redis     redis-server holding N keys of (1 MiB − 64) characters: SHAKE-256 of the key's index
 *             as hex (4 random bits a byte; just under 1 MiB so jemalloc keeps each in a 1 MiB
 *             class, RSS ≈ N MiB); filled from h1 by test/workloads/redis-client.py, verified
 *             key by key from the destination host.
 */

export type MigrateWorkloadKind = 'memcheck' | 'redis';
export const MIGRATE_WORKLOADS: readonly MigrateWorkloadKind[] = ['memcheck', 'redis'];

export interface BenchWorkload {
  kind: MigrateWorkloadKind;
  /** Its `ferry run` name on h1. */
  name: string;
  /** Host pid of the original (pid 1 of its own pid namespace). */
  pid: number;
  /** Checks the copy running as `pid` on `host`; resolves with what was verified. */
  verify(host: BenchHost, pid: number): Promise<string>;
  /** Removes its scratch directory (its processes are the caller's). */
  cleanup(): Promise<void>;
}

const REDIS_PORT = 6379;
const REDIS_VALUE = 2 ** 20 - 64;
const CLIENT = join(PROJECT_ROOT, 'test', 'workloads', 'redis-client.py');

function need(name: string): string {
  const p = findOnPath(name);
  if (!p) throw new FerryError('ERR_WORKLOAD_SETUP', `bench migrate: ${name} is not installed`, { hint: 'run `make setup`' });
  return p;
}

/** `ferry run --name NAME --json -- CMD` on h1, here (not through the agent); the workload's host pid. */
async function ferryRun(bed: Testbed, name: string, cmd: string[], cwd: string): Promise<number> {
  const r = await bed.ferry(bed.host('h1'), ['run', '--name', name, '--json', '--', ...cmd], { local: true, cwd, timeoutMs: 30_000 });
  const pid = (JSON.parse(r.stdout) as { pid?: unknown }).pid;
  if (typeof pid !== 'number') throw new FerryError('ERR_BENCH', `bench migrate: ferry run ${name} printed no pid: ${r.stdout.slice(0, 300)}`);
  return pid;
}

/** The program `pid` runs (its comm), so a verification never talks to some other process. */
function requireComm(pid: number, comm: string): void {
  let got: string | undefined;
  try { got = readFileSync(`/proc/${pid}/comm`, 'utf8').trim(); } catch { got = undefined; }
  if (got !== comm) throw new FerryError('ERR_WORKLOAD_VERIFY', `bench migrate: pid ${pid} is ${got === undefined ? 'gone' : `'${got}'`}, not the restored ${comm}`);
}

export async function startWorkload(bed: Testbed, kind: MigrateWorkloadKind, mib: number, name: string, scratch: string): Promise<BenchWorkload> {
  return kind === 'memcheck' ? startMemcheck(bed, mib, name, scratch) : startRedis(bed, mib, name, scratch);
}

async function startMemcheck(bed: Testbed, mib: number, name: string, scratch: string): Promise<BenchWorkload> {
  const inst = await memcheckWorkload({ mib }).prepare(scratch);
  try {
    const pid = await ferryRun(bed, name, inst.command, inst.dir);
    await inst.waitReady(30_000 + mib * 100);
    return {
      kind: 'memcheck', name, pid,
      verify: (_host, restored) => inst.verify(restored),
      cleanup: () => inst.cleanup(),
    };
  } catch (err) {
    await inst.cleanup();
    throw err;
  }
}

async function startRedis(bed: Testbed, mib: number, name: string, scratch: string): Promise<BenchWorkload> {
  const dir = await mkdtemp(join(scratch, 'redis-'));
  const python = need('python3');
  const keys = String(mib);
  const client = (host: BenchHost, mode: 'fill' | 'verify'): string[] => [python, CLIENT, host.address, String(REDIS_PORT), mode, keys, String(REDIS_VALUE), 'random'];
  try {
    const h1 = bed.host('h1');
    const pid = await ferryRun(bed, name, [need('redis-server'), '--port', String(REDIS_PORT), '--bind', '0.0.0.0', '--protected-mode', 'no',
      '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', dir, '--loglevel', 'warning'], dir);
    // Ready when it takes the data (a refused connection fails before any SET: the retry is clean).
    const deadline = Date.now() + 15_000;
    for (;;) {
      const r = await bed.run(h1, client(h1, 'fill'), `redis fill in h1`, { allowFail: true, timeoutMs: 60_000 + mib * 100 });
      if (r.code === 0) break;
      if (Date.now() > deadline) throw new FerryError('ERR_BENCH', `bench migrate: redis-server on h1 took no data within 15 s: ${r.stderr.trim().slice(-400)}`);
      await sleep(100);
    }
    return {
      kind: 'redis', name, pid,
      async verify(host, restored) {
        requireComm(restored, 'redis-server');
        const r = await bed.run(host, client(host, 'verify'), `redis verify in ${host.name}`, { allowFail: true, timeoutMs: 60_000 + mib * 100 });
        const v = JSON.parse(r.stdout || '{}') as { verified?: number; bad?: number };
        if (r.code !== 0 || v.verified !== mib) {
          throw new FerryError('ERR_WORKLOAD_VERIFY', `bench migrate: redis on ${host.name} verified ${v.verified ?? 0} of ${mib} keys (${v.bad ?? '?'} wrong): ${r.stderr.trim().slice(-300)}`);
        }
        return `keys=${mib} of ${REDIS_VALUE} chars verified`;
      },
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
