import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import diagnostics_channel from 'node:diagnostics_channel';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { telemetryChannels, type TelemetryEndEvent, type TelemetryPhaseEvent } from './channels.js';
import { OperationRecorder } from './operation.js';
import { cpuBusyPercent, parseMeminfo, parseProcStat, treeRss } from './proc.js';
import { HostSampler, summarizeSamples } from './sampler.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('/proc parsers', () => {
  it('reads busy and total ticks from /proc/stat, idle+iowait being idle, guest left out', () => {
    const t = parseProcStat('cpu  100 5 50 800 20 3 2 0 7 0\ncpu0 1 2 3 4\n');
    assert.deepEqual(t, { busy: 160, total: 980 });
    assert.equal(cpuBusyPercent({ busy: 100, total: 1000 }, { busy: 150, total: 1100 }), 50);
  });
  it('rejects what is not /proc/stat, and a zero interval', () => {
    assert.equal(parseProcStat('intr 1 2 3\n'), undefined);
    assert.equal(parseProcStat('cpu  a b c d\n'), undefined);
    assert.equal(cpuBusyPercent({ busy: 1, total: 10 }, { busy: 1, total: 10 }), undefined);
  });
  it('reads used memory as MemTotal − MemAvailable', () => {
    const m = parseMeminfo('MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    400 kB\n');
    assert.deepEqual(m, { totalBytes: 1024000, availableBytes: 409600, usedBytes: 614400 });
    assert.equal(parseMeminfo('MemTotal: 1000 kB\n'), undefined, 'no MemAvailable, no reading');
  });
});

describe('HostSampler', () => {
  it('refuses a non-positive interval', () => {
    assert.throws(() => new HostSampler({ intervalMs: 0 }), RangeError);
  });

  it('samples CPU, memory and a real tree\'s RSS at its interval, and sees the tree go', async () => {
    // A child that holds ~64 MiB resident and keeps one core busy.
    const child = spawn(process.execPath, ['-e', 'const b = Buffer.alloc(64 << 20, 1); setInterval(() => {}, 1000); for (const e = Date.now() + 400; Date.now() < e;);'], { stdio: 'ignore' });
    await once(child, 'spawn');
    try {
      await sleep(150);
      const s = new HostSampler({ intervalMs: 20, rootPid: child.pid! }).start();
      await sleep(300);
      const samples = s.stop();
      assert.equal(s.running, false);
      assert.ok(samples.length >= 8, `${samples.length} samples in 300 ms at 20 ms`);
      assert.equal(samples[0]!.cpuBusyPct, undefined, 'the first sample has no CPU delta');
      const sum = summarizeSamples(samples, 20);
      assert.ok(sum.cpuBusyPct && sum.cpuBusyPct.max > 10, `busy max ${sum.cpuBusyPct?.max}`);
      assert.ok(sum.memUsedBytes && sum.memUsedBytes.min > 0);
      assert.ok(sum.rssBytes && sum.rssBytes.max > 60 * 2 ** 20, `rss max ${sum.rssBytes?.max}`);
      assert.deepEqual(s.stop(), samples, 'stop twice is harmless');
    } finally {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    assert.equal(treeRss(child.pid!), undefined, 'a gone tree has no RSS');
  });
});

describe('OperationRecorder', () => {
  it('publishes phases and the final record on ferry:telemetry:*', async () => {
    const phases: TelemetryPhaseEvent[] = [];
    const ends: TelemetryEndEvent[] = [];
    const onPhase = (m: unknown): void => { phases.push(m as TelemetryPhaseEvent); };
    const onEnd = (m: unknown): void => { ends.push(m as TelemetryEndEvent); };
    diagnostics_channel.subscribe('ferry:telemetry:phase', onPhase);
    diagnostics_channel.subscribe('ferry:telemetry:end', onEnd);
    try {
      const rec = new OperationRecorder('checkpoint', { rootPid: process.pid, intervalMs: 10 });
      await rec.time('criu', () => sleep(60));
      const t = rec.finish({ ok: true, criu: { frozen_time: 1234 }, phasesMs: { checksum: 3 } });
      assert.equal(rec.finish({ ok: false }), t, 'finish is idempotent');
      assert.ok(t.phasesMs['criu']! >= 55, `criu ${t.phasesMs['criu']}`);
      assert.equal(t.phasesMs['checksum'], 3);
      assert.ok(t.phasesMs['total']! >= t.phasesMs['criu']!);
      assert.deepEqual(t.criu, { frozen_time: 1234 });
      assert.ok(t.samples.length >= 3);
      assert.ok((t.workload.rssBytes?.max ?? 0) > 0, 'watches our own RSS');
      assert.equal(t.host.cpus > 0, true);
      assert.deepEqual(phases.map((p) => p.phase), ['criu']);
      assert.equal(ends.length, 1);
      assert.equal(ends[0]!.telemetry, t);
      assert.equal(telemetryChannels.end.name, 'ferry:telemetry:end');
    } finally {
      diagnostics_channel.unsubscribe('ferry:telemetry:phase', onPhase);
      diagnostics_channel.unsubscribe('ferry:telemetry:end', onEnd);
    }
  });
});
