import { migrateDefaults, runMigrateBench } from '../../bench/migrate.js';
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
  workload?: string[] | undefined;
  'warm-mib'?: string | undefined;
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * `ferry bench migrate`: the migration benchmark (bench/migrate.ts) as a bench run of its own
 * (not part of `all`: it needs a testbed, and its full run takes minutes). A signal stops it
 * between steps (the running command is ended) and the testbed is taken down before it exits.
 */
export async function benchMigrate(values: BenchMigrateFlags, ctx: CommandContext): Promise<number> {
  const strategy = values.strategy ?? 'cold';
  if (strategy !== 'cold') throw new FerryError('ERR_USAGE', `bench migrate: unknown strategy '${strategy}'`, { hint: 'strategies: cold' });
  const o = migrateDefaults(values.quick === true);
  if (values.mib !== undefined) {
    o.mib = positiveInt(values.mib, '--mib', 'bench');
    if (values.quick !== true) o.warmMiB = 5 * o.mib; // the warm-up follows the size (see migrateDefaults)
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

