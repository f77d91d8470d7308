// The dashboard's pure logic (no DOM, no root): units, chains, the live job model fed a real
// event sequence, a migration's outcome, and every chart spec compiled by vega-lite and drawn by
// vega (as the page does, without a browser).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Job, JobEvent } from '../engine/jobs.js';
import { cpuSpec, memorySpec, phasesSpec, timelineSpec, type Spec } from './charts.js';
import { applyEvent, emptyLive, errorView, formatAge, formatBytes, formatMs, formatRate, frozenMs, migrationOutcome, snapshotChains, timeline, transferRate, type SnapshotRow } from './model.js';

const job = (over: Partial<Job>): Job => ({ id: 'j-0123456789abcdef', kind: 'migrate', state: 'running', phases: [], createdAt: '2026-01-01T00:00:00.000Z', ...over });

describe('dashboard model', () => {
  it('formats bytes, durations, ages and rates', () => {
    assert.equal(formatBytes(0), '0 B');
    assert.equal(formatBytes(1536), '1.5 KiB');
    assert.equal(formatBytes(64 * 2 ** 20), '64.0 MiB');
    assert.equal(formatBytes(300 * 2 ** 30), '300 GiB');
    assert.equal(formatBytes(null), '—');
    assert.equal(formatMs(850.4), '850 ms');
    assert.equal(formatMs(12_300), '12.3 s');
    assert.equal(formatMs(192_000), '3 min 12 s');
    const now = Date.parse('2026-01-01T12:00:00Z');
    assert.equal(formatAge('2026-01-01T11:59:55Z', now), '5 s ago');
    assert.equal(formatAge('2026-01-01T11:57:00Z', now), '3 min ago');
    assert.equal(formatAge('2025-12-28T12:00:00Z', now), '4 d ago');
    assert.equal(formatAge('nonsense', now), '—');
    assert.equal(formatRate(118 * 2 ** 20), '118 MiB/s');
  });

  it('snapshot chains: bases first, children indented oldest first; a missing parent and a cycle are shown, not hidden', () => {
    const row = (id: string, parent: string | null, createdAt: string): SnapshotRow => ({ id, parent, createdAt, tier: 'disk', workload: 'w', bytes: 1, logicalBytes: 10, storedBytes: 1 });
    const rows = [
      row('c2', 'b', '2026-01-01T00:00:03Z'), row('b', 'a', '2026-01-01T00:00:01Z'), row('a', null, '2026-01-01T00:00:00Z'),
      row('c1', 'b', '2026-01-01T00:00:02Z'), row('orphan', 'gone', '2026-01-01T00:00:05Z'),
      row('x', 'y', '2026-01-01T00:00:06Z'), row('y', 'x', '2026-01-01T00:00:07Z'),
    ];
    const chains = snapshotChains(rows);
    assert.deepEqual(chains.map((c) => [c.snapshot.id, c.depth]), [['a', 0], ['b', 1], ['c1', 2], ['c2', 2], ['orphan', 0], ['x', 0], ['y', 1]]);
    assert.equal(chains.find((c) => c.snapshot.id === 'orphan')?.missingParent, true);
    assert.equal(chains.find((c) => c.snapshot.id === 'b')?.children, 2);
    assert.equal(chains.length, rows.length, 'every snapshot listed once');
  });

  it('follows a migration job from its events: phases, transfer rate, then the record and its outcome', () => {
    let t = Date.parse('2026-01-01T00:00:00Z');
    const events: JobEvent[] = [
      { type: 'state', state: 'running', job: job({ state: 'running' }) },
      { type: 'phase', phase: 'preflight', state: 'start' },
      { type: 'phase', phase: 'preflight', state: 'end', ms: 40 },
      { type: 'phase', phase: 'transfer', state: 'start' },
      { type: 'transfer', bytes: 10 * 2 ** 20, totalBytes: 64 * 2 ** 20 },
      { type: 'transfer', bytes: 60 * 2 ** 20, totalBytes: 64 * 2 ** 20 },
    ];
    let live = emptyLive();
    for (const e of events) { live = applyEvent(live, e, t); t += 500; }
    assert.deepEqual(live.phases.map((p) => [p.name, p.state]), [['preflight', 'done'], ['transfer', 'running']]);
    assert.equal(live.phases[0]?.ms, 40);
    assert.equal(transferRate(live.transfer), 100 * 2 ** 20, '50 MiB in 0.5 s');
    assert.equal(live.log.filter((l) => l.startsWith('transfer ')).length, 1, 'the log keeps one transfer line');
    assert.equal(migrationOutcome(live.job).state, 'running');
    const done = job({
      state: 'succeeded', startedAt: '2026-01-01T00:00:00.000Z', endedAt: '2026-01-01T00:00:02.000Z',
      phases: [{ name: 'preflight', state: 'done', startedAt: '2026-01-01T00:00:00.000Z', ms: 40 }, { name: 'transfer', state: 'done', startedAt: '2026-01-01T00:00:00.100Z', ms: 600 }, { name: 'commit', state: 'done', startedAt: '2026-01-01T00:00:01.500Z', ms: 30 }],
      result: { ok: true, strategy: 'cold', chosen: { strategy: 'cold', because: 'asked for' }, downtimeMs: 900, totalMs: 2000, bytesMoved: 64 * 2 ** 20, wireBytes: 65 * 2 ** 20, destination: { host: 'h2', url: 'http://x', pid: 4242, name: 'mc' } },
    });
    live = applyEvent(live, { type: 'state', state: 'succeeded', job: done }, t);
    assert.equal(live.phases.length, 3, "the record's phases replace the page's");
    const out = migrationOutcome(live.job);
    assert.deepEqual([out.state, out.downtimeMs, out.destination?.host, out.destination?.pid], ['committed', 900, 'h2', 4242]);
    assert.match(out.text, /runs on h2 \(http:\/\/x\), pid 4242/);
    assert.deepEqual(out.strategy, { name: 'cold', because: 'asked for' });
    const tl = timeline(live.phases, t);
    assert.deepEqual(tl.map((p) => [p.name, p.startMs, p.endMs]), [['preflight', 0, 40], ['transfer', 100, 700], ['commit', 1500, 1530]]);
  });

  it('a failed migration reads as rolled back, with where the workload is; an uncertain one says so', () => {
    const failed = migrationOutcome(job({ state: 'failed', error: { code: 'ERR_MIGRATE_PEER', message: 'x', phase: 'transfer', workload: 'running on source' } }));
    assert.equal(failed.state, 'rolled back');
    assert.match(failed.text, /in transfer: the workload is running on source/);
    assert.equal(migrationOutcome(job({ state: 'failed', error: { code: 'ERR_MIGRATE_UNCERTAIN', message: 'no answer' } })).state, 'uncertain');
    assert.equal(migrationOutcome(job({ state: 'cancelled' })).state, 'cancelled');
  });

  it('frozen time from a checkpoint result; errors as the CLI shows them', () => {
    assert.equal(frozenMs(job({ kind: 'checkpoint', result: { stats: { frozen_time: 71_000 } } })), 71);
    assert.equal(frozenMs(job({ kind: 'checkpoint', result: {} })), null);
    assert.deepEqual(errorView({ code: 'ERR_UNAUTHORIZED', message: 'missing or wrong bearer token', hint: 'send it' }), { code: 'ERR_UNAUTHORIZED', message: 'missing or wrong bearer token', hint: 'send it' });
    assert.deepEqual(errorView(new Error('boom')), { code: 'ERR_INTERNAL', message: 'boom' });
  });
});

describe('dashboard charts', () => {
  const telemetry = {
    operation: 'checkpoint',
    phasesMs: { total: 300, resolve: 3, criu: 209, seal: 50 },
    samples: [0, 50, 100, 150].map((tMs, i) => ({ tMs, cpuBusyPct: i ? 40 + i : undefined, memUsedBytes: 2 ** 30 + i * 2 ** 20, rssBytes: i ? 16 * 2 ** 20 : undefined })),
  };

  /** Compiles with vega-lite and draws with vega to SVG (as the page does); returns the SVG. */
  async function draw(spec: Spec | undefined): Promise<string> {
    assert.ok(spec, 'a spec');
    const [vega, { compile }] = await Promise.all([import('vega'), import('vega-lite')]);
    const view = new vega.View(vega.parse(compile(spec as never).spec), { renderer: 'none' });
    try {
      return await view.toSVG();
    } finally {
      view.finalize();
    }
  }

  it('each chart compiles and draws marks, with a description for screen readers', async () => {
    for (const spec of [cpuSpec(telemetry), memorySpec(telemetry), phasesSpec(telemetry), timelineSpec(timeline([
      { name: 'preflight', state: 'done', startedAt: '2026-01-01T00:00:00.000Z', ms: 40 },
      { name: 'transfer', state: 'running', startedAt: '2026-01-01T00:00:00.100Z' },
    ], Date.parse('2026-01-01T00:00:01.000Z')))]) {
      const svg = await draw(spec);
      assert.match(svg, /<svg/);
      assert.match(svg, /role-mark/);
      assert.equal(typeof spec?.['description'], 'string');
      assert.match(svg, /aria-label="[^"]+"/);
    }
    const phases = await draw(phasesSpec(telemetry));
    assert.match(phases, /criu/);
    assert.doesNotMatch(phases, />total</, 'the total is not a phase');
  });

  it('no chart without data', () => {
    assert.equal(cpuSpec({ samples: [] }), undefined);
    assert.equal(memorySpec({}), undefined);
    assert.equal(phasesSpec({ phasesMs: { total: 5 } }), undefined);
    assert.equal(timelineSpec([]), undefined);
  });
});
