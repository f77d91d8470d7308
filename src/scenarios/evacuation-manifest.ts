import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../store/layout.js';
import { FerryError } from '../util/errors.js';

/**
 * What a `ferry host evacuate --to-disk` took, kept in `<store>/evacuations/<id>.json` so that
 * `ferry host restore` finds it after a reboot (the snapshots are in the disk tier, which survives
 * one). Written atomically (temporary file, fsync, rename) when the evacuation starts — every
 * workload `pending` — and again as each one ends, so a crash mid-way still leaves a manifest that
 * names every snapshot taken so far.
 */
export const EVACUATION_ID = /^ev-[0-9]{8}t[0-9]{6}-[0-9a-f]{6}$/;

const Err = z.object({ code: z.string(), message: z.string(), hint: z.string().optional() });

export const EvacueeSchema = z.object({
  /** `name` (a `ferry run` workload) or `container:ID`. */
  target: z.string(),
  kind: z.enum(['process', 'container']),
  state: z.enum(['pending', 'evacuated', 'failed']),
  /** Its service address (`ferry run --ip`): released after its checkpoint, taken again by the restore. */
  address: z.object({ address: z.string(), prefix: z.number().int(), dev: z.string().optional() }).optional(),
  job: z.string().optional(),
  snapshot: z.string().optional(),
  error: Err.optional(),
  /** Set by `host restore`. */
  restored: z.object({
    at: z.string(), ok: z.boolean(), pid: z.number().int().optional(), job: z.string().optional(), error: Err.optional(),
  }).optional(),
});
export type Evacuee = z.infer<typeof EvacueeSchema>;

export const EvacuationManifestSchema = z.object({
  format: z.literal(1),
  id: z.string().regex(EVACUATION_ID),
  createdAt: z.string(),
  endedAt: z.string().optional(),
  host: z.string(),
  state: z.enum(['running', 'complete']),
  workloads: z.array(EvacueeSchema),
});
export type EvacuationManifest = z.infer<typeof EvacuationManifestSchema>;

export const evacuationsDir = (storeRoot: string): string => join(storeRoot, 'evacuations');

export async function writeEvacuation(storeRoot: string, m: EvacuationManifest): Promise<void> {
  await mkdir(evacuationsDir(storeRoot), { recursive: true, mode: 0o700 });
  await writeFileAtomic(join(evacuationsDir(storeRoot), `${m.id}.json`), JSON.stringify(m, null, 2));
}

/**
 * The newest evacuation manifest (ids sort by their UTC time), or a clear error when there is none.
 * A damaged one is named, not skipped: restoring an older evacuation instead would be a surprise.
 */
export async function newestEvacuation(storeRoot: string): Promise<EvacuationManifest> {
  const dir = evacuationsDir(storeRoot);
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json') && EVACUATION_ID.test(n.slice(0, -5))).sort();
  const newest = names.at(-1);
  if (newest === undefined) {
    throw new FerryError('ERR_NO_EVACUATION', `no evacuation manifest in ${dir}: nothing was evacuated to disk from this store`, { hint: 'evacuate first: `ferry host evacuate --to-disk`' });
  }
  const path = join(dir, newest);
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new FerryError('ERR_STORE_CORRUPT', `the evacuation manifest ${path} cannot be read: ${err instanceof Error ? err.message : String(err)}`, { hint: 'its snapshots are still in the store: restore them one by one (`ferry snapshots ls`, `ferry restore ID`)', cause: err });
  }
  const m = EvacuationManifestSchema.safeParse(parsed);
  if (!m.success) {
    throw new FerryError('ERR_STORE_CORRUPT', `the evacuation manifest ${path} is not valid: ${m.error.issues[0]?.message ?? 'schema mismatch'}`, { hint: 'its snapshots are still in the store: restore them one by one (`ferry snapshots ls`, `ferry restore ID`)' });
  }
  return m.data;
}

/** A new evacuation id: `ev-` + the UTC time + 6 random hex digits (sorts by time). */
export function newEvacuationId(now = new Date(), random = Math.floor(Math.random() * 0xffffff)): string {
  const t = now.toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').toLowerCase();
  return `ev-${t}-${random.toString(16).padStart(6, '0')}`;
}
