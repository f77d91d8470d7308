import { runBench, writeRun } from '../../bench/harness.js';
import { formatRunText, renderReport } from '../../bench/report.js';
import type { CommandContext } from '../command.js';
import { printJson } from '../output.js';

/** Runs experiments as one bench run: progress on stderr, the JSON and HTML report written, the summary (or --json) printed. */
export async function runExperiments(
  values: { quick?: boolean | undefined; dir?: string | undefined; out?: string | undefined }, ctx: CommandContext,
  experiments: Parameters<typeof runBench>[0]['experiments'],
): Promise<number> {
  const run = await runBench({
    quick: values.quick === true,
    experiments,
    ...(values.dir !== undefined ? { tmpfsBase: values.dir } : {}),
    progress: (line) => process.stderr.write(`bench: ${line}\n`),
  });
  const paths = await writeRun(run, values.out ?? 'bench-results', await renderReport(run));
  process.stderr.write(`bench: wrote ${paths.json}\nbench: wrote ${paths.html}\n`);
  if (ctx.json) printJson({ ...run, files: paths });
  else process.stdout.write(formatRunText(run) + `\nreport: ${paths.html}\n`);
  return 0;
}
