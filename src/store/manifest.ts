import type { DumpStats } from '../criu/images/stats.js';

/** What ferry records about every snapshot, beside CRIU's images (manifest.json). */
export interface SnapshotManifest {
  /** Format version of this manifest. */
  format: 1;
  id: string;
  /** A user-given name, if any. */
  name: string | undefined;
  /** The snapshot this one builds on (none yet: every snapshot is whole). */
  parent: string | undefined;
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
  };
  host: { hostname: string; kernel: string; arch: string; cpuFlags: string[] };
  criu: { version: string };
  /** CRIU options that must be repeated at restore. */
  options: { tcpEstablished: boolean; extUnixSk: boolean; fileLocks: boolean; shellJob: boolean };
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
