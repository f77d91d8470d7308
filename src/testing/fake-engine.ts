import { engineChannels, type PhaseEvent } from '../engine/channels.js';
import type { CheckpointRequest, CheckpointResult, Engine, RemoveOutcome, RestoreRequest, RestoreResult } from '../engine/engine.js';
import { interruptedError } from '../engine/interrupt.js';
import type { SnapshotManifest } from '../store/manifest.js';
import { Store, type StoredSnapshot } from '../store/store.js';
import type { OperationTelemetry } from '../telemetry/operation.js';
import { FerryError } from '../util/errors.js';

/**
 * A test double of the Engine interface for the jobs registry's and the agent's route tests (no
 * root, no CRIU): a checkpoint publishes phases on the engine's channel like the real one, waits
 * for `gate` (so a test can hold it running), honours its interrupt before its "commit" phase and
 * stores an in-memory snapshot; a target 'fail' fails with ERR_NO_WORKLOAD.
 */
export class FakeEngine implements Engine {
  readonly store: Store;
  readonly snapshots = new Map<string, StoredSnapshot>();
  readonly checkpoints: CheckpointRequest[] = [];
  gate: Promise<void> = Promise.resolve();
  /** Per target: the resident bytes its freeze gate is told (default 0). */
  readonly rss = new Map<string | number, number>();
  /** Per target: a gate of its own, held before its pretend freeze ends (see hold()). */
  private readonly holds = new Map<string | number, Promise<void>>();
  private readonly deaths = new Map<string | number, (err: Error) => void>();
  private nextOp = 1_000_000;
  private seq = 0;

  constructor(storeRoot: string) {
    this.store = new Store({ root: storeRoot });
  }

  async checkpoint(req: CheckpointRequest): Promise<CheckpointResult> {
    this.checkpoints.push(req);
    const op = this.nextOp++;
    const phase = async (name: string, fn: () => Promise<void>) => {
      publish({ id: op, operation: 'checkpoint', phase: name, state: 'start' });
      const t0 = Date.now();
      try {
        await fn();
      } finally {
        publish({ id: op, operation: 'checkpoint', phase: name, state: 'end', ms: Date.now() - t0 });
      }
    };
    if (req.target === 'fail') throw new FerryError('ERR_NO_WORKLOAD', `no pid or workload named '${req.target}'`, { hint: 'see `ferry ps`' });
    await phase('criu', async () => {
      // Like CRIU's pre-dump and post-dump: the freeze gate is asked before the (pretend) freeze.
      const key = typeof req.target === 'object' ? '' : req.target;
      // As the real watchdog does, a target that dies while its gate waits ends the checkpoint (the wait goes on unawaited).
      const died = new Promise<never>((_, reject) => this.deaths.set(key, reject));
      died.catch(() => undefined);
      try {
        await Promise.race([req.beforeFreeze?.({ bytes: this.rss.get(key) ?? 0, tier: req.tier ?? 'disk', imagesDir: '/nonexistent/fake-engine-images' }), died]);
      } finally {
        this.deaths.delete(key);
      }
      await (this.holds.get(key) ?? this.gate);
      req.afterFreeze?.();
      if (req.interrupt?.aborted) throw interruptedError(req.interrupt, 'the workload keeps running');
    });
    let id = '';
    await phase('commit', () => {
      id = req.name ?? `fake-${++this.seq}`;
      this.snapshots.set(id, { manifest: manifest(id, req), dir: `${this.store.root}/${id}` });
      return Promise.resolve();
    });
    const snap = this.snapshots.get(id)!;
    return { snapshot: id, dir: snap.dir, manifest: snap.manifest, telemetry: telemetry('checkpoint'), placement: { tier: snap.manifest.tier, spilled: false } } as unknown as CheckpointResult;
  }

  /** Holds `target`'s checkpoints frozen until the returned function is called. */
  hold(target: string | number): () => void {
    let open = (): void => undefined;
    this.holds.set(target, new Promise<void>((r) => { open = r; }));
    return () => { this.holds.delete(target); open(); };
  }

  /** The target of a checkpoint waiting at its freeze gate dies: that checkpoint fails with ERR_TARGET_DIED. */
  kill(target: string | number): void {
    this.deaths.get(target)?.(new FerryError('ERR_TARGET_DIED', `${target} died while CRIU was dumping it; CRIU was stopped`));
  }

  restore(req: RestoreRequest): Promise<RestoreResult> {
    if (!this.snapshots.has(req.snapshot)) return Promise.reject(new FerryError('ERR_NO_SNAPSHOT', `no snapshot '${req.snapshot}'`));
    return Promise.resolve({ pid: 4242, snapshot: req.snapshot, kind: 'process', name: req.as, stats: undefined, timings: { totalMs: 1, verifyMs: 0, criuMs: 1 }, logPath: '/dev/null', telemetry: telemetry('restore') });
  }

  list(): Promise<StoredSnapshot[]> {
    return Promise.resolve([...this.snapshots.values()]);
  }

  inspect(id: string): Promise<StoredSnapshot> {
    const s = this.snapshots.get(id);
    return s ? Promise.resolve(s) : Promise.reject(new FerryError('ERR_NO_SNAPSHOT', `no snapshot '${id}' in the store`));
  }

  remove(ids: readonly string[]): Promise<RemoveOutcome[]> {
    return Promise.resolve(ids.map((id): RemoveOutcome => this.snapshots.delete(id)
      ? { id, ok: true, result: { removed: id, compacted: [] } }
      : { id, ok: false, error: new FerryError('ERR_NO_SNAPSHOT', `no snapshot '${id}' in the store`) }));
  }

  export(): never {
    throw new FerryError('ERR_EXPORT', 'the fake engine does not export');
  }

  import(): never {
    throw new FerryError('ERR_IMPORT', 'the fake engine does not import');
  }
}

function publish(e: PhaseEvent): void {
  engineChannels.phase.publish(e);
}

function telemetry(operation: 'checkpoint' | 'restore'): OperationTelemetry {
  return { operation, ok: true, startedAt: new Date().toISOString(), phasesMs: { total: 1 }, criu: undefined, host: { cpus: 2, memTotalBytes: undefined }, workload: { rootPid: undefined, rssBytes: undefined }, samples: [] } as unknown as OperationTelemetry;
}

function manifest(id: string, req: CheckpointRequest): SnapshotManifest {
  return {
    format: 1, id, name: req.name, parent: undefined, tier: req.tier ?? 'disk', createdAt: new Date().toISOString(),
    target: { kind: 'process', pid: typeof req.target === 'number' ? req.target : 4242, workload: typeof req.target === 'string' ? req.target : undefined, command: ['sleep', '1000'], ownPidNamespace: true },
    host: { hostname: 'test', kernel: '6', arch: 'x64', cpuFlags: [] }, criu: { version: '4.0' }, options: {} as SnapshotManifest['options'],
    stats: { frozen_time: 1500, pages_written: 10 } as SnapshotManifest['stats'], timings: { totalMs: 3, criuMs: 2, checksumMs: 1 }, bytes: 40960, algorithm: 'xxh3-128', files: {},
  };
}
