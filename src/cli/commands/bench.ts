import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError } from '../../util/errors.js';
import { parse, positiveInt, type Command } from '../command.js';
import { printJson } from '../output.js';
import { defaultOptions, formatReport, runOverhead } from '../../bench/overhead.js';

export const command: Command = {
  summary: 'Benchmarks. `overhead`: ferry (engine in-process, and the CLI) against the raw `criu` CLI on the\n' +
    'same workload into the same tmpfs; prints medians with min–max, ratios and added ms. No thresholds.',
  usage: 'ferry bench overhead [--quick] [--json] [--out DIR] [--mib N] [--reps N]',
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
    }, 'bench');
    const [what, ...extra] = positionals;
    if (what !== 'overhead' || extra.length) throw new FerryError('ERR_USAGE', `bench: unknown benchmark '${[what, ...extra].join(' ')}'`, { hint: 'ferry bench overhead [--quick] [--json] [--out DIR]' });
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
