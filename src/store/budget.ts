import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError, errnoCode } from '../util/errors.js';
import { formatBytes } from '../util/format.js';
import type { Tier } from './manifest.js';
import type { Store } from './store.js';

/**
 * The memory tier's budget: a size limit for the snapshots kept on tmpfs. A checkpoint that
 * would take the tier past it spills to the disk tier when that is allowed, and is refused
 * before CRIU runs otherwise.
 *
 * Where the limit comes from, first one wins: the checkpoint's own options (`--memory-budget`,
 * `--spill-to-disk` / `--no-spill`), the environment (`FERRY_MEMORY_BUDGET`,
 * `FERRY_SPILL_TO_DISK=1|0`), the store's `<store>/config.json`
 * (`{"memoryBudgetBytes": 1073741824, "spillToDisk": true}`). No limit anywhere: no budget.
 */
export const STORE_CONFIG_FILE = 'config.json';

export interface StoreConfig {
  /** Most bytes the memory tier may hold (undefined: no budget). */
  memoryBudgetBytes?: number;
  /** When the budget would be exceeded: true spills to the disk tier, false refuses. */
  spillToDisk?: boolean;
}

export interface BudgetOverrides {
  memoryBudgetBytes?: number;
  spillToDisk?: boolean;
}

export interface MemoryBudget {
  /** undefined: no budget. */
  budgetBytes: number | undefined;
  spillToDisk: boolean;
  /** Where the budget came from: 'option', 'env', 'config' or 'none'. */
  source: 'option' | 'env' | 'config' | 'none';
}

export interface TierPlacement {
  tier: Tier;
  /** True when the memory tier was asked for and the disk tier is used instead. */
  spilled: boolean;
  /** Why it spilled (undefined when it did not). */
  reason: string | undefined;
  budget: MemoryBudget;
  /** Bytes the memory tier held before this checkpoint (only measured for memory requests). */
  usedBytes: number | undefined;
  estimateBytes: number;
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

/** Reads `<store>/config.json`; {} when there is none. A malformed file is an error, not ignored. */
export async function readStoreConfig(root: string): Promise<StoreConfig> {
  const path = join(root, STORE_CONFIG_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return {};
    throw new FerryError('ERR_STORE_CONFIG', `cannot read the store's config ${path}: ${(err as Error).message}`, { cause: err });
  }
  const bad = (why: string) => new FerryError('ERR_STORE_CONFIG', `the store's config ${path} is invalid: ${why}`, {
    hint: 'it is JSON like {"memoryBudgetBytes": 1073741824, "spillToDisk": true}; fix or remove it',
  });
  let raw: unknown;
  try { raw = JSON.parse(text); } catch (err) { throw bad((err as Error).message); }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('not a JSON object');
  const o = raw as Record<string, unknown>;
  const out: StoreConfig = {};
  if (o['memoryBudgetBytes'] !== undefined && o['memoryBudgetBytes'] !== null) {
    const b = o['memoryBudgetBytes'];
    if (typeof b === 'number' && Number.isSafeInteger(b) && b >= 0) out.memoryBudgetBytes = b;
    else if (typeof b === 'string') out.memoryBudgetBytes = parseSize(b, 'memoryBudgetBytes');
    else throw bad('memoryBudgetBytes must be a number of bytes (or a size such as "2G")');
  }
  if (o['spillToDisk'] !== undefined) {
    if (typeof o['spillToDisk'] !== 'boolean') throw bad('spillToDisk must be true or false');
    out.spillToDisk = o['spillToDisk'];
  }
  return out;
}

/** The budget in force: options, then environment, then the store's config. */
export async function resolveBudget(root: string, overrides: BudgetOverrides = {}, env: NodeJS.ProcessEnv = process.env): Promise<MemoryBudget> {
  const config = await readStoreConfig(root);
  const envBudget = env['FERRY_MEMORY_BUDGET'];
  const envSpill = env['FERRY_SPILL_TO_DISK'];
  let budgetBytes: number | undefined;
  let source: MemoryBudget['source'] = 'none';
  if (overrides.memoryBudgetBytes !== undefined) { budgetBytes = overrides.memoryBudgetBytes; source = 'option'; }
  else if (envBudget) { budgetBytes = parseSize(envBudget, 'FERRY_MEMORY_BUDGET'); source = 'env'; }
  else if (config.memoryBudgetBytes !== undefined) { budgetBytes = config.memoryBudgetBytes; source = 'config'; }
  let spillToDisk = config.spillToDisk ?? false;
  if (envSpill !== undefined && envSpill !== '') {
    if (!/^(1|0|true|false|yes|no)$/i.test(envSpill)) {
      throw new FerryError('ERR_USAGE', `FERRY_SPILL_TO_DISK must be 1 or 0, not '${envSpill}'`, { hint: 'set FERRY_SPILL_TO_DISK=1 to spill to disk when the memory budget is full' });
    }
    spillToDisk = /^(1|true|yes)$/i.test(envSpill);
  }
  if (overrides.spillToDisk !== undefined) spillToDisk = overrides.spillToDisk;
  return { budgetBytes, spillToDisk, source };
}

/** Bytes a directory's own entries occupy (st_blocks × 512, symlinks not followed, recursive). */
export async function storedBytes(dir: string): Promise<number> {
  let total = 0;
  let names: string[];
  try { names = await readdir(dir); } catch (err) {
    if (errnoCode(err) === 'ENOENT') return 0;
    throw err;
  }
  for (const n of names) {
    const p = join(dir, n);
    const st = await lstat(p).catch(() => undefined);
    if (!st) continue; // removed meanwhile
    total += st.blocks * 512;
    if (st.isDirectory()) total += await storedBytes(p);
  }
  return total;
}

/**
 * Bytes the memory tier holds: every snapshot directory in it, including ones being written
 * (`.tmp-*`, so concurrent checkpoints count each other) but not ones being removed (`.rm-*`).
 */
export async function memoryTierUsage(store: Store): Promise<number> {
  let names: string[];
  try { names = await readdir(store.memoryDir); } catch (err) {
    if (errnoCode(err) === 'ENOENT') return 0;
    throw err;
  }
  let total = 0;
  for (const n of names) if (!n.startsWith('.rm-')) total += await storedBytes(join(store.memoryDir, n));
  return total;
}

function sourceText(b: MemoryBudget): string {
  return b.source === 'option' ? '--memory-budget' : b.source === 'env' ? 'FERRY_MEMORY_BUDGET' : b.source === 'config' ? STORE_CONFIG_FILE : 'no budget';
}

/**
 * Decides where a new snapshot of about `estimateBytes` goes. A disk request stays on disk; a
 * memory request stays in memory while the budget allows, spills to disk when it does not and
 * spilling is allowed, and is refused with ERR_MEMORY_BUDGET otherwise (nothing is written).
 */
export async function placeSnapshot(store: Store, requested: Tier, estimateBytes: number, overrides: BudgetOverrides = {}): Promise<TierPlacement> {
  const budget = await resolveBudget(store.root, overrides);
  if (requested === 'disk' || budget.budgetBytes === undefined) {
    return { tier: requested, spilled: false, reason: undefined, budget, usedBytes: undefined, estimateBytes };
  }
  const usedBytes = await memoryTierUsage(store);
  if (usedBytes + estimateBytes <= budget.budgetBytes) {
    return { tier: 'memory', spilled: false, reason: undefined, budget, usedBytes, estimateBytes };
  }
  const over = `the memory tier's budget of ${formatBytes(budget.budgetBytes)} (${sourceText(budget)}) would be exceeded: ` +
    `${formatBytes(usedBytes)} in use + about ${formatBytes(estimateBytes)} for this snapshot`;
  if (budget.spillToDisk) return { tier: 'disk', spilled: true, reason: over, budget, usedBytes, estimateBytes };
  throw new FerryError('ERR_MEMORY_BUDGET', over, {
    detail: `budget ${budget.budgetBytes} bytes, in use ${usedBytes} bytes, estimate ${estimateBytes} bytes (the tree's resident memory)`,
    hint: 'free memory-tier space (`ferry snapshots gc`, `ferry snapshots rm ID`), raise the budget (--memory-budget SIZE, ' +
      `FERRY_MEMORY_BUDGET, or memoryBudgetBytes in <store>/${STORE_CONFIG_FILE}), checkpoint to disk (--tier disk), ` +
      `or allow spilling (--spill-to-disk, or "spillToDisk": true in <store>/${STORE_CONFIG_FILE})`,
  });
}
