import type { PostcopyProgress } from './postcopy/handler.js';
import { z } from 'zod';
import { SNAPSHOT_ID_PATTERN } from '../store/manifest.js';
import type { Handoff } from '../engine/checkpoint.js';
import type { HostFacts } from '../targets/host.js';

/**
 * The migration protocol between a source and a destination agent: the destination's routes
 * and their bodies, one zod schema each (validation and the OpenAPI document come from them).
 *
 *   POST /v1/migrations/:id            preflight: can this host restore what will come? (nothing frozen yet)
 *   PUT  /v1/migrations/:id/images     the images, streamed (wire.ts); answers the sealed snapshot
 *   POST /v1/migrations/:id/restore    restores it, held before any restored code runs; answers once held
 *   POST /v1/migrations/:id/commit     the source copy is gone: let the restored copy run, take the address
 *   POST /v1/migrations/:id/abort      kill the held copy, remove everything received
 *   GET  /v1/migrations/:id            where it stands
 *
 * The source never ends its copy before the destination answered `restore` (a verified copy
 * exists, parked in CRIU), and the destination never lets its copy run before `commit`; a
 * destination that hears neither commit nor abort in time kills its copy (the source's
 * snapshot is kept until the commit is acknowledged).
 */

/** How a migration moves a workload (strategy.ts); `auto` picks one of the others. */
export const STRATEGY_NAMES = ['cold', 'stream', 'incremental', 'postcopy', 'precopy', 'auto'] as const;
export const CONCRETE_STRATEGIES = ['cold', 'stream', 'incremental', 'postcopy', 'precopy'] as const;
export type StrategyName = typeof STRATEGY_NAMES[number];
/** A strategy that actually moves a workload (`auto` picks one of these). */
export type ConcreteStrategy = typeof CONCRETE_STRATEGIES[number];

/** POST /v1/migrations (the source's agent): a migration from this host, run as a job — `ferry migrate`'s flags. */
const Url = z.string().max(2048).regex(/^https?:\/\/[^\s/]+(\/.*)?$/, 'an http(s) URL of a ferry agent');

export const MigrateBody = z.strictObject({
  target: z.union([z.string().regex(/^([A-Za-z0-9][A-Za-z0-9._-]{0,63}|container:[A-Za-z0-9][A-Za-z0-9_.-]{0,127})$/, 'a pid, a workload name or container:ID'), z.number().int().min(1).max(2 ** 22)]),
  to: z.strictObject({ url: Url, token: z.string().min(1).max(4096).optional(), name: z.string().max(64).optional() }),
  strategy: z.enum(STRATEGY_NAMES).optional(),
  tcpEstablished: z.boolean().optional(),
  compress: z.boolean().optional(),
  tier: z.enum(['memory', 'disk']).optional(),
  holdMs: z.number().int().min(1000).max(600_000).optional(),
  keepSnapshot: z.boolean().optional(),
  snapshotFirst: z.boolean().optional(),
});
export type MigrateBody = z.infer<typeof MigrateBody>;

export const MIGRATION_ID_PATTERN = /^m-[0-9a-f]{16}$/;
export const MigrationId = z.string().regex(MIGRATION_ID_PATTERN);

const Name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/);
const Ipv4 = z.string().regex(/^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/, 'an IPv4 address');

export const HostFactsSchema = z.strictObject({
  hostname: z.string().max(255),
  kernel: z.string().max(255),
  arch: z.string().max(64),
  cpuFlags: z.array(z.string().max(64)).max(1024),
});

export const ServiceAddressSchema = z.strictObject({
  address: Ipv4,
  prefix: z.number().int().min(0).max(32),
  dev: z.string().regex(/^[A-Za-z0-9_.:-]{1,15}$/).optional(),
});
export type ServiceAddress = z.infer<typeof ServiceAddressSchema>;

export const PreflightBody = z.strictObject({
  strategy: z.enum(CONCRETE_STRATEGIES),
  criuVersion: z.string().max(64),
  host: HostFactsSchema,
  target: z.strictObject({
    kind: z.enum(['process', 'container']),
    ownPidNamespace: z.boolean(),
    /** The `ferry run` name it runs under (restored under the same name). */
    workload: Name.optional(),
    /** Pids of the tree (checked free when it is not in its own pid namespace). */
    pids: z.array(z.number().int().min(1).max(2 ** 22)).max(65536),
    /** Containers: restored under the same id, from the same bundle path, by the same runtime. */
    container: z.strictObject({
      id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/),
      runtime: z.enum(['runc', 'crun']),
      bundle: z.string().min(1).max(4096).regex(/^\/[^\0]*$/, 'an absolute path'),
    }).optional(),
  }),
  /** About how many bytes will come (the tree's RSS). */
  bytes: z.number().int().min(0).max(2 ** 50),
  tier: z.enum(['memory', 'disk']),
  address: ServiceAddressSchema.optional(),
  /** How long the destination holds a restored copy waiting for commit or abort. */
  holdMs: z.number().int().min(1000).max(600_000).optional(),
  /**
   * A replica (a standby's copy, `ferry schedule --replicate-to`): the destination seals and keeps
   * the received snapshot, restores nothing, and the migration ends once the images are in. The
   * workload runs on at the source, so its name and pids are not checked free here (a failover checks).
   */
  replica: z.boolean().optional(),
});
export type PreflightBody = z.infer<typeof PreflightBody>;

export const RestoreMigrationBody = z.strictObject({
  snapshot: z.string().regex(SNAPSHOT_ID_PATTERN),
});

export const AbortBody = z.strictObject({
  reason: z.string().max(2000),
});

export type IncomingState = 'prepared' | 'receiving' | 'received' | 'restoring' | 'held' | 'committing' | 'committed' | 'aborted';

/** What GET /v1/migrations/:id answers. */
export interface IncomingView {
  id: string;
  state: IncomingState;
  createdAt: string;
  snapshot?: string;
  pid?: number;
  name?: string;
  error?: { code: string; message: string; hint?: string };
  /** Post-copy: the pages' progress (during the window), then its outcome. */
  postcopy?: PostcopyProgress;
}

export interface PreflightAnswer { migration: string; tier: 'memory' | 'disk'; criuVersion: string; host: string }
export interface RestoreAnswer { migration: string; pid: number | undefined; verifyMs: number; ms: number }
export interface CommitAnswer { migration: string; pid: number; name: string | undefined; snapshot: string; restoreMs: number; ms: number; snapshotKept: boolean }

/** What the source's image sender (send-images.ts) is given and answers, as migrate.ts calls it. */
export interface ImageMeta { target: Handoff['target']; options: Handoff['options']; criuVersion: string; name: string | undefined; host: HostFacts }
export interface ImageSendArgs {
  dir: string; meta: ImageMeta; url: string; token: string | undefined; migrationId: string; compress: boolean;
  signal: AbortSignal; onProgress?: (bytes: number) => void;
}
export interface ImageSendResult { bytes: number; wireBytes: number; files: number; ms: number; snapshot: string }
export type ImageSender = (a: ImageSendArgs) => Promise<ImageSendResult>;
