import { lstat, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checksumDir } from '../store/checksums.js';
import { acquireLock } from '../store/locks.js';
import { PARENT_LINK } from '../store/parent-link.js';
import { sealSnapshot } from '../store/seal.js';
import type { InterruptedOperation, Store } from '../store/store.js';
import { hostFacts } from '../targets/host.js';
import { liveStartTime } from '../targets/process.js';
import { isFerryError } from '../util/errors.js';
import { engineChannels, type RecoveredEvent } from './channels.js';
import type { CheckpointIntent } from './checkpoint.js';

/** How long a dumped tree may take to be ended by the CRIU its dead ferry left behind. */
const KILL_GRACE_MS = 10_000;

/**
 * Crash recovery. A checkpoint whose ferry was killed (SIGKILL, a crash, the machine going down)
 * left an intent record and a pending snapshot. The next command on the store finishes it:
 * - the dump was complete (CRIU reached post-dump and was told to go on, or its log says it
 *   finished) and the workload is gone: the images are all that is left of it, so they are
 *   checksummed and committed as a snapshot, and that is announced;
 * - otherwise (the workload still runs: CRIU resumed it, or --leave-running) the partial
 *   snapshot is removed.
 * Never does it leave the user with neither the process nor a visible snapshot.
 */
export async function recoverInterrupted(store: Store): Promise<RecoveredEvent[]> {
  let found: InterruptedOperation[];
  try {
    found = await store.interrupted();
  } catch {
    return []; // an unreadable store is reported by the command itself
  }
  const out: RecoveredEvent[] = [];
  for (const op of found) {
    // A migration's images half received by an agent that died: the source kept its copy.
    const receive = op.intent.op === 'receive-images';
    if (op.intent.op !== 'checkpoint' && !receive) continue; // other operations' leftovers are gc's to sweep
    const lock = await acquireLock(store.root, `recover-${op.intent.id}`, `the recovery of snapshot ${op.intent.id}`).catch(() => undefined);
    if (!lock) continue; // another command is recovering it right now
    try {
      const e = receive ? await dropReceived(store, op) : await recoverOne(store, op);
      if (e) {
        out.push(e);
        if (engineChannels.recovered.hasSubscribers) engineChannels.recovered.publish(e);
      }
    } finally {
      await lock.release();
    }
  }
  return out;
}

async function dropReceived(store: Store, op: InterruptedOperation): Promise<RecoveredEvent> {
  await (await store.adopt(op.intent)).abandon();
  return { snapshot: op.intent.id, action: 'removed', reason: 'images of a migration whose receiving agent was killed (the source kept its copy)' };
}

async function recoverOne(store: Store, op: InterruptedOperation): Promise<RecoveredEvent | undefined> {
  const p = op.intent.payload as Partial<CheckpointIntent>;
  const id = op.intent.id;
  const pending = await store.adopt(op.intent);
  if (!op.dirExists) {
    await pending.abandon();
    return undefined;
  }
  const workDir = store.operationDir('checkpoint', id);
  const dumped = op.intent.phase === 'dumped' || await dumpFinished(workDir);
  const alive = async () => p.rootPid !== undefined && (await liveStartTime(p.rootPid)) === (p.rootStartTime ?? undefined);
  let running = await alive();
  if (dumped && running && !p.leaveRunning) {
    // CRIU was told to go on just before ferry died: it is ending the tree now.
    const until = Date.now() + KILL_GRACE_MS;
    while (running && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
      running = await alive();
    }
  }
  const label = p.label ?? `the workload of snapshot ${id}`;
  if (!dumped || running || p.leaveRunning || !p.target || !p.options || !p.criuVersion) {
    await pending.abandon();
    return { snapshot: id, action: 'removed', reason: running ? `the checkpoint of ${label} was interrupted; ${label} still runs` : `the checkpoint of ${label} was interrupted before its dump was complete` };
  }
  if (await lstat(join(pending.dir, PARENT_LINK)).then(() => true, () => false)) {
    // Interrupted in the middle of a forward-dedup rewrite: too delicate to guess; keep it.
    return { snapshot: id, action: 'kept', reason: `the dump of ${label} is complete but was interrupted while deduplicating; its images are kept in ${pending.dir}` };
  }
  try {
    await sealSnapshot({
      pending, workDir, started: p.startedAt ?? Date.now(), criuMs: 0, criuVersion: p.criuVersion, name: p.name ?? undefined,
      target: p.target, options: p.options, host: await hostFacts(), logsOptional: true,
      images: async () => ({ files: await checksumDir(pending.dir) }),
    });
  } catch (err) {
    return { snapshot: id, action: 'kept', reason: `the dump of ${label} is complete but could not be committed (${isFerryError(err) || err instanceof Error ? err.message : String(err)}); its images are kept in ${pending.dir}` };
  }
  return { snapshot: id, action: 'committed', reason: `ferry was stopped while committing the checkpoint of ${label}; its dump was complete` };
}

/** CRIU's own word that the dump finished (runc's dumps leave no post-dump to ferry). */
async function dumpFinished(workDir: string): Promise<boolean> {
  const log = await readFile(join(workDir, 'dump.log'), 'utf8').catch(() => '');
  return /Dumping finished successfully/.test(log.slice(-4096));
}
