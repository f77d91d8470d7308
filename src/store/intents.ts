/**
 * Intent records: `<root>/intents/<id>.json`, written before CRIU starts writing `.tmp-<id>`,
 * removed when the snapshot is committed or abandoned. A record whose owner process is gone
 * (dead, or its pid now belongs to another process: the start time differs) marks an
 * interrupted operation; the engine decides whether to seal or remove it, gc removes it.
 * Kept outside the images directory, so CRIU and the checksums never see it.
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { processStartTime } from '../telemetry/proc.js';
import { errnoCode } from '../util/errors.js';
import { firstIssue } from './config.js';
import { intentsDir, writeFileAtomic } from './layout.js';
import { SNAPSHOT_ID_PATTERN } from './manifest.js';

const IntentSchema = z.object({
  format: z.literal(1),
  id: z.string().regex(SNAPSHOT_ID_PATTERN),
  tier: z.enum(['memory', 'disk']),
  /** The pending directory the operation writes. */
  dir: z.string(),
  /** What is being done: 'checkpoint', 'import', ... */
  op: z.string(),
  ownerPid: z.number().int().positive(),
  /** /proc/<ownerPid>/stat field 22 when the record was written. */
  ownerStartTime: z.string(),
  createdAt: z.string(),
  updatedAt: z.string(),
  /** Where the operation got to ('begun', 'dumping', 'sealing', ...: the engine's words). */
  phase: z.string(),
  /** Whatever the engine needs to finish or undo it (target, options, CRIU version ...). */
  payload: z.record(z.string(), z.unknown()),
});
export type Intent = z.infer<typeof IntentSchema>;

export interface IntentPatch {
  phase?: string;
  /** Merged into the payload (top-level keys replace). */
  payload?: Record<string, unknown>;
}

/** An intent record as found: valid, or damaged (unreadable/invalid file, kept for gc). */
export type FoundIntent = { intent: Intent; path: string; damaged?: undefined } | { intent?: undefined; path: string; damaged: string };

export const intentPath = (root: string, id: string): string => join(intentsDir(root), `${id}.json`);

/** A new record owned by this process. */
export function newIntent(id: string, tier: Intent['tier'], dir: string, op: string, payload: Record<string, unknown> = {}): Intent {
  const now = new Date().toISOString();
  return {
    format: 1, id, tier, dir, op,
    ownerPid: process.pid, ownerStartTime: processStartTime(process.pid) ?? '',
    createdAt: now, updatedAt: now, phase: 'begun', payload,
  };
}

export async function writeIntent(root: string, intent: Intent): Promise<void> {
  await writeFileAtomic(intentPath(root, intent.id), JSON.stringify(intent, null, 2) + '\n');
}

export function patchIntent(intent: Intent, patch: IntentPatch): Intent {
  return {
    ...intent,
    ...(patch.phase !== undefined ? { phase: patch.phase } : {}),
    payload: { ...intent.payload, ...(patch.payload ?? {}) },
    updatedAt: new Date().toISOString(),
  };
}

export async function removeIntent(root: string, id: string): Promise<void> {
  await rm(intentPath(root, id), { force: true });
}

/** Every intent record of the store (temp files of atomic writes skipped). */
export async function readIntents(root: string): Promise<FoundIntent[]> {
  let names: string[];
  try { names = await readdir(intentsDir(root)); } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return [];
    throw err;
  }
  const out: FoundIntent[] = [];
  for (const n of names) {
    if (n.startsWith('.') || !n.endsWith('.json')) continue;
    const path = join(intentsDir(root), n);
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(path, 'utf8'));
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') continue; // committed meanwhile
      out.push({ path, damaged: (err as Error).message });
      continue;
    }
    const r = IntentSchema.safeParse(raw);
    out.push(r.success ? { intent: r.data, path } : { path, damaged: firstIssue(r.error) });
  }
  return out;
}

/** True while the process that wrote the record still runs (same pid, same start time). */
export function ownerAlive(intent: Pick<Intent, 'ownerPid' | 'ownerStartTime'>): boolean {
  const now = processStartTime(intent.ownerPid);
  return now !== undefined && now === intent.ownerStartTime;
}
