import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { isAlive, killQuietly, waitFor } from '../testing/processes.js';
import { cpuMeter } from './cpu-use.js';
import { warmTmpfs, type BenchContext, type ExperimentResult } from './harness.js';
import { ferryMigrate, type FerryPhases } from './migrate-ferry.js';
import { Testbed, throwIfAborted } from './migrate-hosts.js';
import { rawMigrate } from './migrate-raw.js';
import { migrateResult } from './migrate-report.js';
import { MIGRATE_WORKLOADS, startWorkload, type MigrateWorkloadKind } from './migrate-workloads.js';
import { availableStrategies } from '../migrate/strategies/index.js';
import type { StrategyName } from '../migrate/strategy.js';

/**
 * `ferry bench migrate [--strategies LIST] [--sizes LIST]`: on a testbed of two hosts joined by a
 * 1 Gbit/s link, each of ferry's strategies moving a workload h1 → h2 against the raw baseline
 * (`criu dump` → tar over TCP → `criu restore`, one after another), same workload and size, a
 * fresh instance for every sample, the arms interleaved round by round (the order rotates each
 * round), every moved copy verified before its sample counts. Reports the downtime of each arm,
 * its ratio to raw round by round against the strategy's target, and where the time goes.
 */

import type { Arm, MigrateBenchOptions, MigrateSample } from './migrate-types.js';
export type { Arm, MigrateBenchOptions, MigrateSample } from './migrate-types.js';

export function migrateDefaults(quick: boolean): MigrateBenchOptions {
  const strategies: StrategyName[] = [...availableStrategies(), 'auto'];
  return quick
    ? { strategies, sizes: [64], runs: 1, workloads: [...MIGRATE_WORKLOADS], rate: '1gbit', warmMiB: 256, warmup: false }
    // Both hosts are this one VM: a 1 GiB migration takes ≈ 4 GiB of fresh memory (images on h1,
    // images on h2, the restored copy, while the source copy still holds its own), and this VM's
    // fresh memory is slow on first touch; the warm-up covers it for every arm (5 × the size).
    : { strategies, sizes: [1024], runs: 3, workloads: [...MIGRATE_WORKLOADS], rate: '1gbit', warmMiB: warmFor(1024), warmup: true };
}

/** MiB written and deleted before each sample: 5 × the largest size, at most 5 GiB (this VM's memory). */
export function warmFor(maxMiB: number): number {
  return Math.min(5 * maxMiB, 5 * 1024);
}


export async function runMigrateBench(ctx: BenchContext, o: MigrateBenchOptions): Promise<ExperimentResult> {
  const timeoutMsFor = (mib: number): number => 60_000 + mib * 150;
  ctx.say(`testbed: 2 hosts at ${o.rate} (prefix ferry-tbb-)`);
  const bed = await Testbed.up(o.rate, o.signal);
  const samples: MigrateSample[] = [];
  const restored = new Set<number>();
  let seq = 0;
  const h2 = bed.host('h2');

  const snapshotsOn = async (host: 'h1' | 'h2'): Promise<string[]> => {
    const r = await bed.ferry(bed.host(host), ['snapshots', 'ls', '--json'], { local: true, timeoutMs: 30_000 });
    return ((JSON.parse(r.stdout) as { snapshots?: { id: string }[] }).snapshots ?? []).map((s) => `${host}:${s.id}`);
  };

  const one = async (kind: MigrateWorkloadKind, arm: Arm, pair: number, mib: number): Promise<MigrateSample> => {
    throwIfAborted(o.signal);
    const name = `${kind}-${arm}-${seq++}`;
    const scratch = join(ctx.tmpfsDir, name);
    await mkdir(scratch, { recursive: true });
    const w = await startWorkload(bed, kind, mib, name, scratch);
    try {
      await warmTmpfs(ctx.tmpfsDir, o.warmMiB);
      ctx.say(`  ${arm}: moving ${name} h1 → h2`);
      if (arm !== 'raw') {
        const meter = cpuMeter({ source: bed.host('h1').agentPid, destination: h2.agentPid });
        const f = await ferryMigrate(bed, name, arm, timeoutMsFor(mib));
        const cpuS = meter.stop() as NonNullable<MigrateSample['cpuS']>;
        restored.add(f.pid);
        const verified = await w.verify(h2, f.pid);
        await bed.ferry(h2, ['stop', name], { local: true, timeoutMs: 30_000 });
        restored.delete(f.pid);
        const leftovers = [...await snapshotsOn('h1'), ...await snapshotsOn('h2')];
        return {
          workload: kind, arm, pair, mib, downtimeMs: f.downtimeMs, totalMs: f.totalMs, bytes: f.bytes,
          phases: { ...f.phases }, cliMs: f.cliMs, wireBytes: f.wireBytes, timeline: f.timeline, verified, leftovers, cpuS,
          ...(f.details ? { details: f.details } : {}),
        };
      }
      const meter = cpuMeter({});
      const r = await rawMigrate(bed, ctx.criuPath, w.pid, join(scratch, 'raw'), timeoutMsFor(mib));
      const cpuS = { machine: meter.stop()['machine'] ?? 0 };
      restored.add(r.pid);
      const verified = await w.verify(h2, r.pid);
      killQuietly(r.pid);
      await waitFor(() => !isAlive(r.pid), 10_000, `restored pid ${r.pid} to end`);
      restored.delete(r.pid);
      return {
        workload: kind, arm, pair, mib, downtimeMs: r.downtimeMs, totalMs: r.downtimeMs, bytes: r.bytes,
        phases: { dump: r.dumpMs, wire: r.wireMs, restore: r.restoreMs }, frozenMs: r.frozenMs, verified, cpuS,
      };
    } finally {
      await w.cleanup();
    }
  };

  try {
    if (o.warmup) {
      ctx.say('warm-up round (16 MiB memcheck, not recorded)');
      for (const arm of ['raw', ...o.strategies] as Arm[]) await one('memcheck', arm, -1, 16);
    }
    const arms: Arm[] = ['raw', ...o.strategies];
    for (const kind of o.workloads) {
      for (const mib of o.sizes) {
        for (let i = 0; i < o.runs; i++) {
          // Every arm once a round; the order rotates round by round.
          const order = [...arms.slice(i % arms.length), ...arms.slice(0, i % arms.length)];
          for (const arm of order) {
            ctx.say(`${kind} ${mib} MiB, round ${i + 1}/${o.runs}: ${arm}`);
            const s = await one(kind, arm, i, mib);
            samples.push(s);
            ctx.say(`  ${arm}: downtime ${s.downtimeMs.toFixed(0)} ms (${Object.entries(s.phases).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ')}); ${s.verified}`);
          }
        }
      }
    }
  } finally {
    for (const pid of restored) killQuietly(pid);
    await bed.down();
  }
  return migrateResult(o, samples);
}

export type { FerryPhases };
