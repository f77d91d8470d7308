import type { MigrateResult } from '../migrate/migrate.js';
import type { StrategyName } from '../migrate/strategy.js';
import { FerryError } from '../util/errors.js';
import type { Testbed } from './migrate-hosts.js';

/**
 * A ferry arm: `ferry migrate NAME --strategy S --to h2 --json` run in h1, through h1's agent (the
 * migration is a job there, as users run it). Its result gives the downtime (freeze on h1 → the
 * copy on h2 runs), the total, the bytes and the phases; the job's phase timeline on the agent
 * (start times and durations) splits the downtime into its steps.
 */

export interface FerryPhases {
  /** Before the freeze (not downtime): the destination's checks. */
  preflight: number;
  /** Freeze → images complete in h1's memory tier (CRIU's dump, up to its post-dump notification). */
  dump: number;
  /** Images h1 → h2 (wire transfer into h2's store, sealed and verified there). */
  transfer: number;
  /** CRIU's restore on h2, held at pre-resume. */
  restore: number;
  /** post-dump answered → CRIU ended the tree on h1 (the commit starts then). */
  sourceEnd: number;
  /** The commit: h2 lets its copy run (and the source seals its snapshot beside it). */
  commit: number;
  /** The rest of the downtime (rounding, hand-offs between the steps). */
  other: number;
}

export interface FerryRunResult {
  downtimeMs: number;
  totalMs: number;
  /** `ferry migrate` spawn → exit, as a user waits for it. */
  cliMs: number;
  bytes: number;
  wireBytes: number;
  phases: FerryPhases;
  /** The phases exactly as the result reports them. */
  reported: Record<string, number>;
  /** Whether dump/sourceEnd came from the agent's job timeline (else: the downtime's remainder). */
  timeline: boolean;
  pid: number;
  details: Record<string, unknown> | undefined;
}

interface JobPhase { name: string; startedAt?: string; ms?: number }
interface JobView { id: string; kind: string; phases?: JobPhase[]; result?: { migration?: string } }

/** Splits a migration's downtime by the job's phase timeline (pure; unit-tested). */
export function splitDowntime(r: Pick<MigrateResult, 'downtimeMs' | 'phases'>, timeline: JobPhase[] | undefined): { phases: FerryPhases; timeline: boolean } {
  const p = r.phases;
  const transfer = p['transfer'] ?? 0;
  const restore = p['restore'] ?? 0;
  const commit = p['commit'] ?? 0;
  const base = { preflight: p['preflight'] ?? 0, transfer, restore, commit };
  const at = (name: string): { start: number; end: number } | undefined => {
    const ph = timeline?.find((x) => x.name === name);
    const start = ph?.startedAt !== undefined ? Date.parse(ph.startedAt) : NaN;
    return ph && Number.isFinite(start) && ph.ms !== undefined ? { start, end: start + ph.ms } : undefined;
  };
  const handoff = at('handoff');
  const commitAt = at('commit');
  if (handoff && commitAt) {
    // The copy on h2 runs when the commit returns: the freeze was downtimeMs before that.
    const frozenAt = commitAt.end - r.downtimeMs;
    const dump = Math.max(0, handoff.start - frozenAt);
    const sourceEnd = Math.max(0, commitAt.start - handoff.end);
    return { phases: { ...base, dump, sourceEnd, other: r.downtimeMs - dump - transfer - restore - sourceEnd - commit }, timeline: true };
  }
  return { phases: { ...base, dump: Math.max(0, r.downtimeMs - transfer - restore - commit), sourceEnd: 0, other: 0 }, timeline: false };
}

export async function ferryMigrate(bed: Testbed, name: string, strategy: StrategyName, timeoutMs: number): Promise<FerryRunResult> {
  const h1 = bed.host('h1');
  const ran = await bed.ferry(h1, ['migrate', name, '--strategy', strategy, '--to', 'h2', '--json'], { timeoutMs });
  const r = JSON.parse(ran.stdout) as MigrateResult;
  if (r.ok !== true || typeof r.downtimeMs !== 'number') throw new FerryError('ERR_BENCH', `bench migrate: ferry migrate printed no result: ${ran.stdout.slice(0, 400)}`);
  const jobs = await bed.agentGet<{ jobs: JobView[] }>(h1, '/v1/jobs').catch(() => ({ jobs: [] as JobView[] }));
  const job = jobs.jobs.find((j) => j.kind === 'migrate' && j.result?.migration === r.migration);
  const split = splitDowntime(r, job?.phases);
  return {
    downtimeMs: r.downtimeMs, totalMs: r.totalMs, cliMs: ran.ms, bytes: r.bytesMoved, wireBytes: r.wireBytes,
    phases: split.phases, reported: r.phases, timeline: split.timeline, pid: r.destination.pid,
    details: { chosen: r.chosen, ...r.details },
  };
}
