import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { isAlive, killQuietly, waitFor } from '../testing/processes.js';
import { warmTmpfs, type BenchContext, type ExperimentResult } from './harness.js';
import { ferryMigrate, type FerryPhases } from './migrate-ferry.js';
import { Testbed, throwIfAborted } from './migrate-hosts.js';
import { rawMigrate } from './migrate-raw.js';
import { migrateResult } from './migrate-report.js';
import { MIGRATE_WORKLOADS, startWorkload, type MigrateWorkloadKind } from './migrate-workloads.js';

/**
 * `ferry bench migrate --strategy cold` (issue 13): on a testbed of two hosts joined by a 1 Gbit/s
 * link, ferry's cold migration h1 → h2 against the raw baseline (`criu dump` → tar over TCP →
 * `criu restore`, one after another), same workload and size, a fresh instance for every sample,
 * the arms interleaved pair by pair (ferry first in even pairs, raw first in odd ones), every
 * moved copy verified before its sample counts. Reports the downtime of each arm, the ratio pair
 * by pair, and where the time goes.
 */

import type { Arm, MigrateBenchOptions, MigrateSample } from './migrate-types.js';
export type { Arm, MigrateBenchOptions, MigrateSample } from './migrate-types.js';

export function migrateDefaults(quick: boolean): MigrateBenchOptions {
  return quick
    ? { strategy: 'cold', mib: 64, runs: 1, workloads: [...MIGRATE_WORKLOADS], rate: '1gbit', warmMiB: 256, warmup: false }
    // Both hosts are this one VM: a 1 GiB migration takes ≈ 4 GiB of fresh memory (images on h1,
    // images on h2, the restored copy, while the source copy still holds its own), and this VM's
    // fresh memory is slow on first touch; the warm-up covers it for both arms (5 × the size).
    : { strategy: 'cold', mib: 1024, runs: 3, workloads: [...MIGRATE_WORKLOADS], rate: '1gbit', warmMiB: 5 * 1024, warmup: true };
}


export async function runMigrateBench(ctx: BenchContext, o: MigrateBenchOptions): Promise<ExperimentResult> {
  const timeoutMs = 60_000 + o.mib * 150;
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
      if (arm === 'ferry') {
        const f = await ferryMigrate(bed, name, timeoutMs);
        restored.add(f.pid);
        const verified = await w.verify(h2, f.pid);
        await bed.ferry(h2, ['stop', name], { local: true, timeoutMs: 30_000 });
        restored.delete(f.pid);
        const leftovers = [...await snapshotsOn('h1'), ...await snapshotsOn('h2')];
        return {
          workload: kind, arm, pair, mib, downtimeMs: f.downtimeMs, totalMs: f.totalMs, bytes: f.bytes,
          phases: { ...f.phases }, cliMs: f.cliMs, wireBytes: f.wireBytes, timeline: f.timeline, verified, leftovers,
        };
      }
      const r = await rawMigrate(bed, ctx.criuPath, w.pid, join(scratch, 'raw'), timeoutMs);
      restored.add(r.pid);
      const verified = await w.verify(h2, r.pid);
      killQuietly(r.pid);
      await waitFor(() => !isAlive(r.pid), 10_000, `restored pid ${r.pid} to end`);
      restored.delete(r.pid);
      return {
        workload: kind, arm, pair, mib, downtimeMs: r.downtimeMs, totalMs: r.downtimeMs, bytes: r.bytes,
        phases: { dump: r.dumpMs, wire: r.wireMs, restore: r.restoreMs }, frozenMs: r.frozenMs, verified,
      };
    } finally {
      await w.cleanup();
    }
  };

  try {
    if (o.warmup) {
      ctx.say('warm-up pair (16 MiB memcheck, not recorded)');
      await one('memcheck', 'ferry', -1, 16);
      await one('memcheck', 'raw', -1, 16);
    }
    for (const kind of o.workloads) {
      for (let i = 0; i < o.runs; i++) {
        const order: Arm[] = i % 2 === 0 ? ['ferry', 'raw'] : ['raw', 'ferry'];
        for (const arm of order) {
          ctx.say(`${kind} ${o.mib} MiB, pair ${i + 1}/${o.runs}: ${arm}`);
          const s = await one(kind, arm, i, o.mib);
          samples.push(s);
          ctx.say(`  ${arm}: downtime ${s.downtimeMs.toFixed(0)} ms (${Object.entries(s.phases).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ')}); ${s.verified}`);
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
