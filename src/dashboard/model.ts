/**
 * The dashboard's pure logic, free of the DOM and of Node (the page bundles it; node:test tests
 * it): units, the snapshot chains, a job's phase timeline from its stream, a migration's transfer
 * rate and outcome. The views (ui/) only render what these return.
 */
import type { Job, JobEvent, JobPhase } from '../engine/jobs.js';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 1536 → "1.5 KiB"; null/undefined → "—". */
export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  let v = Math.abs(n);
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) { v /= 1024; u++; }
  return `${n < 0 ? '-' : ''}${u === 0 ? String(v) : v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${UNITS[u]}`;
}

/** 850 → "850 ms", 12_300 → "12.3 s", 192_000 → "3 min 12 s". */
export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

/** How long ago an ISO time was, relative to `now` (ms): "5 s ago", "3 min ago", "2 h ago", "4 d ago". */
export function formatAge(iso: string | null | undefined, now: number): string {
  const t = iso ? Date.parse(iso) : NaN;
  if (!Number.isFinite(t)) return '—';
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} d ago`;
}

/** Bytes per second → "118 MiB/s". */
export function formatRate(bytesPerSec: number | null | undefined): string {
  return bytesPerSec === null || bytesPerSec === undefined || !Number.isFinite(bytesPerSec) ? '—' : `${formatBytes(bytesPerSec)}/s`;
}

/** A snapshot row of the store's listing (GET /v1/store), the fields the chains need. */
export interface SnapshotRow {
  id: string;
  createdAt: string;
  tier: string;
  parent: string | null;
  workload: string | null;
  pid?: number;
  bytes: number;
  logicalBytes: number;
  storedBytes: number;
}

export interface ChainRow<S extends SnapshotRow = SnapshotRow> {
  snapshot: S;
  /** 0 for a chain's base, 1 for what builds on it, … */
  depth: number;
  /** The parent is named but not in the store (the chain is broken). */
  missingParent: boolean;
  /** Snapshots that build on this one. */
  children: number;
}

/**
 * The store's snapshots as chains: each base (no parent, or a parent not listed) followed by what
 * builds on it, depth first, oldest first at each level; a cycle (a damaged store) cannot loop.
 */
export function snapshotChains<S extends SnapshotRow>(rows: readonly S[]): ChainRow<S>[] {
  const byId = new Map(rows.map((r) => [r.id, r]));
  const kids = new Map<string, S[]>();
  for (const r of rows) {
    if (r.parent !== null && byId.has(r.parent)) kids.set(r.parent, [...(kids.get(r.parent) ?? []), r]);
  }
  const byAge = (a: S, b: S) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id);
  const out: ChainRow<S>[] = [];
  const seen = new Set<string>();
  const walk = (r: S, depth: number) => {
    if (seen.has(r.id)) return;
    seen.add(r.id);
    const children = [...(kids.get(r.id) ?? [])].sort(byAge);
    out.push({ snapshot: r, depth, missingParent: r.parent !== null && !byId.has(r.parent), children: children.length });
    for (const c of children) walk(c, depth + 1);
  };
  for (const r of [...rows].sort(byAge)) if (r.parent === null || !byId.has(r.parent)) walk(r, 0);
  // Whatever is left sits on a cycle: listed flat, so nothing is hidden.
  for (const r of [...rows].sort(byAge)) if (!seen.has(r.id)) walk(r, 0);
  return out;
}

/** One bar of a phase timeline: ms from the job's start. */
export interface TimelinePhase { name: string; startMs: number; endMs: number | null; ms: number | null }

/**
 * A job's phases as a timeline (start and end in ms from the first phase), from the job record's
 * phases (their startedAt and ms); a phase still running ends at `now`.
 */
export function timeline(phases: readonly JobPhase[], now: number): TimelinePhase[] {
  const starts = phases.map((p) => Date.parse(p.startedAt)).filter(Number.isFinite);
  if (!starts.length) return [];
  const t0 = Math.min(...starts);
  return phases.map((p) => {
    const s = Date.parse(p.startedAt);
    const startMs = Number.isFinite(s) ? s - t0 : 0;
    const ms = p.state === 'done' && p.ms !== undefined ? p.ms : null;
    return { name: p.name, startMs, endMs: ms !== null ? startMs + ms : null, ms: ms ?? Math.max(0, now - t0 - startMs) };
  });
}

/**
 * What the page knows of a job while it follows its event stream: the job record (from its
 * 'state' events), the phases as they start and end (stamped with the page's clock until the
 * final record brings the agent's), the place in the queue, and a migration's transfer.
 */
export interface LiveJob {
  job: Job | undefined;
  phases: JobPhase[];
  queue: { position: number; length: number } | undefined;
  transfer: { bytes: number; totalBytes: number; firstAt: number; lastAt: number; firstBytes: number } | undefined;
  /** Every event, in order, as a line of text (the page's event log). */
  log: string[];
}

export const emptyLive = (): LiveJob => ({ job: undefined, phases: [], queue: undefined, transfer: undefined, log: [] });

/** The next LiveJob after one event, received at `now` (ms since the epoch). */
export function applyEvent(live: LiveJob, e: JobEvent, now: number): LiveJob {
  const at = new Date(now).toISOString();
  switch (e.type) {
    case 'state': {
      // The record's phases are the agent's: they replace the page's own stamps.
      const phases = e.job.phases.length ? e.job.phases : live.phases;
      return { ...live, job: e.job, phases, queue: e.state === 'queued' ? live.queue : undefined, log: [...live.log, `state ${e.state}`] };
    }
    case 'phase': {
      if (e.state === 'start') {
        return { ...live, phases: [...live.phases, { name: e.phase, state: 'running', startedAt: at }], log: [...live.log, `phase ${e.phase} started`] };
      }
      const phases = [...live.phases];
      // The newest running phase of that name ends.
      for (let i = phases.length - 1; i >= 0; i--) {
        const p = phases[i]!;
        if (p.name === e.phase && p.state === 'running') {
          phases[i] = { ...p, state: 'done', ...(e.ms !== undefined ? { ms: e.ms } : { ms: Math.max(0, now - Date.parse(p.startedAt)) }) };
          break;
        }
      }
      return { ...live, phases, log: [...live.log, `phase ${e.phase} done${e.ms !== undefined ? ` in ${formatMs(e.ms)}` : ''}`] };
    }
    case 'progress':
      return { ...live, queue: { position: e.queuePosition, length: e.queueLength }, log: [...live.log, `queued: ${e.queuePosition} of ${e.queueLength}`] };
    case 'transfer': {
      const t = live.transfer;
      const transfer = t ? { ...t, bytes: e.bytes, totalBytes: e.totalBytes, lastAt: now } : { bytes: e.bytes, totalBytes: e.totalBytes, firstAt: now, lastAt: now, firstBytes: e.bytes };
      // Transfer events come often: the log keeps the last one only.
      const log = live.log.length && live.log[live.log.length - 1]!.startsWith('transfer ') ? live.log.slice(0, -1) : live.log;
      return { ...live, transfer, log: [...log, `transfer ${formatBytes(e.bytes)} of about ${formatBytes(e.totalBytes)}`] };
    }
  }
}

/** Bytes per second over the transfer events seen (null until two of them are apart in time). */
export function transferRate(t: LiveJob['transfer']): number | null {
  if (!t || t.lastAt <= t.firstAt) return null;
  return ((t.bytes - t.firstBytes) * 1000) / (t.lastAt - t.firstAt);
}

/** What a migration job's record says of its outcome (the result of migrate/migrate.ts, or its error). */
export interface MigrationOutcome {
  state: 'running' | 'committed' | 'rolled back' | 'uncertain' | 'cancelled';
  /** One sentence for the page. */
  text: string;
  downtimeMs: number | null;
  totalMs: number | null;
  bytesMoved: number | null;
  wireBytes: number | null;
  destination: { host: string; url: string | null; pid: number; name: string | null } | null;
  /** The strategy it used and why (`auto`'s reasons, or "asked for"). */
  strategy: { name: string; because: string | null } | null;
}

export function migrationOutcome(job: Job | undefined): MigrationOutcome {
  const none = { downtimeMs: null, totalMs: null, bytesMoved: null, wireBytes: null, destination: null, strategy: null };
  if (!job || job.state === 'queued' || job.state === 'running') return { state: 'running', text: job?.state === 'queued' ? 'queued' : 'in progress', ...none };
  if (job.state === 'succeeded') {
    const r = (job.result ?? {}) as {
      downtimeMs?: number; totalMs?: number; bytesMoved?: number; wireBytes?: number; destination?: { host?: string; url?: string; pid?: number; name?: string | null };
      strategy?: string; chosen?: { strategy?: string; because?: string };
    };
    const name = r.chosen?.strategy ?? r.strategy;
    const strategy = typeof name === 'string' ? { name, because: r.chosen?.because ?? null } : null;
    const d = r.destination;
    const destination = d && typeof d.host === 'string' && typeof d.pid === 'number' ? { host: d.host, url: d.url ?? null, pid: d.pid, name: d.name ?? null } : null;
    return {
      state: 'committed',
      text: destination ? `committed: the workload runs on ${destination.host}${destination.url ? ` (${destination.url})` : ''}, pid ${destination.pid}` : 'committed',
      downtimeMs: r.downtimeMs ?? null, totalMs: r.totalMs ?? null, bytesMoved: r.bytesMoved ?? null, wireBytes: r.wireBytes ?? null, destination, strategy,
    };
  }
  const where = job.error?.workload;
  if (job.state === 'cancelled') return { state: 'cancelled', text: `cancelled${where ? `: the workload is ${where}` : ''}`, ...none };
  if (job.error?.code === 'ERR_MIGRATE_UNCERTAIN') return { state: 'uncertain', text: `outcome unknown: ${job.error.message}`, ...none };
  return { state: 'rolled back', text: `rolled back${job.error?.phase ? ` in ${job.error.phase}` : ''}${where ? `: the workload is ${where}` : ''}`, ...none };
}

/** A checkpoint's frozen time in ms from its result (CRIU's frozen_time, µs), or null. */
export function frozenMs(job: Job | undefined): number | null {
  const stats = (job?.result as { stats?: { frozen_time?: unknown } } | undefined)?.stats;
  return typeof stats?.frozen_time === 'number' ? stats.frozen_time / 1000 : null;
}

/** An error as the page shows it: the same code, message and hint as the CLI's. */
export interface ErrorView { code: string; message: string; hint?: string }

export function errorView(err: unknown): ErrorView {
  const e = err as { code?: unknown; message?: unknown; hint?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : 'ERR_INTERNAL';
  const message = typeof e?.message === 'string' ? e.message : String(err);
  return { code, message, ...(typeof e?.hint === 'string' && e.hint ? { hint: e.hint } : {}) };
}
