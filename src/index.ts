/**
 * ferry as a library: the package's one entry (`import … from 'ferry'`). It exports what a
 * program needs to checkpoint, restore, list, export and import snapshots and to handle
 * errors — the engine, its store, the CRIU client and their types — and nothing internal.
 * `ferry/errors` holds the errors alone. Operations need root and CRIU >= 4.2 (found through
 * $FERRY_CRIU, else `criu` on $PATH).
 */

// ---- The engine: checkpoint / restore / list / inspect / remove / export / import

/** ferry's one engine interface: every operation on snapshots of processes and containers. */
export type { Engine } from './engine/engine.js';
/** The local engine over a store directory (or a Store) and this host's CRIU. */
export { createEngine } from './engine/engine.js';
/** What `createEngine` takes: the store, and optionally a CRIU client. */
export type { EngineOptions } from './engine/engine.js';
/** What to checkpoint (a pid, a `ferry run` workload, `container:<id>`) and how. */
export type { CheckpointRequest } from './engine/engine.js';
/** A checkpoint's snapshot id, directory, manifest, placement and telemetry. */
export type { CheckpointResult } from './engine/engine.js';
/** Which snapshot to restore, and under which name. */
export type { RestoreRequest } from './engine/engine.js';
/** The restored root pid, its name, CRIU's stats and the timings. */
export type { RestoreResult } from './engine/engine.js';
/** One id's outcome of `Engine.remove`: its result, or the error that kept it. */
export type { RemoveOutcome } from './engine/engine.js';
/** What removing one snapshot did (which snapshots took over its pages). */
export type { RemoveResult } from './store/retention.js';
/** Page dedup with a workload's previous snapshot: 'newest-flat' (default) or 'forward'. */
export type { DedupMode } from './engine/checkpoint.js';
/** Where a checkpoint went (a memory-tier request may spill to disk) and why. */
export type { TierPlacement, BudgetOverrides } from './store/budget.js';
/** Phase timings, CRIU's stats and host samples of one operation. */
export type { OperationTelemetry } from './telemetry/operation.js';
/** The result of `Engine.export`: the chain written and its sizes. */
export type { ExportResult } from './store/archive.js';
/** Options of `Engine.import`: the tier, and another id for the imported snapshot. */
export type { ImportOptions } from './store/archive.js';
/** The result of `Engine.import`: the snapshots created and those already present. */
export type { ImportResult } from './store/archive.js';

// ---- The store

/** The snapshot store: a directory (disk tier) and a tmpfs directory (memory tier). */
export { Store } from './store/store.js';
/** What `new Store()` takes: the root directory and the memory tier's directory. */
export type { StoreOptions } from './store/store.js';
/** A snapshot in the store: its manifest and its directory. */
export type { StoredSnapshot } from './store/store.js';
/** The store the CLI uses when given none (/var/lib/ferry). */
export { DEFAULT_STORE } from './store/store.js';
/** What ferry records about every snapshot (manifest.json). */
export type { SnapshotManifest, Tier, RecordedOptions, ContainerTarget } from './store/manifest.js';

// ---- The CRIU client (for programs that drive CRIU directly, below the engine)

/** ferry's CRIU client: dump, restore, pre-dump, check, version and features over swrk. */
export { CriuClient } from './criu/client.js';
/** What `new CriuClient()` takes (a transport; default: swrk over the resolved CRIU binary). */
export type { CriuClientOptions } from './criu/client.js';
/** CRIU's version and the kernel features it reports. */
export type { CriuVersion, CriuFeatures } from './criu/client.js';
/** The outcomes of CRIU operations: duration, log path, notifications (and the restored pid). */
export type { OperationOutcome, DumpOutcome, RestoreOutcome } from './criu/client.js';
/** Options of a dump (a CRIU option set with the root pid) and of any CRIU operation. */
export type { DumpOptions, OperationControl } from './criu/client.js';
/** CRIU options in CRIU's own vocabulary (camelCase), each documented. */
export type { CriuOptions } from './criu/options.js';
/** Handlers for CRIU's notify scripts (e.g. 'post-dump'); throwing from one fails the operation. */
export type { NotifyHandlers, NotifyHandler, NotifyContext, NotifyReply, NotifyScript } from './criu/notify.js';
/** The minimum CRIU versions ferry needs, by purpose. */
export { CRIU_MIN } from './criu/client.js';

// ---- Events

/** The engine's diagnostics channels: phases, critical stretches, recovered operations. */
export { engineChannels } from './engine/channels.js';
/** The messages published on `engineChannels`. */
export type { PhaseEvent, CriticalEvent, RecoveredEvent, EngineOperation } from './engine/channels.js';

// ---- The agent's client (a ferry agent on another host or port, over HTTP; no server code loaded)

/** Typed calls of the agent's API: submit checkpoints/restores as jobs, follow their events, list snapshots. */
export { AgentClient } from './agent/client.js';
/** The agent's URL and token (and optionally another fetch). */
export type { AgentClientOptions, AgentHealth } from './agent/client.js';
/** The request bodies of POST /v1/checkpoints and /v1/restores. */
export type { CheckpointBody, RestoreBody } from './agent/schemas.js';
/** A job (checkpoint or restore) as the agent reports it, and its events. */
export type { Job, JobEvent, JobState, JobKind, JobPhase, JobError } from './engine/jobs.js';

// ---- Errors (also `ferry/errors`)

export * from './errors.js';
