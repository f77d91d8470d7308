/**
 * One incremental send while the workload runs: a `--leave-running` dump into this host's memory
 * tier, the delta against what the destination holds (pages-delta.ts), the delta streamed, the
 * local dump removed. What `ferry replicate` does once and an incremental migration's pre-copy
 * rounds do repeatedly. The workload is frozen only for CRIU's dump; any failure leaves it
 * running, and nothing of the round on this host.
 */
import { join } from 'node:path';
import type { Engine } from '../engine/engine.js';
import { buildDelta, type Delta } from './pages-delta.js';
import type { DeltaRoute, PagesClient } from './pages-client.js';
import type { HaveSet } from './pages-have.js';
import type { SendImagesResult } from './send-images.js';
import type { SnapshotManifest } from '../store/manifest.js';

export interface RoundFigures {
  /** Bytes sent (raw image bytes of the delta). */
  bytes: number;
  wireBytes: number;
  /** Bytes the same dump would have been whole. */
  flatBytes: number;
  /** Pages dumped; of those, pages the destination held (not sent). */
  pages: number;
  inParent: number;
  /** The dump (CRIU; the tree was frozen for `frozenMs` of it), the delta, the transfer. */
  dumpMs: number;
  frozenMs: number;
  deltaMs: number;
  sendMs: number;
  ms: number;
}

export interface RoundResult {
  /** The destination's new snapshot. */
  snapshot: string;
  /** What it built on (undefined: sent whole). */
  parent: string | undefined;
  figures: RoundFigures;
  /** What the destination holds now (the base of the next round). */
  have: HaveSet;
  /** The dumped target, as its manifest records it. */
  target: SnapshotManifest['target'];
  answer: SendImagesResult;
}

export interface RoundOptions {
  target: string | number;
  client: PagesClient;
  have: HaveSet | undefined;
  route: DeltaRoute;
  transfer: string;
  /** The local dump's snapshot id (it names what it is, should a killed ferry leave it behind). */
  name?: string;
  compress?: boolean;
  /** CRIU's --tcp-established (a workload with established connections). */
  tcpEstablished?: boolean;
  interrupt?: AbortSignal;
  onProgress?: (bytes: number) => void;
}

export async function sendRound(engine: Engine, o: RoundOptions): Promise<RoundResult> {
  const t0 = Date.now();
  const cp = await engine.checkpoint({
    target: o.target, ...(o.name !== undefined ? { name: o.name } : {}), leaveRunning: true, tier: 'memory', dedup: false, memoryBudget: { spillToDisk: true }, tcpEstablished: o.tcpEstablished === true,
    ...(o.interrupt ? { interrupt: o.interrupt } : {}),
  });
  const dumpMs = Date.now() - t0;
  let delta: Delta | undefined;
  try {
    delta = await buildDelta(cp.dir, join(cp.dir, '..', `.fold-${cp.snapshot}-delta`), o.have);
    const t1 = Date.now();
    const m = cp.manifest;
    const answer = await o.client.send(delta, o.route, {
      transfer: o.transfer, meta: { target: m.target, options: m.options, criuVersion: m.criu.version, host: m.host, criuMs: m.timings.criuMs },
      ...(o.compress !== undefined ? { compress: o.compress } : {}),
      ...(o.interrupt ? { signal: o.interrupt } : {}),
      ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    });
    return {
      snapshot: answer.snapshot, parent: delta.parent, target: m.target, answer,
      have: { base: answer.snapshot, sections: delta.have },
      figures: {
        bytes: answer.bytes, wireBytes: answer.wireBytes, flatBytes: delta.flatBytes, pages: delta.pages, inParent: delta.inParent,
        dumpMs, frozenMs: Math.round((m.stats?.frozen_time ?? 0) / 1000), deltaMs: delta.ms, sendMs: Date.now() - t1, ms: Date.now() - t0,
      },
    };
  } finally {
    await delta?.dispose().catch(() => undefined);
    await engine.remove([cp.snapshot]).catch(() => undefined);
  }
}
