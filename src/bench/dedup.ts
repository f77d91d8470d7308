/**
 * `ferry bench dedup`: what content-addressed page dedup costs and saves (VAS-CRIU's question,
 * on a stock kernel without soft-dirty).
 *
 * One memcheck workload (N MiB, rewriting `dirty`% distinct pages on each SIGUSR2) is
 * checkpointed `snapshots` times with --leave-running, a burst between each. At every step, in
 * alternating order, a plain checkpoint (no dedup, into its own store, removed at once) and a
 * deduped one are taken of the same state: their wall times pair up. Then every deduped snapshot
 * is restored and verified (memcheck checks every byte), timed by its depth in the chain; and the
 * deepest one is restored again after compaction made it flat — the same state, chain vs flat.
 * The same is done for the `forward` chain mode, and for newest-flat with a depth policy
 * (`--max-depth`: no snapshot reads through more than N parents). Nothing here has thresholds.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { checkpoint, type DedupMode } from '../engine/checkpoint.js';
import { restore } from '../engine/restore.js';
import { ancestors, foldInto } from '../store/chain.js';
import { storedBytes } from '../store/budget.js';
import { Store } from '../store/store.js';
import { memcheckWorkload, type WorkloadInstance } from '../testing/workloads.js';
import { Live, until, type BenchContext, type Chart, type ExperimentResult } from './harness.js';
import { round, summarize } from './stats.js';

/** Arms: a chain mode, optionally with the depth policy at checkpoint time ('newest-flat/max-depth-2'). */
export type DedupArm = DedupMode | `${DedupMode}/max-depth-${number}`;
export interface DedupOptions { mib: number; snapshots: number; dirtyPercent: number; modes: DedupArm[] }

function armMode(arm: DedupArm): DedupMode { return arm.split('/')[0] as DedupMode; }
function armDepth(arm: DedupArm): number | undefined {
  const m = /max-depth-(\d+)$/.exec(arm);
  return m ? Number(m[1]) : undefined;
}

export const dedupDefaults = (quick: boolean): DedupOptions =>
  quick ? { mib: 64, snapshots: 4, dirtyPercent: 5, modes: ['newest-flat', 'forward', 'newest-flat/max-depth-1'] }
    : { mib: 1024, snapshots: 10, dirtyPercent: 5, modes: ['newest-flat', 'forward', 'newest-flat/max-depth-2'] };

interface StepSample { mode: DedupArm; step: number; order: 'plain-first' | 'dedup-first'; plainMs: number; dedupMs: number; plainBytes: number; storedAfterBytes: number; logicalAfterBytes: number }
interface RestoreSample { mode: DedupArm; step: number; depth: number; restoreMs: number; verifyMs: number; verdict: string }
interface FlatPair { mode: DedupArm; step: number; depth: number; chainMs: number[]; flatMs: number[]; foldMs: number; foldedMs: number }

/** Sends SIGUSR2 and waits until memcheck reports the burst done. */
async function burst(inst: WorkloadInstance, pid: number, n: number): Promise<void> {
  process.kill(pid, 'SIGUSR2');
  const file = join(inst.statusDir!, 'dirtied');
  await until(async () => Number((await readFile(file, 'utf8').catch(() => '0')).trim()) >= n, 30_000, `memcheck burst ${n}`);
}

async function storeTotals(store: Store): Promise<{ stored: number; logical: number }> {
  let stored = 0, logical = 0;
  for (const s of await store.list()) {
    stored += await storedBytes(s.dir);
    logical += s.manifest.logicalBytes ?? s.manifest.bytes;
  }
  return { stored, logical };
}

export async function runDedupExperiment(ctx: BenchContext, o: DedupOptions = dedupDefaults(ctx.quick)): Promise<ExperimentResult> {
  const started = performance.now();
  const live = new Live();
  const steps: StepSample[] = [];
  const restores: RestoreSample[] = [];
  const flats: FlatPair[] = [];
  const wl = join(ctx.tmpfsDir, 'dedup-workloads');
  await mkdir(wl, { recursive: true });
  try {
    for (const mode of o.modes) {
      const tag = mode.replace(/\//g, '-');
      const store = new Store({ root: join(ctx.tmpfsDir, `dedup-${tag}`), memoryDir: join(ctx.tmpfsDir, `dedup-${tag}-mem`) });
      const plain = new Store({ root: join(ctx.tmpfsDir, `plain-${tag}`), memoryDir: join(ctx.tmpfsDir, `plain-${tag}-mem`) });
      const maxDepth = armDepth(mode);
      await store.ensure('memory');
      await plain.ensure('memory');
      const inst = await memcheckWorkload({ mib: o.mib, dirtyPercent: o.dirtyPercent, dirtyEveryMs: 0, seed: 11 }).prepare(wl);
      const run = await live.launch(inst);
      await inst.waitReady(30_000 + o.mib * 100);
      const ids: string[] = [];
      // The plain snapshots of the first and last states stay: the flat references for the
      // deepest chain (the first in newest-flat, the last in forward).
      const plainKept = new Map<number, string>();
      for (let step = 0; step < o.snapshots; step++) {
        if (step > 0) await burst(inst, run.rootPid, step);
        ctx.say(`dedup ${mode}: snapshot ${step + 1}/${o.snapshots}`);
        const order = step % 2 === 0 ? 'plain-first' : 'dedup-first';
        let plainMs = 0, dedupMs = 0, plainBytes = 0;
        const doPlain = async () => {
          const t0 = performance.now();
          const c = await checkpoint(plain, { target: run.rootPid, tier: 'memory', leaveRunning: true, dedup: false });
          plainMs = performance.now() - t0;
          plainBytes = c.manifest.bytes;
          if (step === 0 || step === o.snapshots - 1) plainKept.set(step + 1, c.snapshot);
          else await plain.remove(c.snapshot);
        };
        const doDedup = async () => {
          const t0 = performance.now();
          const c = await checkpoint(store, { target: run.rootPid, tier: 'memory', leaveRunning: true, dedup: armMode(mode), ...(maxDepth !== undefined ? { maxDepth } : {}) });
          dedupMs = performance.now() - t0;
          ids.push(c.snapshot);
        };
        if (order === 'plain-first') { await doPlain(); await doDedup(); } else { await doDedup(); await doPlain(); }
        const t = await storeTotals(store);
        steps.push({ mode, step: step + 1, order, plainMs: round(plainMs, 1), dedupMs: round(dedupMs, 1), plainBytes, storedAfterBytes: t.stored, logicalAfterBytes: t.logical });
      }
      await live.kill(run);
      // Every snapshot restores and verifies; timed by chain depth.
      for (let i = 0; i < ids.length; i++) {
        const s = await store.get(ids[i]!);
        const depth = (await ancestors(store, s)).length;
        const t0 = performance.now();
        const r = await restore(store, ids[i]!);
        const restoreMs = performance.now() - t0;
        const v0 = performance.now();
        const verdict = await inst.verify(r.pid, 30_000 + o.mib * 40);
        const verifyMs = performance.now() - v0;
        await live.killPid(r.pid);
        restores.push({ mode, step: i + 1, depth, restoreMs: round(restoreMs, 1), verifyMs: round(verifyMs, 1), verdict: `ok ${verdict.split(' ').filter((w) => !w.startsWith('ok')).slice(0, 2).join(' ')}` });
      }
      // The deepest snapshot against a plain (whole, CRIU-written) snapshot of the same state,
      // interleaved; then folded flat by compaction and restored once more.
      const deepest = restores.filter((r) => r.mode === mode).sort((a, b) => b.depth - a.depth)[0];
      const flatRef = deepest ? plainKept.get(deepest.step) : undefined;
      if (deepest && deepest.depth > 0 && flatRef) {
        const id = ids[deepest.step - 1]!;
        const chainMs: number[] = [], flatMs: number[] = [], foldedMs: number[] = [];
        const once = async (st: Store, snap: string, into: number[]) => {
          const t0 = performance.now();
          const r = await restore(st, snap);
          into.push(round(performance.now() - t0, 1));
          await inst.verify(r.pid, 30_000 + o.mib * 40);
          await live.killPid(r.pid);
        };
        for (let k = 0; k < 2; k++) {
          await once(store, id, chainMs);
          await once(plain, flatRef, flatMs);
        }
        const f0 = performance.now();
        await foldInto(store, await store.get(id));
        const foldMs = round(performance.now() - f0, 1);
        await once(store, id, foldedMs);
        flats.push({ mode, step: deepest.step, depth: deepest.depth, chainMs, flatMs, foldMs, foldedMs: foldedMs[0]! });
      }
      for (const snap of plainKept.values()) await plain.remove(snap);
      await inst.cleanup();
      // free the tmpfs before the next mode
      for (const s of await store.list()) await store.remove(s.manifest.id);
    }
  } finally {
    live.killAll();
  }

  const modes = o.modes;
  const perMode = Object.fromEntries(modes.map((mode) => {
    const st = steps.filter((s) => s.mode === mode);
    const later = st.filter((s) => s.step > 1);
    const ratio = later.map((s) => s.dedupMs / s.plainMs);
    const last = st[st.length - 1];
    const rs = restores.filter((r) => r.mode === mode);
    const flat = flats.find((f) => f.mode === mode);
    const flatMed = flat ? summarize(flat.flatMs).median : undefined;
    return [mode, {
      checkpointRatio: ratio.length ? summarize(ratio.map((x) => round(x, 3))) : undefined,
      addedMs: later.length ? summarize(later.map((s) => round(s.dedupMs - s.plainMs, 1))) : undefined,
      storedBytes: last?.storedAfterBytes,
      logicalBytes: last?.logicalAfterBytes,
      storedOverOneSnapshot: last ? round(last.storedAfterBytes / (last.plainBytes || 1), 3) : undefined,
      // verify() rejects on any bad page, so every recorded restore verified
      allVerified: rs.length === o.snapshots,
      newestRestoreMs: rs[rs.length - 1]?.restoreMs,
      newestDepth: rs[rs.length - 1]?.depth,
      deepest: flat ? {
        step: flat.step, depth: flat.depth, chainMs: round(summarize(flat.chainMs).median, 1), flatMs: flatMed === undefined ? undefined : round(flatMed, 1),
        ratio: flatMed ? round(summarize(flat.chainMs).median / flatMed, 3) : undefined, foldMs: flat.foldMs, foldedRestoreMs: flat.foldedMs,
      } : undefined,
    }];
  }));

  const gib = (b: number) => round(b / 2 ** 30, 3);
  const charts: Chart[] = [
    {
      id: 'dedup-storage',
      title: `How much do ${o.snapshots} snapshots of a ${o.mib} MiB workload occupy, with ${o.dirtyPercent}% of pages rewritten between them?`,
      caption: 'Stored bytes in the store after each snapshot (deduped) against what the same snapshots take whole (logical). Memory tier (tmpfs).',
      spec: perStepLines(steps.flatMap((s) => [
        { step: s.step, series: `stored (${s.mode})`, y: gib(s.storedAfterBytes) },
        ...(s.mode === modes[0] ? [{ step: s.step, series: 'logical (whole snapshots)', y: gib(s.logicalAfterBytes) }] : []),
      ]), 'snapshots taken', 'GiB in the store'),
    },
    {
      id: 'dedup-checkpoint',
      title: 'What does the dedup pass add to a checkpoint?',
      caption: 'Wall time of each checkpoint with dedup against a plain checkpoint of the same state, taken back to back in alternating order (the first snapshot has nothing to dedup against).',
      spec: perStepLines(steps.flatMap((s) => [
        { step: s.step, series: `dedup (${s.mode})`, y: s.dedupMs },
        ...(s.mode === modes[0] ? [{ step: s.step, series: 'plain', y: s.plainMs }] : []),
      ]), 'snapshot', 'checkpoint wall time (ms)'),
    },
    {
      id: 'dedup-restore-depth',
      title: 'How does a snapshot\'s place in the chain change its restore time?',
      caption: 'Restore wall time (checksums of the whole chain + CRIU) of every deduped snapshot, against the number of snapshots CRIU reads through. newest-flat keeps the newest whole (depth 0).',
      spec: {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
        width: 420, height: 240,
        data: { values: restores.map((r) => ({ mode: r.mode, depth: r.depth, ms: r.restoreMs })) },
        mark: { type: 'point', filled: true, size: 70 },
        encoding: {
          x: { field: 'depth', type: 'quantitative', title: 'chain depth (parents CRIU reads)', axis: { tickMinStep: 1 } },
          y: { field: 'ms', type: 'quantitative', title: 'restore wall time (ms)' },
          color: { field: 'mode', type: 'nominal', title: 'chain mode' },
          shape: { field: 'mode', type: 'nominal', title: 'chain mode' },
        },
      },
    },
  ];

  return {
    name: 'dedup',
    title: 'Page dedup across snapshots',
    question: 'VAS-CRIU: what does keeping many snapshots cost, and what does content-addressed dedup save — on a kernel without soft-dirty?',
    params: { ...o },
    durationMs: round(performance.now() - started, 0),
    summary: perMode,
    charts,
    tables: [
      {
        title: 'Per mode: dedup cost, storage, restores',
        columns: ['mode', 'checkpoint ×plain (median, min–max)', 'added ms (median)', `stored after ${o.snapshots}`, 'logical', 'all verified', 'deepest: depth', 'chain ms', 'whole ms', 'chain ×whole', 'fold ms', 'folded restore ms'],
        rows: modes.map((m) => {
          const p = perMode[m] as Record<string, unknown> & { checkpointRatio?: { median: number; min: number; max: number }; addedMs?: { median: number }; deepest?: { depth: number; chainMs?: number; flatMs?: number; ratio?: number; foldMs?: number; foldedRestoreMs?: number } };
          return [m,
            p.checkpointRatio ? `×${p.checkpointRatio.median} (${p.checkpointRatio.min}–${p.checkpointRatio.max})` : '-',
            p.addedMs ? p.addedMs.median : '-',
            `${gib(p['storedBytes'] as number)} GiB`, `${gib(p['logicalBytes'] as number)} GiB`, String(p['allVerified']),
            p.deepest?.depth ?? '-', p.deepest?.chainMs ?? '-', p.deepest?.flatMs ?? '-', p.deepest?.ratio !== undefined ? `×${p.deepest.ratio}` : '-',
            p.deepest?.foldMs ?? '-', p.deepest?.foldedRestoreMs ?? '-'];
        }),
      },
      {
        title: 'Every restore',
        columns: ['mode', 'snapshot', 'depth', 'restore ms', 'verify ms', 'verdict'],
        rows: restores.map((r) => [r.mode, r.step, r.depth, r.restoreMs, r.verifyMs, r.verdict]),
      },
    ],
    notes: [
      'Both arms checkpoint the same state (--leave-running) back to back, in alternating order; the plain snapshot is removed at once.',
      'newest-flat/max-depth-N: the same, but a previous snapshot stays whole when rebasing it would make an older one read through more than N parents (the compaction policy at checkpoint time).',
      'newest-flat: each new snapshot stays whole and the previous one is rewritten to read its unchanged pages from it (the rewrite is part of the dedup arm\'s time).',
      'forward: each new snapshot reads its unchanged pages from the previous one.',
      'chain ×flat: the deepest snapshot restored through its chain against a plain (whole) snapshot of the same state, 2 interleaved pairs (medians); then folded flat by compaction (fold ms) and restored once more.',
    ],
    samples: [...steps.map((s) => ({ kind: 'checkpoint', ...s })), ...restores.map((r) => ({ kind: 'restore', ...r })), ...flats.map((f) => ({ kind: 'chain-vs-flat', ...f }))],
  };
}

/** A line per series over the snapshot steps (vega-lite). */
function perStepLines(values: { step: number; series: string; y: number }[], xTitle: string, yTitle: string): Record<string, unknown> {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    width: 420, height: 240,
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: xTitle, axis: { tickMinStep: 1 } },
      y: { field: 'y', type: 'quantitative', title: yTitle },
      color: { field: 'series', type: 'nominal', title: null },
    },
  };
}
