/** A valid manifest for unit tests of the store (no CRIU involved). */
import type { SnapshotManifest, Tier } from './manifest.js';

export function fakeManifest(id: string, tier: Tier, over: Partial<SnapshotManifest> = {}): SnapshotManifest {
  return {
    format: 1, id, name: undefined, parent: undefined, tier, createdAt: new Date().toISOString(),
    target: { kind: 'process', pid: 4242, workload: 'w', command: ['sleep', '1'], ownPidNamespace: false },
    host: { hostname: 'h', kernel: '6.1', arch: 'x64', cpuFlags: ['sse2'] },
    criu: { version: '4.2' },
    options: { tcpEstablished: false, extUnixSk: false, fileLocks: false, shellJob: false },
    stats: undefined,
    timings: { totalMs: 1, criuMs: 1, checksumMs: 0 },
    bytes: 5, algorithm: 'xxh3-128',
    files: { 'core-1.img': { size: 5, hash: '00ff' } },
    ...over,
  };
}
