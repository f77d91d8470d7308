import { migrateDefaults, runMigrateBench, warmFor } from '../../bench/migrate.js';
import { availableStrategies } from '../../migrate/strategies/index.js';
import type { StrategyName } from '../../migrate/strategy.js';
import { MIGRATE_WORKLOADS, type MigrateWorkloadKind } from '../../bench/migrate-workloads.js';
import { FerryError } from '../../util/errors.js';
import { positiveInt, type CommandContext } from '../command.js';
import { runExperiments } from './bench-run.js';

export interface BenchMigrateFlags {
  quick?: boolean | undefined;
  out?: string | undefined;
  dir?: string | undefined;
  mib?: string | undefined;
  runs?: string | undefined;
  strategy?: string | undefined;
  strategies?: string | undefined;
  sizes?: string | undefined;
  rate?: string | undefined;
  workload?: string[] | undefined;
  'warm-mib'?: string | undefined;
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** `cold,stream,auto` → the strategies, each built into this ferry (auto: whatever it picks). */
export function parseStrategies(list: string): StrategyName[] {
  const built: StrategyName[] = [...availableStrategies(), 'auto'];
  const wanted = list.split(',').map((x) => x.trim()).filter(Boolean);
  const bad = wanted.filter((w) => !built.includes(w as StrategyName));
  if (bad.length || wanted.length === 0) {
    throw new FerryError('ERR_USAGE', `bench migrate: unknown or unavailable strategy '${bad.join(', ') || list}'`, { hint: `strategies built here: ${built.join(', ')}` });
  }
  return [...new Set(wanted as StrategyName[])];
}

/** `256M,1G,4G` or `64,1024` (MiB) → MiB. */
export function parseSizes(list: string): number[] {
  const out: number[] = [];
  for (const x of list.split(',').map((v) => v.trim()).filter(Boolean)) {
    const m = /^(\d+)([MG]i?B?)?$/i.exec(x);
    const n = m ? Number(m[1]) * (m[2] && /^g/i.test(m[2]) ? 1024 : 1) : NaN;
    if (!Number.isInteger(n) || n < 1 || n > 64 * 1024) throw new FerryError('ERR_USAGE', `bench migrate: bad size '${x}'`, { hint: 'sizes in MiB or with a unit: 64, 256M, 1G, 4G' });
    out.push(n);
  }
  if (out.length === 0) throw new FerryError('ERR_USAGE', 'bench migrate: --sizes is empty', { hint: 'e.g. --sizes 256M,1G' });
  return out;
}

/**
 * `ferry bench migrate`: the migration benchmark (bench/migrate.ts) as a bench run of its own
 * (not part of `all`: it needs a testbed, and its full run takes minutes). A signal stops it
 * between steps (the running command is ended) and the testbed is taken down before it exits.
 */
export async function benchMigrate(values: BenchMigrateFlags, ctx: CommandContext): Promise<number> {
  const o = migrateDefaults(values.quick === true);
  const list = values.strategies ?? values.strategy;
  if (list !== undefined) o.strategies = parseStrategies(list);
  const sizes = values.sizes ?? values.mib;
  if (sizes !== undefined) {
    o.sizes = parseSizes(sizes);
    if (values.quick !== true) o.warmMiB = warmFor(Math.max(...o.sizes)); // the warm-up follows the size (see migrateDefaults)
  }
  if (values.rate !== undefined) {
    if (!/^\d+(\.\d+)?(k|m|g)?bit$/.test(values.rate)) throw new FerryError('ERR_USAGE', `bench migrate: --rate must be like 1gbit or 500mbit, not '${values.rate}'`, { hint: 'the testbed link\'s rate (tc): 100mbit, 1gbit, 10gbit' });
    o.rate = values.rate;
  }
  if (values.runs !== undefined) o.runs = positiveInt(values.runs, '--runs', 'bench');
  if (values['warm-mib'] !== undefined) o.warmMiB = Number(values['warm-mib']) || 0;
  if (values.workload?.length) {
    const wanted = values.workload.flatMap((w) => w.split(','));
    const bad = wanted.filter((w) => !MIGRATE_WORKLOADS.includes(w as MigrateWorkloadKind));
    if (bad.length) throw new FerryError('ERR_USAGE', `bench migrate: unknown workload '${bad.join(', ')}'`, { hint: `workloads: ${MIGRATE_WORKLOADS.join(', ')}` });
    o.workloads = MIGRATE_WORKLOADS.filter((w) => wanted.includes(w));
  }
  const controller = new AbortController();
  const on = (s: (typeof SIGNALS)[number]) => (): void => {
    if (controller.signal.aborted) return;
    process.stderr.write(`\nbench: ${s} received: ending the running step and taking the testbed down…\n`);
    controller.abort(s);
  };
  const handlers = SIGNALS.map((s) => [s, on(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  o.signal = controller.signal;
  try {
    return await runExperiments(values, ctx, [{ name: 'migrate', run: (c) => runMigrateBench(c, o) }]);
  } finally {
    for (const [s, h] of handlers) process.off(s, h);
  }
}

