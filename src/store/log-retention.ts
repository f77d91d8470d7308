/**
 * Retention of operation logs (`<store>/logs/*`): kept by age and count. Apart from retention.ts
 * so that every operation can sweep cheaply without loading the garbage collector.
 */
import { lstat, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode } from '../util/errors.js';
import { readStoreConfig } from './config.js';
import { ownerAlive, readIntents } from './intents.js';
import { logsDir } from './layout.js';
import type { Store } from './store.js';

/** Operation logs (`<store>/logs/*`) are kept this long ... */
export const DEFAULT_LOGS_MAX_AGE_MS = 14 * 86_400_000;
/** ... and at most this many (the newest). */
export const DEFAULT_LOGS_KEEP = 200;
/** A log touched more recently than this is never swept (its operation may still run). */
const LOG_GRACE_MS = 10 * 60_000;

/** How logs are kept (gc flags, else config.json, else the defaults above). */
export interface LogRetention {
  logsMaxAgeMs?: number;
  logsKeep?: number;
}

/**
 * Sweeps operation logs (`<store>/logs/*`): older than the max age, or beyond the newest
 * `keep`. Never one touched in the last ten minutes, one named in `protect`, or one of an
 * operation whose owner still runs. Returns what it removed (dry run: would remove).
 */
export async function sweepLogs(store: Store, policy: LogRetention = {}, protect: string[] = [], dryRun = false): Promise<string[]> {
  const dir = logsDir(store.root);
  let names: string[];
  try { names = await readdir(dir); } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return [];
    throw err;
  }
  const config = await readStoreConfig(store.root);
  const maxAge = policy.logsMaxAgeMs ?? config.logsMaxAgeMs ?? DEFAULT_LOGS_MAX_AGE_MS;
  const keep = policy.logsKeep ?? config.logsKeep ?? DEFAULT_LOGS_KEEP;
  if (names.length <= keep && maxAge === Infinity) return [];
  const live = new Set((await readIntents(store.root)).flatMap((f) => (f.intent && ownerAlive(f.intent) ? [f.intent.id] : [])));
  const now = Date.now();
  const entries: { path: string; mtimeMs: number; name: string }[] = [];
  for (const n of names) {
    const st = await lstat(join(dir, n)).catch(() => undefined);
    if (st) entries.push({ path: join(dir, n), mtimeMs: st.mtimeMs, name: n });
  }
  entries.sort((a, b) => b.mtimeMs - a.mtimeMs);
  const out: string[] = [];
  entries.forEach((e, i) => {
    if (i < keep && now - e.mtimeMs <= maxAge) return;
    if (now - e.mtimeMs < LOG_GRACE_MS || protect.includes(e.path)) return;
    if ([...live].some((id) => e.name.endsWith(`-${id}`) || e.name.includes(`-${id}-`))) return;
    out.push(e.path);
  });
  if (!dryRun) for (const p of out) await rm(p, { recursive: true, force: true });
  return out;
}
