import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Jobs } from '../engine/jobs.js';

/**
 * The agent's Prometheus metrics, on a registry of its own (not prom-client's global one): fed by
 * the jobs registry's events, plus Node's default process metrics.
 */
export function createMetrics(jobs: Jobs): { registry: Registry; dispose(): void } {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const buckets = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
  const total = new Counter({ name: 'ferry_jobs_total', help: 'Jobs finished, by kind and outcome (succeeded, failed, cancelled)', labelNames: ['kind', 'outcome'], registers: [registry] });
  const duration = new Histogram({ name: 'ferry_job_duration_seconds', help: 'Jobs from start to end (queue wait excluded)', labelNames: ['kind', 'outcome'], buckets, registers: [registry] });
  const wait = new Histogram({ name: 'ferry_job_queue_wait_seconds', help: 'Time jobs waited for admission', labelNames: ['kind'], buckets, registers: [registry] });
  const phase = new Histogram({ name: 'ferry_phase_duration_seconds', help: "Engine phases' durations", labelNames: ['kind', 'phase'], buckets, registers: [registry] });
  const frozen = new Histogram({ name: 'ferry_checkpoint_frozen_seconds', help: "Time a checkpoint's tree was frozen (CRIU's frozen_time)", buckets: [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [registry] });
  const bytes = new Counter({ name: 'ferry_checkpoint_bytes_written_total', help: 'Bytes of snapshot images written by checkpoints', registers: [registry] });
  const downtime = new Histogram({ name: 'ferry_migration_downtime_seconds', help: 'Migrations from this host: from the freeze to the copy running on the destination', buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60], registers: [registry] });
  const moved = new Counter({ name: 'ferry_migration_bytes_moved_total', help: 'Image bytes migrations from this host sent (before compression)', registers: [registry] });
  const wire = new Counter({ name: 'ferry_migration_wire_bytes_total', help: 'Bytes migrations from this host put on the wire (after compression and framing)', registers: [registry] });
  new Gauge({ name: 'ferry_jobs_queued', help: 'Jobs waiting: for a freeze slot (CRIU started, the workload running) or to start', registers: [registry], collect() { this.set(jobs.queue().length); } });
  new Gauge({ name: 'ferry_jobs_running', help: 'Jobs running', registers: [registry], collect() { this.set(jobs.list().filter((j) => j.state === 'running').length); } });

  // When each queued job started waiting (a checkpoint waits again at its freeze gate).
  const queuedAt = new Map<string, number>();
  const unobserve = jobs.observe((job, e) => {
    if (e.type === 'phase') {
      if (e.state === 'end' && e.ms !== undefined) phase.observe({ kind: job.kind, phase: e.phase }, e.ms / 1000);
      return;
    }
    if (e.type === 'progress' || e.type === 'transfer') return;
    if (e.state === 'queued') queuedAt.set(job.id, performance.now());
    const since = queuedAt.get(job.id);
    if (since !== undefined && e.state !== 'queued') {
      queuedAt.delete(job.id);
      if (e.state === 'running') wait.observe({ kind: job.kind }, (performance.now() - since) / 1000);
    }
    if (e.state !== 'succeeded' && e.state !== 'failed' && e.state !== 'cancelled') return;
    total.inc({ kind: job.kind, outcome: e.state });
    if (job.startedAt && job.endedAt) duration.observe({ kind: job.kind, outcome: e.state }, secondsBetween(job.startedAt, job.endedAt));
    const r = job.result;
    if (job.kind === 'migrate' && r && e.state === 'succeeded') {
      if (typeof r['downtimeMs'] === 'number') downtime.observe(r['downtimeMs'] / 1000);
      if (typeof r['bytesMoved'] === 'number') moved.inc(r['bytesMoved']);
      if (typeof r['wireBytes'] === 'number') wire.inc(r['wireBytes']);
    }
    if (job.kind === 'checkpoint' && r) {
      const stats = r['stats'] as { frozen_time?: number } | undefined;
      if (typeof stats?.frozen_time === 'number') frozen.observe(stats.frozen_time / 1e6);
      if (typeof r['bytesWritten'] === 'number') bytes.inc(r['bytesWritten']);
    }
  });
  return { registry, dispose: unobserve };
}

function secondsBetween(a: string, b: string): number {
  return Math.max(0, (Date.parse(b) - Date.parse(a)) / 1000);
}
