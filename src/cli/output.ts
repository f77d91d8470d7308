import { FerryError } from '../util/errors.js';

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

/** Error as JSON (for --json callers): stable code, message, hint, detail. */
export function errorJson(err: unknown): Record<string, unknown> {
  if (err instanceof FerryError) {
    const extra: Record<string, unknown> = {};
    for (const k of ['request', 'errno', 'firstError', 'logPath', 'durationMs', 'exitCode', 'signal'] as const) {
      if (k in err && (err as unknown as Record<string, unknown>)[k] !== undefined) extra[k] = (err as unknown as Record<string, unknown>)[k];
    }
    return { code: err.code, message: err.message, ...(err.hint ? { hint: err.hint } : {}), ...(err.detail ? { detail: err.detail } : {}), ...extra };
  }
  return { code: 'ERR_INTERNAL', message: err instanceof Error ? err.message : String(err) };
}

/**
 * The CLI's error boundary: a one-line cause, the detail under it (e.g. CRIU's log excerpt),
 * the hint, and never a stack trace unless --debug. Returns the exit code.
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
  if (err instanceof FerryError && err.code === 'ERR_INTERRUPTED') {
    const sig = (err as FerryError & { signal?: string }).signal;
    return sig === 'SIGTERM' ? 143 : sig === 'SIGHUP' ? 129 : 130;
  }
  return 1;
}
