import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { firstIssue } from '../store/config.js';
import { writeFileAtomic } from '../store/layout.js';
import { FerryError, errnoCode } from '../util/errors.js';
import type { RunIdentity } from './warm-identity.js';

/**
 * The warm key store: one small record per KEY (`<store>/warm/KEY.json`) naming the snapshot a
 * `ferry run --warm KEY` restores and the identity it was taken with (warm-identity.ts). The
 * snapshot itself is an ordinary snapshot of the store (`snapshots ls` lists it).
 */
export interface WarmRecord {
  format: 1;
  key: string;
  snapshot: string;
  tier: 'memory' | 'disk';
  createdAt: string;
  /** The command line (as `ferry ps` shows it; arguments and environment are compared by digest). */
  command: string[];
  /** The readiness probe the snapshot was taken at. */
  ready: string;
  /** How long the cold boot took until ready: a warm restore gets at most this long to become ready. */
  coldReadyMs: number;
  identity: RunIdentity;
  /** The last warm restore that failed (the run then booted cold), if any since the snapshot. */
  lastFailure?: { at: string; reason: string };
}

const KEY_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function checkWarmKey(key: string): string {
  if (!KEY_RE.test(key)) {
    throw new FerryError('ERR_USAGE', `invalid warm key '${key}'`, { hint: 'use letters, digits, dot, dash and underscore (max 64), e.g. --warm redis-cache' });
  }
  return key;
}

const FileSchema = z.object({ path: z.string(), size: z.number().int().nonnegative(), sha256: z.string(), stat: z.string() });
const RecordSchema = z.looseObject({
  format: z.literal(1),
  key: z.string().regex(KEY_RE),
  snapshot: z.string(),
  tier: z.enum(['memory', 'disk']),
  createdAt: z.string(),
  command: z.array(z.string()),
  ready: z.string(),
  coldReadyMs: z.number().nonnegative(),
  identity: z.object({
    executable: FileSchema,
    argsDigest: z.string(),
    argCount: z.number().int().nonnegative(),
    env: z.record(z.string(), z.string()),
    cwd: z.string(),
    inputs: z.array(FileSchema),
  }),
  lastFailure: z.object({ at: z.string(), reason: z.string() }).optional(),
});

export const warmDir = (storeRoot: string): string => join(storeRoot, 'warm');
const recordPath = (storeRoot: string, key: string): string => join(warmDir(storeRoot), `${checkWarmKey(key)}.json`);

/** A key's record; undefined when there is none. A damaged record is an error naming the file. */
export async function readWarm(storeRoot: string, key: string): Promise<WarmRecord | undefined> {
  const path = recordPath(storeRoot, key);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
  let parsed: z.ZodSafeParseResult<z.infer<typeof RecordSchema>>;
  try {
    parsed = RecordSchema.safeParse(JSON.parse(text));
  } catch (err) {
    return damaged(path, (err as Error).message);
  }
  if (!parsed.success) return damaged(path, firstIssue(parsed.error));
  return parsed.data as WarmRecord;
}

function damaged(path: string, why: string): never {
  throw new FerryError('ERR_WARM_RECORD', `the warm record ${path} is damaged: ${why}`, { hint: `remove it with \`ferry warm rm ${path.replace(/^.*\//, '').replace(/\.json$/, '')}\` (the next run boots cold)` });
}

export async function writeWarm(storeRoot: string, rec: WarmRecord): Promise<void> {
  await mkdir(warmDir(storeRoot), { recursive: true, mode: 0o700 });
  await writeFileAtomic(recordPath(storeRoot, rec.key), JSON.stringify(rec, null, 2) + '\n');
}

export async function removeWarm(storeRoot: string, key: string): Promise<void> {
  await rm(recordPath(storeRoot, key), { force: true });
}

/** Every key's record (damaged ones as their error), by key. */
export async function listWarm(storeRoot: string): Promise<({ key: string; record: WarmRecord } | { key: string; error: FerryError })[]> {
  const names = await readdir(warmDir(storeRoot)).catch((err: unknown) => {
    if (errnoCode(err) === 'ENOENT') return [] as string[];
    throw err;
  });
  const out: ({ key: string; record: WarmRecord } | { key: string; error: FerryError })[] = [];
  for (const n of names.sort()) {
    const key = n.replace(/\.json$/, '');
    if (!n.endsWith('.json') || !KEY_RE.test(key)) continue;
    try {
      const record = await readWarm(storeRoot, key);
      if (record) out.push({ key, record });
    } catch (err) {
      out.push({ key, error: err instanceof FerryError ? err : new FerryError('ERR_WARM_RECORD', String(err)) });
    }
  }
  return out;
}
