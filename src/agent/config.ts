import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { firstIssue, parseSize } from '../store/config.js';
import { FREEZE_POLICIES, policyBudgets, type AdmissionBudgets } from '../scheduler/admission.js';
import { FerryError } from '../util/errors.js';

/**
 * The agent's configuration file (`ferry agent --config FILE`), JSON:
 *
 *   {
 *     "scheduler": {
 *       "policy": "staggered",      'one' freeze at a time, 'two' at once, or 'staggered': at most two,
 *                                   the next admitted once the last is `stagger` through its pages
 *                                   (default: DEFAULT_POLICY in scheduler/admission.ts, measured: README)
 *       "stagger": 0.7,             ... that share, 0 < s ≤ 1 (only with "policy": "staggered")
 *       "dumps": 2,                 or: CRIU dumps frozen at once; not with "policy"
 *       "dumpsPerCore": 0.5,        ... or per core (at least 1); not both
 *       "memoryBytes": "2G",        bytes in flight into the memory tier (default MemAvailable − reserve)
 *       "diskBytes": "8G",          bytes in flight into the disk tier (default: no limit)
 *       "memoryBandwidth": "2G",    admission pace into the memory tier, bytes per second (default: none)
 *       "diskBandwidth": "300M"     ... into the disk tier
 *     },
 *     "maxRunningJobs": 8           jobs started at once (default 4 per core; their checkpoints then
 *                                   wait for the scheduler at CRIU's pre-dump, unfrozen)
 *   }
 *
 * Sizes are bytes or "512M"/"2G" (as the store's config.json). An unknown key is refused: a typo
 * must not silently leave a budget at its default.
 */
export interface AgentConfig {
  /** Overrides of the scheduler's host budgets (scheduler/admission.ts hostBudgets). */
  scheduler: Partial<AdmissionBudgets>;
  maxRunningJobs?: number;
}

const size = (what: string) => z.union([z.number().nonnegative(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v;
  try {
    return parseSize(v, what);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

const Schema = z.strictObject({
  scheduler: z.strictObject({
    policy: z.enum(FREEZE_POLICIES).optional(),
    stagger: z.number().gt(0).max(1).optional(),
    dumps: z.number().int().min(1).optional(),
    dumpsPerCore: z.number().positive().optional(),
    memoryBytes: size('scheduler.memoryBytes').optional(),
    diskBytes: size('scheduler.diskBytes').optional(),
    memoryBandwidth: size('scheduler.memoryBandwidth').refine((n) => n > 0, 'must be more than 0').optional(),
    diskBandwidth: size('scheduler.diskBandwidth').refine((n) => n > 0, 'must be more than 0').optional(),
  }).refine((s) => s.dumps === undefined || s.dumpsPerCore === undefined, 'give dumps or dumpsPerCore, not both')
    .refine((s) => s.policy === undefined || (s.dumps === undefined && s.dumpsPerCore === undefined), 'give policy or dumps/dumpsPerCore, not both')
    .refine((s) => s.stagger === undefined || s.policy === 'staggered', 'stagger is the share of the "staggered" policy: give it with "policy": "staggered"')
    .optional(),
  maxRunningJobs: z.number().int().min(1).max(4096).optional(),
});

/** Parses the file's text; `path` names it in errors. `cores` for dumpsPerCore (default: this host's). */
export function parseAgentConfig(text: string, path: string, cores = availableParallelism()): AgentConfig {
  const bad = (why: string) => new FerryError('ERR_BAD_OPTION', `the agent's config ${path} is invalid: ${why}`, {
    hint: 'it is JSON like {"scheduler": {"dumps": 2, "memoryBytes": "2G"}, "maxRunningJobs": 8} (README, "The agent")',
  });
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw bad((err as Error).message);
  }
  const r = Schema.safeParse(raw);
  if (!r.success) throw bad(firstIssue(r.error));
  const s = r.data.scheduler ?? {};
  const scheduler: Partial<AdmissionBudgets> = s.policy !== undefined ? { ...policyBudgets(s.policy, s.stagger) } : {};
  if (s.dumps !== undefined) scheduler.dumps = s.dumps;
  if (s.dumpsPerCore !== undefined) scheduler.dumps = Math.max(1, Math.floor(s.dumpsPerCore * cores));
  if (s.memoryBytes !== undefined) scheduler.memoryBytes = s.memoryBytes;
  if (s.diskBytes !== undefined) scheduler.diskBytes = s.diskBytes;
  if (s.memoryBandwidth !== undefined) scheduler.memoryBandwidth = s.memoryBandwidth;
  if (s.diskBandwidth !== undefined) scheduler.diskBandwidth = s.diskBandwidth;
  return { scheduler, ...(r.data.maxRunningJobs !== undefined ? { maxRunningJobs: r.data.maxRunningJobs } : {}) };
}

export async function readAgentConfig(path: string): Promise<AgentConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new FerryError('ERR_BAD_OPTION', `cannot read the agent's config ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {
      hint: 'give --config a readable JSON file, or leave it out for the defaults', cause: err,
    });
  }
  return parseAgentConfig(text, path);
}
