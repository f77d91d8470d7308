import { runDoctor, type MemoryTierFacts } from '../../doctor/doctor.js';
import { memoryTierUsage, readHostMemory, resolveReserve } from '../../store/budget.js';
import { memoryBaseUsage, orphanMemoryDirs } from '../../store/retention.js';
import { Store } from '../../store/store.js';
import type { DoctorCheck } from '../../doctor/report.js';
import { parse, type Command } from '../command.js';
import { printJson, style } from '../output.js';

const MARK: Record<DoctorCheck['status'], string> = { ok: style.green('ok  '), warn: style.yellow('warn'), fail: style.red('FAIL') };

export const command: Command = {
  summary: 'Check this host for checkpoint/restore: CRIU and its version, `criu check`, the kernel features ferry\n' +
    'uses, container runtimes, cgroups, capabilities, the store; then checkpoint and restore a test process.\n' +
    'Exits 0 when checkpoint/restore of a process works here (with --quick: when no check failed).',
  usage: 'ferry doctor [--quick] [--json]\n\n  --quick   skip the checkpoint/restore of a test process (then it only says what it checked)',
  async run(argv, ctx) {
    const { values } = parse(argv, { quick: { type: 'boolean' } }, 'doctor', false);
    const report = await runDoctor({ storeDir: ctx.store, skipSelfTest: values.quick === true, ...await memoryTierFacts(ctx.store) });
    if (ctx.json) {
      printJson(report);
    } else {
      const w = Math.max(...report.checks.map((c) => c.title.length));
      const lines = [`ferry doctor — ${report.host.hostname}, Linux ${report.host.kernel} ${report.host.arch}`];
      for (const c of report.checks) {
        lines.push(`  ${MARK[c.status]}  ${c.title.padEnd(w)}  ${c.value}`);
        if (c.consequence) lines.push(`        ${' '.repeat(w)}  ${style.dim('→ ' + c.consequence)}`);
        if (c.remedy) lines.push(`        ${' '.repeat(w)}  ${style.dim('fix: ' + c.remedy)}`);
      }
      lines.push(!report.ok
        ? style.red('checkpoint/restore does NOT work on this host (see FAIL above)')
        : report.selfTest === 'passed'
          ? style.green('checkpoint/restore works on this host (a test process was checkpointed and restored)')
          : style.yellow('no check failed; checkpoint/restore itself was NOT tried (--quick skips the self-test: run `ferry doctor` to prove it)'));
      process.stdout.write(lines.join('\n') + '\n');
    }
    return report.ok ? 0 : 1;
  },
};

/** The store's memory tier, for the doctor; nothing when the store cannot be read (the doctor says why). */
async function memoryTierFacts(root: string): Promise<{ memoryTier?: MemoryTierFacts }> {
  try {
    const store = new Store({ root });
    const [usedBytes, base, orphans, host] = await Promise.all([memoryTierUsage(store), memoryBaseUsage(store), orphanMemoryDirs(store), readHostMemory(store)]);
    return {
      memoryTier: {
        dir: store.existingMemoryDir() ?? null, usedBytes, base: base.base, allStoresBytes: base.bytes,
        orphans: orphans.length, orphanBytes: orphans.reduce((a, o) => a + o.bytes, 0),
        hostAvailableBytes: host?.availableBytes ?? null, reserveBytes: host ? await resolveReserve(root, host.totalBytes) : null,
      },
    };
  } catch {
    return {};
  }
}
