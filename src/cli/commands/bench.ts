import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError } from '../../util/errors.js';
import { parse, positiveInt, type Command } from '../command.js';
import { printJson } from '../output.js';
import { defaultOptions, formatReport, runOverhead } from '../../bench/overhead.js';
import { EXPERIMENTS, experiment, type ExperimentName } from '../../bench/experiments.js';
import { readRun, writeRun } from '../../bench/harness.js';
import { renderReport } from '../../bench/report.js';
import { benchMigrate } from './bench-migrate.js';
import { runExperiments } from './bench-run.js';

const USAGE = 'ferry bench memory|concurrency|warmstart|dedup|overhead|all [--quick] [--out DIR] [--json]\n' +
  '       ferry bench migrate [--strategies LIST] [--sizes LIST] [--rate RATE] [--runs K] [--workload memcheck|redis] [--quick] [--out DIR] [--json]\n' +
  '       ferry bench report RUN.json [--out DIR]   (re-render a run\'s HTML report)';

export const command: Command = {
  summary: 'Benchmarks that reproduce the seed experiments, measured in one run with the arms interleaved:\n' +
    '  memory       checkpoint/restore time, image size, host CPU/RAM vs memory size (memory tier, disk tier, raw criu)\n' +
    '  concurrency  N = 1, 2, 4, 8 checkpoints all at once vs one after another vs through the scheduler: makespan, frozen time, latency\n' +
    '  warmstart    cold boot until ready vs restore of a snapshot taken at readiness (redis, a JVM)\n' +
    '  dedup        page dedup: checkpoint cost vs plain, bytes stored for N snapshots, restore time by chain depth vs flat\n' +
    '  overhead     ferry (engine, CLI) vs the raw criu CLI: ratios and added ms\n' +
    '  all          every one of them, into one JSON file and one HTML report\n' +
    '  migrate      (not in all) migration on a testbed of 2 hosts at 1 Gbit/s: each strategy (default: every one\n' +
    '               built, e.g. cold,stream) vs criu dump → tar over TCP → criu restore, memcheck and redis at each\n' +
    '               size (MiB, or 256M,1G,4G; default 1G, --quick 64M), K rounds (default 3, --quick 1): downtime,\n' +
    '               strategy / raw round by round against its target, the steps side by side\n' +
    'Writes <out>/bench-*.json (every raw sample) and .html (charts) — out defaults to ./bench-results;\n' +
    'progress on stderr. --quick is a smoke test (small sizes, one repetition). No thresholds.',
  usage: USAGE + '\n       ferry bench overhead [--quick] [--json] [--out DIR] [--mib N] [--reps N]',
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, {
      quick: { type: 'boolean' },
      out: { type: 'string' },
      mib: { type: 'string' },
      reps: { type: 'string' },
      'tiny-reps': { type: 'string' },
      'cli-reps': { type: 'string' },
      'warm-mib': { type: 'string' },
      dir: { type: 'string' },
      strategy: { type: 'string' },
      strategies: { type: 'string' },
      sizes: { type: 'string' },
      rate: { type: 'string' },
      runs: { type: 'string' },
      workload: { type: 'string', multiple: true },
    }, 'bench');
    const [what, ...extra] = positionals;
    if (what === 'report') {
      if (extra.length !== 1) throw new FerryError('ERR_USAGE', 'bench report: give exactly one RUN.json', { hint: USAGE });
      const run = await readRun(extra[0]!);
      const paths = await writeRun(run, values.out ?? 'bench-results', await renderReport(run));
      if (ctx.json) printJson(paths);
      else process.stdout.write(`${paths.html}\n`);
      return 0;
    }
    if (what === 'migrate') {
      if (extra.length) throw new FerryError('ERR_USAGE', `bench migrate: unexpected '${extra.join(' ')}'`, { hint: USAGE });
      return benchMigrate(values, ctx);
    }
    if (what !== 'overhead') {
      const names: ExperimentName[] = what === 'all' ? [...EXPERIMENTS] : EXPERIMENTS.filter((e) => e === what);
      if (names.length === 0 || extra.length) {
        throw new FerryError('ERR_USAGE', `bench: unknown benchmark '${[what ?? '', ...extra].join(' ').trim()}'`, { hint: USAGE });
      }
      return runExperiments(values, ctx, names.map((name) => ({ name, run: experiment(name) })));
    }
    const o = defaultOptions(values.quick === true);
    if (values.mib !== undefined) o.mib = positiveInt(values.mib, '--mib', 'bench');
    if (values.reps !== undefined) o.reps = positiveInt(values.reps, '--reps', 'bench');
    if (values['tiny-reps'] !== undefined) o.tinyReps = positiveInt(values['tiny-reps'], '--tiny-reps', 'bench');
    if (values['cli-reps'] !== undefined) o.cliReps = positiveInt(values['cli-reps'], '--cli-reps', 'bench');
    if (values['warm-mib'] !== undefined) o.warmMiB = Number(values['warm-mib']) || 0;
    if (values.dir !== undefined) o.baseDir = values.dir;
    // Progress goes to stderr, always: stdout stays clean for --json.
    o.progress = (line) => process.stderr.write(`bench: ${line}\n`);
    const report = await runOverhead(o);
    if (values.out !== undefined) {
      await mkdir(values.out, { recursive: true });
      const file = join(values.out, `overhead-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
      await writeFile(file, JSON.stringify(report, null, 2) + '\n');
      process.stderr.write(`bench: wrote ${file}\n`);
    }
    if (ctx.json) printJson(report);
    else process.stdout.write(formatReport(report));
    return 0;
  },
};
