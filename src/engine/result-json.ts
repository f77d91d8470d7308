import type { CheckpointResult } from './checkpoint.js';
import type { RestoreResult } from './restore.js';

/**
 * The JSON shapes of a checkpoint's and a restore's result: what `ferry checkpoint --json` and
 * `ferry restore --json` print, and what an agent job's `result` holds. One function each, called
 * by both, so the two interfaces cannot drift apart.
 */
export function checkpointJson(r: CheckpointResult, opts: { deferredInterrupt?: string } = {}): Record<string, unknown> {
  const m = r.manifest;
  const t = m.target;
  return {
    snapshot: r.snapshot, tier: m.tier, target: t.kind === 'container' ? { kind: 'container', id: t.id, runtime: t.runtime, driver: t.driver, bundle: t.bundle } : { kind: 'process', pid: t.pid, workload: t.workload ?? null },
    ...(t.kind === 'container' ? { container: { id: t.id, runtime: t.runtime, driver: t.driver, bundle: t.bundle } } : {}),
    stats: m.stats ?? {}, timings: m.timings, bytesWritten: m.bytes,
    logicalBytes: m.logicalBytes ?? m.bytes, parent: m.parent ?? null, dedup: m.dedup ?? null, rebased: r.rebased ?? null, telemetry: r.telemetry,
    spilled: r.placement.spilled, ...(r.placement.reason ? { reason: r.placement.reason } : {}),
    ...(opts.deferredInterrupt ? { deferredInterrupt: opts.deferredInterrupt } : {}),
  };
}

export function restoreJson(r: RestoreResult): Record<string, unknown> {
  if (r.container) {
    const c = r.container;
    return { kind: 'container', container: c.id, runtime: c.runtime, pid: r.pid, snapshot: r.snapshot, stats: r.stats ?? {}, timings: r.timings, stdout: c.stdout, stderr: c.stderr, telemetry: r.telemetry };
  }
  return { kind: 'process', pid: r.pid, name: r.name ?? null, snapshot: r.snapshot, stats: r.stats ?? {}, timings: r.timings, telemetry: r.telemetry };
}
