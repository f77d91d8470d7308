import { randomBytes } from 'node:crypto';
import { createEngine, type Engine } from '../engine/engine.js';
import type { SnapshotManifest } from '../store/manifest.js';
import type { Store } from '../store/store.js';
import { parseTargetRef } from '../targets/drivers.js';
import { processInfo } from '../targets/process.js';
import { readWorkload } from '../targets/run.js';
import { FerryError, isFerryError } from '../util/errors.js';
import { cloneToPeer, type PeerTarget } from './clone-remote.js';

/**
 * `ferry clone <snapshot|pid|name> [--count N]`: N copies of a workload, each restored in its
 * own pid namespace under a fresh name, the original left running ("remote fork", locally).
 *
 * A live source is checkpointed with `--leave-running` into the memory tier (spilling to disk
 * when it is full), restored N times, and that snapshot is removed again unless asked to keep it.
 * CRIU restores pids as they were: only a tree whose root is pid 1 of its own pid namespace (as
 * `ferry run` starts them) gets a new namespace on every restore, so copies never collide with
 * the original or each other. Anything else is refused before it is frozen.
 */
export interface CloneRequest {
  store: Store;
  /** A snapshot id of the store, a pid, or a `ferry run` workload name. */
  source: string;
  count: number;
  /** Keep the snapshot taken of a live source (default: removed once the clones run). */
  keepSnapshot?: boolean;
  /** Restore the copies on another host's agent (the migration protocol) instead of here. */
  to?: PeerTarget;
  interrupt?: AbortSignal;
  say?: (line: string) => void;
  engine?: Engine;
}

export interface Clone { pid: number; name: string }

export interface CloneResult {
  clones: Clone[];
  /** The snapshot the clones were restored from. */
  snapshot: string;
  /** False when it was taken for this clone and removed afterwards. */
  snapshotKept: boolean;
  source: { kind: 'snapshot' | 'live'; label: string };
  /** Where the copies run: this host, or the destination agent's URL. */
  host: string;
}

/** Some clones ran before one failed: they are kept running and listed with the error. */
export class CloneError extends FerryError {
  constructor(readonly clones: Clone[], readonly snapshot: string, cause: unknown, count: number) {
    const msg = cause instanceof Error ? cause.message : String(cause);
    super(isFerryError(cause) ? cause.code : 'ERR_INTERNAL',
      `clone ${clones.length + 1} of ${count} failed: ${msg}${clones.length ? ` (${clones.length} started and left running: ${clones.map((c) => `${c.name} pid ${c.pid}`).join(', ')})` : ''}`,
      { cause, hint: isFerryError(cause) && cause.hint ? cause.hint : `the snapshot ${snapshot} is kept; \`ferry stop NAME\` ends a clone (on its host)` });
    this.name = 'CloneError';
  }

  override jsonFields(): Record<string, unknown> {
    return { clones: this.clones, snapshot: this.snapshot };
  }
}

export const MAX_CLONES = 64;

function refuseNoNamespace(label: string): never {
  throw new FerryError('ERR_NO_PID_NAMESPACE', `${label} is not pid 1 of its own pid namespace: a copy beside it would need the same pids, which it still holds`, {
    hint: 'start the program with `ferry run` (its own pid namespace), then clone that workload',
  });
}

/** Refuses, before anything is frozen, a live source whose copies would collide with it. */
async function checkLiveSource(store: Store, source: string): Promise<string> {
  const ref = parseTargetRef(source);
  if (ref.kind === 'container') {
    throw new FerryError('ERR_USAGE', `clone: containers are not cloned yet (${source})`, { hint: 'checkpoint it with --leave-running and restore copies with `ferry restore SNAPSHOT --as container:NEW-ID`' });
  }
  let pid: number;
  let label: string;
  if (ref.kind === 'process') {
    pid = ref.pid;
    label = `pid ${pid}`;
  } else {
    const w = await readWorkload(store.workloadsDir, ref.name);
    if (!w) throw new FerryError('ERR_NO_WORKLOAD', `no snapshot, pid or workload named '${source}'`, { hint: '`ferry snapshots ls` and `ferry ps` list them' });
    pid = w.pid;
    label = `workload ${ref.name}`;
  }
  const info = await processInfo(pid);
  // A pid that is gone is the checkpoint's to report (with its usual errors).
  if (info && info.nsPid !== 1) refuseNoNamespace(ref.kind === 'process' ? label : `${label} (pid ${pid})`);
  return label;
}

function cloneNames(manifest: SnapshotManifest, count: number): string[] {
  const t = manifest.target;
  const base = (t.kind === 'process' ? t.workload ?? t.command[0]?.replace(/^.*\//, '') : undefined) ?? 'clone';
  const stem = `${base.replace(/[^A-Za-z0-9._-]/g, '').replace(/^[^A-Za-z0-9]+/, '').slice(0, 40) || 'clone'}-clone-${randomBytes(2).toString('hex')}`;
  return Array.from({ length: count }, (_, i) => `${stem}-${i + 1}`);
}

export async function cloneWorkload(req: CloneRequest): Promise<CloneResult> {
  if (!Number.isInteger(req.count) || req.count < 1 || req.count > MAX_CLONES) {
    throw new FerryError('ERR_USAGE', `clone: --count must be a whole number from 1 to ${MAX_CLONES}, not ${req.count}`);
  }
  const say = req.say ?? (() => undefined);
  const engine = req.engine ?? createEngine({ store: req.store });
  const intr = req.interrupt ? { interrupt: req.interrupt } : {};
  const stored = /^[0-9a-z]/.test(req.source) ? await req.store.find(req.source) : undefined;
  let manifest: SnapshotManifest;
  let taken = false;
  let label: string;
  if (stored) {
    manifest = stored.manifest;
    label = `snapshot ${req.source}`;
  } else {
    label = await checkLiveSource(req.store, req.source);
    say(`checkpointing ${label} (it keeps running)`);
    const c = await engine.checkpoint({
      target: req.source, leaveRunning: true, tier: 'memory', memoryBudget: { spillToDisk: true },
      // A temporary snapshot: whole, never rewriting the workload's other snapshots.
      dedup: false,
      // Connections the original holds stay the original's: the copies get them closed.
      tcpEstablished: true,
      ...intr,
    });
    manifest = c.manifest;
    taken = true;
  }
  const snapshot = manifest.id;
  if (manifest.target.kind !== 'process') {
    throw new FerryError('ERR_USAGE', `clone: ${snapshot} is a container snapshot; containers are not cloned yet`, { hint: 'restore copies with `ferry restore SNAPSHOT --as container:NEW-ID`' });
  }
  if (!manifest.target.ownPidNamespace) {
    if (taken) await engine.remove([snapshot]);
    refuseNoNamespace(`${label} (snapshot ${snapshot})`);
  }
  const clones: Clone[] = [];
  if (req.to) {
    const dir = (await req.store.get(snapshot)).dir;
    try {
      await cloneToPeer({ manifest, dir, peer: req.to, names: cloneNames(manifest, req.count), say, onClone: (c) => clones.push(c), ...intr });
    } catch (err) {
      throw new CloneError(clones, snapshot, err, req.count);
    }
  }
  for (const name of req.to ? [] : cloneNames(manifest, req.count)) {
    say(`restoring clone ${clones.length + 1}/${req.count} as ${name}`);
    try {
      const r = await engine.restore({ snapshot, as: name, ...(manifest.options.tcpEstablished ? { tcpClose: true } : {}), ...intr });
      clones.push({ pid: r.pid, name });
    } catch (err) {
      throw new CloneError(clones, snapshot, err, req.count);
    }
  }
  let kept = !taken || req.keepSnapshot === true;
  if (!kept) {
    const [out] = await engine.remove([snapshot]);
    kept = out?.ok !== true;
  }
  return { clones, snapshot, snapshotKept: kept, source: { kind: taken ? 'live' : 'snapshot', label }, host: req.to ? req.to.url : 'local' };
}
