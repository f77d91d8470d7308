import type { Readable, Writable } from 'node:stream';
import { CriuClient } from '../criu/client.js';
import type { ExportResult, ImportOptions, ImportResult } from '../store/archive.js';
import type { StoredSnapshot } from '../store/store.js';
import { removeSnapshot, type RemoveResult } from '../store/retention.js';
import { Store } from '../store/store.js';
import { checkpoint, type CheckpointRequest, type CheckpointResult } from './checkpoint.js';
import { recoverInterrupted } from './recover.js';
import { restore, type RestoreRequest, type RestoreResult } from './restore.js';

/**
 * ferry's one engine interface: what the CLI, the agent and the library call, for processes and
 * containers alike. Every operation that reads or writes snapshots first finishes or undoes
 * checkpoints an earlier ferry was killed in the middle of (engine/recover.ts). `createEngine` gives the local implementation (this host's store and CRIU);
 * the agent's client will give a remote one with the same shape.
 */
export interface Engine {
  /** The store this engine works on. */
  readonly store: Store;
  /** Checkpoints a pid, a `ferry run` workload or `container:<id>` into the store. */
  checkpoint(req: CheckpointRequest): Promise<CheckpointResult>;
  /** Restores a snapshot (verified, checked against this host), detached. */
  restore(req: RestoreRequest): Promise<RestoreResult>;
  /** Every complete snapshot, oldest first. */
  list(): Promise<StoredSnapshot[]>;
  /** One snapshot's manifest and directory. */
  inspect(id: string): Promise<StoredSnapshot>;
  /** Removes snapshots; snapshots that build on one first take over its pages. One result per id. */
  remove(ids: readonly string[]): Promise<RemoveOutcome[]>;
  /** Writes a snapshot with its ancestors as one archive (tar + zstd) to `out`. */
  export(id: string, out: Writable, opts?: { level?: number }): Promise<ExportResult>;
  /** Imports an archive from `export`, checked before it appears. */
  import(input: Readable, opts?: ImportOptions): Promise<ImportResult>;
}

export type RemoveOutcome = { id: string; ok: true; result: RemoveResult } | { id: string; ok: false; error: unknown };

export interface EngineOptions {
  /** The store's directory, or a Store. */
  store: string | Store;
  /** CRIU client (default: the swrk transport over the resolved CRIU binary), made on first use. */
  criu?: CriuClient;
}

export { type CheckpointRequest, type CheckpointResult, type RestoreRequest, type RestoreResult };

/** The local engine: this host's store and CRIU. */
export function createEngine(options: EngineOptions): Engine {
  const store = typeof options.store === 'string' ? new Store({ root: options.store }) : options.store;
  let criu = options.criu;
  const client = () => (criu ??= new CriuClient());
  return {
    store,
    async checkpoint(req) {
      await recoverInterrupted(store);
      return checkpoint(store, req, client());
    },
    async restore(req) {
      await recoverInterrupted(store);
      return restore(store, req, client());
    },
    async list() {
      await recoverInterrupted(store);
      return store.list();
    },
    inspect: (id) => store.get(id),
    async remove(ids) {
      const out: RemoveOutcome[] = [];
      for (const id of ids) {
        try {
          out.push({ id, ok: true, result: await removeSnapshot(store, id) });
        } catch (error) {
          out.push({ id, ok: false, error });
        }
      }
      return out;
    },
    // Archives load tar and zstd: only when asked for (a checkpoint's start-up does not pay for them).
    export: async (id, out, opts = {}) => (await import('../store/archive.js')).exportSnapshot(store, id, out, opts),
    import: async (input, opts = {}) => (await import('../store/archive.js')).importArchive(store, input, opts),
  };
}
