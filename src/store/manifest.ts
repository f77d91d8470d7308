import type { DumpStats } from '../criu/images/stats.js';
import { z } from 'zod';

/** What ferry records about every snapshot, beside CRIU's images (manifest.json). */
export interface SnapshotManifest {
  /** Format version of this manifest. */
  format: 1;
  id: string;
  /** A user-given name, if any. */
  name: string | undefined;
  /** The snapshot this one builds on (page dedup: its unchanged pages are read from there). */
  parent: string | undefined;
  /** Bytes of the same snapshot made flat (its own images plus the pages it takes from its chain). */
  logicalBytes?: number;
  /** What page dedup did at checkpoint. */
  dedup?: { parent: string; pages: number; inParent: number; savedBytes: number; ms: number };
  /** Ancestors folded into this snapshot after it was taken (compaction), oldest event first. */
  compacted?: { at: string; folded: string[] }[];
  tier: Tier;
  createdAt: string;
  target: {
    kind: 'process';
    /** Host pid of the root at checkpoint time. */
    pid: number;
    /** The `ferry run` workload name, when it was one. */
    workload: string | undefined;
    /** The root's command line. */
    command: string[];
    /** True when the root was pid 1 of its own pid namespace (restores never collide). */
    ownPidNamespace: boolean;
  } | ContainerTarget;
  host: { hostname: string; kernel: string; arch: string; cpuFlags: string[] };
  criu: { version: string };
  /** CRIU options chosen at checkpoint (those CRIU needs again are repeated at restore). */
  options: RecordedOptions;
  /** CRIU's own stats, under CRIU's names. */
  stats: DumpStats | undefined;
  timings: { totalMs: number; criuMs: number; checksumMs: number };
  /** Bytes of all image files. */
  bytes: number;
  /** The hash of `files` (ferry writes 'xxh3-128'; manifests without it predate the field). */
  algorithm: string;
  /** Per-file size and hash (hex), checked before every restore. */
  files: Record<string, { size: number; hash: string }>;
}

export type Tier = 'memory' | 'disk';

/**
 * The CRIU options a user chose at checkpoint, as recorded. targets/recorded-options.ts is the
 * one place they become CRIU options and runtime flags.
 */
export interface RecordedOptions {
  /** Established TCP connections travel (`--tcp-established`; dump and restore). */
  tcpEstablished: boolean;
  /** Unix sockets whose peer is outside the tree (`--ext-unix-sk`; dump and restore). */
  extUnixSk: boolean;
  /** File locks (`--file-locks`; dump and restore). */
  fileLocks: boolean;
  /** The tree is not a session leader (`--shell-job`; dump and restore). */
  shellJob: boolean;
  /** Half-open TCP connections are skipped (`--skip-in-flight`; dump). */
  skipInFlight?: boolean;
  /** Largest deleted-but-open file dumped whole, bytes (`--ghost-limit`; dump). */
  ghostLimit?: number;
  /** Resolve paths of inotify/fanotify watches by scanning (`--force-irmap`; dump). */
  forceIrmap?: boolean;
  /** Deleted-but-linked files are relinked (`--link-remap`; dump and restore). */
  linkRemap?: boolean;
  /** External resources (`--external`, e.g. `mnt[/data]:data`, `dev[maj/min]:key`; dump and restore). */
  external?: string[];
}

/** A runc or crun container (`container:<id>`), checkpointed by src/engine/container.ts. */
export interface ContainerTarget {
  kind: 'container';
  /** The container id at checkpoint time. */
  id: string;
  runtime: 'runc' | 'crun';
  /** The runtime's state directory (--root). */
  runtimeRoot: string;
  /** Who ran CRIU: the runtime's own checkpoint (runc) or ferry, with the runtime's view of the container (crun). */
  driver: 'runtime' | 'ferry';
  /** Bundle directory and rootfs (absolute) at checkpoint time; restore uses them unless told otherwise. */
  bundle: string;
  rootfs: string;
  /** Host pid of the container's init at checkpoint time. */
  pid: number;
  workload: undefined;
  /** The container process's args (from the spec). */
  command: string[];
  /** Containers have their own pid namespace here. */
  ownPidNamespace: boolean;
  /** Namespaces the container had of its own (spec names: pid, network, mount, ...). */
  namespaces: string[];
  /** The init's fds 0-2 as the kernel named them (`/dev/null`, `pipe:[ino]`). */
  stdio: string[];
  /** Bind mounts handed to CRIU as external: key (the destination, as runc names them) and host source. */
  externalMounts: { key: string; source: string }[];
}

/** Snapshot ids: also a safe single path component. */
export const SNAPSHOT_ID_PATTERN = /^[0-9a-z][0-9a-z._-]{0,127}$/;

const count = z.number().int().nonnegative();
/** A file a manifest may checksum: one name in the snapshot's directory. */
const fileName = z.string().refine((n) => n !== '' && n !== '.' && n !== '..' && !n.includes('/') && !n.includes('\0'), 'not a plain file name');

const ProcessTargetSchema = z.looseObject({
  kind: z.literal('process'),
  pid: z.number().int().positive(),
  workload: z.string().optional(),
  command: z.array(z.string()),
  ownPidNamespace: z.boolean(),
});
const ContainerTargetSchema = z.looseObject({
  kind: z.literal('container'),
  id: z.string(),
  runtime: z.enum(['runc', 'crun']),
  runtimeRoot: z.string(),
  driver: z.enum(['runtime', 'ferry']),
  bundle: z.string(),
  rootfs: z.string(),
  // 0 for a container imported from a runtime's archive, which does not record the pid.
  pid: z.number().int().nonnegative(),
  command: z.array(z.string()),
  ownPidNamespace: z.boolean(),
  namespaces: z.array(z.string()),
  stdio: z.array(z.string()),
  externalMounts: z.array(z.object({ key: z.string(), source: z.string() })),
});

/**
 * What a manifest.json must hold to be used. Objects are loose: fields added later are kept,
 * never stripped; fields ferry relies on are checked. (JSON drops `undefined`, so optional
 * fields may be absent.)
 */
export const ManifestSchema = z.looseObject({
  format: z.literal(1),
  id: z.string().regex(SNAPSHOT_ID_PATTERN, 'not a snapshot id'),
  name: z.string().optional(),
  parent: z.string().regex(SNAPSHOT_ID_PATTERN, 'not a snapshot id').optional(),
  logicalBytes: count.optional(),
  tier: z.enum(['memory', 'disk']),
  createdAt: z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'not a date'),
  target: z.discriminatedUnion('kind', [ProcessTargetSchema, ContainerTargetSchema]),
  host: z.looseObject({ hostname: z.string(), kernel: z.string(), arch: z.string(), cpuFlags: z.array(z.string()) }),
  criu: z.looseObject({ version: z.string() }),
  options: z.looseObject({ tcpEstablished: z.boolean(), extUnixSk: z.boolean(), fileLocks: z.boolean(), shellJob: z.boolean() }),
  stats: z.record(z.string(), z.unknown()).nullish(),
  timings: z.looseObject({ totalMs: z.number(), criuMs: z.number(), checksumMs: z.number() }),
  bytes: count,
  // Absent in manifests that predate the field (they are sha256).
  algorithm: z.string().default('sha256'),
  files: z.record(fileName, z.object({ size: count, hash: z.string().regex(/^[0-9a-f]+$/, 'not a hex hash') })),
});
