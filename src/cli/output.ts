import { errorJson, exitCodeOf, FerryError } from '../util/errors.js';

/** How a command should present its result: the global flags every command honours. */
export interface OutputMode {
  json: boolean;
  debug: boolean;
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** Colour only on a terminal, and never when NO_COLOR is set. */
const useColor = process.stderr.isTTY && !process.env['NO_COLOR'];
export const style = {
  bold: (s: string) => (useColor ? `\x1b[1m${s}\x1b[0m` : s),
  red: (s: string) => (useColor ? `\x1b[31m${s}\x1b[0m` : s),
  yellow: (s: string) => (useColor ? `\x1b[33m${s}\x1b[0m` : s),
  green: (s: string) => (useColor ? `\x1b[32m${s}\x1b[0m` : s),
  dim: (s: string) => (useColor ? `\x1b[2m${s}\x1b[0m` : s),
};

/**
 * The CLI's error boundary: a one-line cause, the detail under it (e.g. CRIU's log excerpt),
 * the hint, and never a stack trace unless --debug. Returns the exit code: the error code's
 * (util/error-codes.ts), so usage errors exit 2 and interruptions 128 + the signal.
 */
export function reportError(err: unknown, mode: OutputMode): number {
  if (mode.json) {
    printJson({ ok: false, error: errorJson(err) });
  }
  const out: string[] = [];
  if (err instanceof FerryError) {
    out.push(`${style.red('ferry: error:')} ${err.message}`);
    if (err.detail) out.push(err.detail.split('\n').map((l) => `  ${l}`).join('\n'));
    if (err.hint) out.push(`${style.yellow('hint:')} ${err.hint}`);
    for (const c of err.cleanupErrors) out.push(`also, while cleaning up: ${c instanceof Error ? c.message : String(c)}`);
  } else {
    out.push(`${style.red('ferry: internal error:')} ${err instanceof Error ? err.message : String(err)}`);
    if (!mode.debug) out.push(style.dim('(this is a bug in ferry; run again with --debug for the stack trace)'));
  }
  if (mode.debug && err instanceof Error && err.stack) out.push(style.dim(err.stack));
  process.stderr.write(out.join('\n') + '\n');
  return exitCodeOf(err);
}
