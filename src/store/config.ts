/**
 * The store's own settings, `<store>/config.json`, and the units they are written in.
 *
 *   {
 *     "memoryBudgetBytes": "4G",      most the memory tier may hold (no budget when absent)
 *     "spillToDisk": true,            past the budget (or the host's memory): go to disk instead of refusing
 *     "memoryReserveBytes": "1G",     RAM a memory-tier checkpoint must leave available on the host
 *     "memoryTierBase": "/mnt/ram",   where stores' memory tiers live (default /dev/shm/ferry)
 *     "logsMaxAge": "14d",            operation logs (<store>/logs) older than this are swept
 *     "logsKeep": 200,                ... and beyond the newest this many
 *     "staleAfter": "10m"             leftovers without an intent record older than this are swept by gc
 *   }
 *
 * Sizes are bytes or "512M"/"2GiB"/"500MB"; durations are milliseconds or "90s"/"30m"/"1h"/"2d".
 * A malformed file is an error naming it, never silently ignored.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { z } from 'zod';
import { FerryError, errnoCode } from '../util/errors.js';

export const STORE_CONFIG_FILE = 'config.json';

export interface StoreConfig {
  /** Most bytes the memory tier may hold (undefined: no budget). */
  memoryBudgetBytes?: number;
  /** When the budget would be exceeded: true spills to the disk tier, false refuses. */
  spillToDisk?: boolean;
  /** Bytes of the host's MemAvailable a memory-tier checkpoint must leave untouched. */
  memoryReserveBytes?: number;
  /** Directory under which each store's memory tier gets its own `<store-id>/` directory. */
  memoryTierBase?: string;
  /** Operation logs older than this many ms are swept. */
  logsMaxAgeMs?: number;
  /** At most this many operation logs are kept (the newest). */
  logsKeep?: number;
  /** Leftovers that no intent record explains are swept by gc once older than this many ms. */
  staleAfterMs?: number;
}

const UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 2 ** 10, kb: 1e3, kib: 2 ** 10,
  m: 2 ** 20, mb: 1e6, mib: 2 ** 20,
  g: 2 ** 30, gb: 1e9, gib: 2 ** 30,
  t: 2 ** 40, tb: 1e12, tib: 2 ** 40,
};

/** "512M", "1.5GiB", "2g", "1000000" → bytes. K/M/G/T alone are binary (as in `ls -h`). */
export function parseSize(text: string, what = 'size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const mult = m ? UNITS[(m[2] ?? '').toLowerCase()] : undefined;
  if (!m || mult === undefined) {
    throw new FerryError('ERR_USAGE', `${what} '${text}' is not a size`, { hint: 'write a number of bytes, or one with a unit: 512M, 2G, 1.5GiB, 500MB' });
  }
  return Math.floor(Number(m[1]) * mult);
}

const DURATION_UNITS = { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 } as const;

/** "90s", "30m", "1h", "2d" or plain milliseconds → ms (0 allowed: "no grace"). */
export function parseDuration(text: string, what = 'duration'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);
  if (!m) throw new FerryError('ERR_USAGE', `${what}: '${text}' is not a duration`, { hint: 'use e.g. 90s, 30m, 1h or 2d' });
  return Number(m[1]) * DURATION_UNITS[(m[2] ?? 'ms') as keyof typeof DURATION_UNITS];
}

/** A value a user wrote as a number or a string with a unit, checked by `parse`. */
const unitValue = (parse: (t: string, what: string) => number, what: string) =>
  z.union([z.number().int().nonnegative(), z.string()]).transform((v, ctx) => {
    if (typeof v === 'number') return v;
    try { return parse(v, what); } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

const ConfigSchema = z.object({
  memoryBudgetBytes: unitValue(parseSize, 'memoryBudgetBytes').nullish(),
  spillToDisk: z.boolean().optional(),
  memoryReserveBytes: unitValue(parseSize, 'memoryReserveBytes').optional(),
  memoryTierBase: z.string().refine(isAbsolute, 'must be an absolute path').optional(),
  logsMaxAge: unitValue(parseDuration, 'logsMaxAge').optional(),
  logsKeep: z.number().int().nonnegative().optional(),
  staleAfter: unitValue(parseDuration, 'staleAfter').optional(),
}).loose();

/** The first problem zod found, as "field: what is wrong". */
export function firstIssue(err: z.ZodError): string {
  const i = err.issues[0];
  if (!i) return 'invalid';
  return `${i.path.length ? `${i.path.join('.')}: ` : ''}${i.message}`;
}

/** Parses config.json's text; `path` only names the file in errors. */
export function parseStoreConfig(text: string, path: string): StoreConfig {
  const bad = (why: string) => new FerryError('ERR_STORE_CONFIG', `the store's config ${path} is invalid: ${why}`, {
    hint: 'it is JSON like {"memoryBudgetBytes": "4G", "spillToDisk": true}; fix or remove it',
  });
  let raw: unknown;
  try { raw = JSON.parse(text); } catch (err) { throw bad((err as Error).message); }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('not a JSON object');
  const r = ConfigSchema.safeParse(raw);
  if (!r.success) throw bad(firstIssue(r.error));
  const c = r.data;
  const out: StoreConfig = {};
  if (c.memoryBudgetBytes !== undefined && c.memoryBudgetBytes !== null) out.memoryBudgetBytes = c.memoryBudgetBytes;
  if (c.spillToDisk !== undefined) out.spillToDisk = c.spillToDisk;
  if (c.memoryReserveBytes !== undefined) out.memoryReserveBytes = c.memoryReserveBytes;
  if (c.memoryTierBase !== undefined) out.memoryTierBase = c.memoryTierBase;
  if (c.logsMaxAge !== undefined) out.logsMaxAgeMs = c.logsMaxAge;
  if (c.logsKeep !== undefined) out.logsKeep = c.logsKeep;
  if (c.staleAfter !== undefined) out.staleAfterMs = c.staleAfter;
  return out;
}

function unreadable(path: string, err: unknown): FerryError {
  return new FerryError('ERR_STORE_CONFIG', `cannot read the store's config ${path}: ${(err as Error).message}`, { cause: err });
}

/** Reads `<store>/config.json`; {} when there is none (or no store yet). */
export async function readStoreConfig(root: string): Promise<StoreConfig> {
  const path = join(root, STORE_CONFIG_FILE);
  let text: string;
  try { text = await readFile(path, 'utf8'); } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return {};
    throw unreadable(path, err);
  }
  return parseStoreConfig(text, path);
}

/** The same, synchronously (the Store's constructor needs the memory tier's base). */
export function readStoreConfigSync(root: string): StoreConfig {
  const path = join(root, STORE_CONFIG_FILE);
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return {};
    throw unreadable(path, err);
  }
  return parseStoreConfig(text, path);
}
