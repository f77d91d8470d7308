import { readdir, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { readMeminfo } from '../telemetry/proc.js';
import { FerryError, errnoCode } from '../util/errors.js';
import type { ErrorCode } from '../util/error-codes.js';
import { formatBytes } from '../util/format.js';
import { STORE_CONFIG_FILE, parseSize, readStoreConfig, type StoreConfig } from './config.js';
import type { Tier } from './manifest.js';
import type { Store } from './store.js';

// The store's config moved to config.ts; these stay importable from here.
export { STORE_CONFIG_FILE, parseSize, readStoreConfig, type StoreConfig };

/**
 * The memory tier's budget: a size limit for the snapshots kept on tmpfs. A checkpoint that
 * would take the tier past it spills to the disk tier when that is allowed, and is refused
 * before CRIU runs otherwise.
 *
 * Where the limit comes from, first one wins: the checkpoint's own options (`--memory-budget`,
 * `--spill-to-disk` / `--no-spill`), the environment (`FERRY_MEMORY_BUDGET`,
 * `FERRY_SPILL_TO_DISK=1|0`), the store's `<store>/config.json`
 * (`{"memoryBudgetBytes": 1073741824, "spillToDisk": true}`). No limit anywhere: no budget.
 *
 * Whatever the budget, the host comes first: tmpfs pages are RAM that cannot be reclaimed (no
 * swap here), so a memory-tier snapshot must leave the host's MemAvailable above a reserve
 * (`FERRY_MEMORY_RESERVE`, config `memoryReserveBytes`; default the larger of 256 MiB and 5 %
 * of MemTotal), and must fit the tmpfs's free space.
 */
export interface BudgetOverrides {
  memoryBudgetBytes?: number;
  spillToDisk?: boolean;
  memoryReserveBytes?: number;
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
  /** The host's memory as judged (memory requests): MemAvailable, the reserve kept, the tmpfs's free space. */
  host: { availableBytes: number; reserveBytes: number; tmpfsFreeBytes: number | undefined } | undefined;
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

import { storedBytes } from './layout.js';

export { storedBytes };

/**
 * Bytes this store's memory tier holds: every snapshot directory in it, including ones being
 * written (`.tmp-*`, so concurrent checkpoints count each other) but not ones being removed
 * (`.rm-*`). A leftover counts until gc removes it.
 */
export async function memoryTierUsage(store: Store): Promise<number> {
  const dir = store.existingMemoryDir();
  if (dir === undefined) return 0;
  let names: string[];
  try { names = await readdir(dir); } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return 0;
    throw err;
  }
  let total = 0;
  for (const n of names) if (!n.startsWith('.rm-')) total += await storedBytes(join(dir, n));
  return total;
}

/** What the host has for a memory-tier snapshot. */
export interface HostMemory {
  /** MemAvailable (what can be allocated without swapping or the OOM killer). */
  availableBytes: number;
  totalBytes: number;
  /** Free bytes of the tmpfs the memory tier is on (undefined: unknown). */
  tmpfsFreeBytes: number | undefined;
}

/** The larger of 256 MiB and 5 % of the host's memory. */
export function defaultReserveBytes(totalBytes: number): number {
  return Math.max(256 * 2 ** 20, Math.floor(totalBytes * 0.05));
}

/** The reserve in force: option, then FERRY_MEMORY_RESERVE, then config.json, then the default. */
export async function resolveReserve(root: string, totalBytes: number, overrides: BudgetOverrides = {}, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  if (overrides.memoryReserveBytes !== undefined) return overrides.memoryReserveBytes;
  const e = env['FERRY_MEMORY_RESERVE'];
  if (e) return parseSize(e, 'FERRY_MEMORY_RESERVE');
  return (await readStoreConfig(root)).memoryReserveBytes ?? defaultReserveBytes(totalBytes);
}

/** MemAvailable/MemTotal from /proc/meminfo, and the free space where the memory tier lives. */
export async function readHostMemory(store: Store): Promise<HostMemory | undefined> {
  const mi = readMeminfo();
  if (!mi) return undefined;
  let tmpfsFreeBytes: number | undefined;
  for (const d of [store.existingMemoryDir(), store.memoryBase]) {
    if (d === undefined) continue;
    const fs = await statfs(d).catch(() => undefined);
    if (fs) { tmpfsFreeBytes = fs.bavail * fs.bsize; break; }
  }
  return { availableBytes: mi.availableBytes, totalBytes: mi.totalBytes, tmpfsFreeBytes };
}

function sourceText(b: MemoryBudget): string {
  return b.source === 'option' ? '--memory-budget' : b.source === 'env' ? 'FERRY_MEMORY_BUDGET' : b.source === 'config' ? STORE_CONFIG_FILE : 'no budget';
}

const FREE_HINT = 'free memory-tier space (`ferry snapshots gc`, `ferry snapshots rm ID`), checkpoint to disk (--tier disk), ' +
  `or allow spilling (--spill-to-disk, or "spillToDisk": true in <store>/${STORE_CONFIG_FILE})`;

/**
 * Decides where a new snapshot of about `estimateBytes` goes. A disk request stays on disk; a
 * memory request stays in memory while the budget, the host's available memory (less the
 * reserve) and the tmpfs's free space allow; otherwise it spills to disk when spilling is
 * allowed, and is refused otherwise (ERR_MEMORY_BUDGET, ERR_HOST_MEMORY, ERR_STORE_FULL;
 * nothing is written). `host` is read from /proc/meminfo unless given (tests).
 */
export async function placeSnapshot(store: Store, requested: Tier, estimateBytes: number, overrides: BudgetOverrides = {},
  host?: HostMemory): Promise<TierPlacement> {
  const budget = await resolveBudget(store.root, overrides);
  if (requested === 'disk') {
    return { tier: requested, spilled: false, reason: undefined, budget, usedBytes: undefined, estimateBytes, host: undefined };
  }
  const usedBytes = await memoryTierUsage(store);
  const h = host ?? await readHostMemory(store);
  const reserveBytes = h ? await resolveReserve(store.root, h.totalBytes, overrides) : 0;
  const hostFacts = h ? { availableBytes: h.availableBytes, reserveBytes, tmpfsFreeBytes: h.tmpfsFreeBytes } : undefined;
  const place = (tier: Tier, reason?: string): TierPlacement =>
    ({ tier, spilled: tier !== requested, reason, budget, usedBytes, estimateBytes, host: hostFacts });

  let code: ErrorCode | undefined;
  let over: string | undefined;
  let detail = '';
  if (budget.budgetBytes !== undefined && usedBytes + estimateBytes > budget.budgetBytes) {
    code = 'ERR_MEMORY_BUDGET';
    over = `the memory tier's budget of ${formatBytes(budget.budgetBytes)} (${sourceText(budget)}) would be exceeded: ` +
      `${formatBytes(usedBytes)} in use + about ${formatBytes(estimateBytes)} for this snapshot`;
    detail = `budget ${budget.budgetBytes} bytes, in use ${usedBytes} bytes, estimate ${estimateBytes} bytes (the tree's resident memory)`;
  } else if (h && estimateBytes + reserveBytes > h.availableBytes) {
    code = 'ERR_HOST_MEMORY';
    over = `the host has ${formatBytes(h.availableBytes)} of memory available; a memory-tier snapshot of about ${formatBytes(estimateBytes)} ` +
      `would leave less than the reserve of ${formatBytes(reserveBytes)}`;
    detail = `MemAvailable ${h.availableBytes} bytes, reserve ${reserveBytes} bytes, estimate ${estimateBytes} bytes, memory tier in use ${usedBytes} bytes`;
  } else if (h?.tmpfsFreeBytes !== undefined && estimateBytes > h.tmpfsFreeBytes) {
    code = 'ERR_STORE_FULL';
    over = `the memory tier has ${Math.round(h.tmpfsFreeBytes / 2 ** 20)} MiB free on its file system; this snapshot needs about ${formatBytes(estimateBytes)}`;
    detail = `tmpfs free ${h.tmpfsFreeBytes} bytes, estimate ${estimateBytes} bytes`;
  }
  if (code === undefined || over === undefined) return place('memory');
  if (budget.spillToDisk) return place('disk', over);
  throw new FerryError(code, over, {
    detail,
    hint: code === 'ERR_MEMORY_BUDGET'
      ? `${FREE_HINT}, or raise the budget (--memory-budget SIZE, FERRY_MEMORY_BUDGET, or memoryBudgetBytes in <store>/${STORE_CONFIG_FILE})`
      : code === 'ERR_HOST_MEMORY'
        ? `${FREE_HINT}; the reserve is set by FERRY_MEMORY_RESERVE or memoryReserveBytes in <store>/${STORE_CONFIG_FILE}`
        : FREE_HINT,
  });
}
