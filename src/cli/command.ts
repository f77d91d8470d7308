import { parseArgs, type ParseArgsConfig } from 'node:util';
import { FerryError } from '../util/errors.js';
import type { OutputMode } from './output.js';

/** Where a command writes: the process's stdout/stderr, or a test's buffers. */
export interface Output {
  stdout(text: string): void;
  stderr(text: string): void;
}

export const processOutput: Output = {
  stdout: (t) => { process.stdout.write(t); },
  stderr: (t) => { process.stderr.write(t); },
};

export interface CommandContext extends OutputMode {
  /** The snapshot store directory (--store, $FERRY_STORE, or /var/lib/ferry). */
  store: string;
  /** The output sink (commands never write to process.stdout themselves). */
  out: Output;
  /** --agent URL (or $FERRY_AGENT): run the command through that agent, with this token. */
  agent?: { url: string; token?: string };
}

/** Prints a value as JSON on the sink's stdout. */
export function emitJson(out: Output, value: unknown): void {
  out.stdout(JSON.stringify(value, null, 2) + '\n');
}

/** One CLI verb, one file: `run` returns the exit code. */
export interface Command {
  summary: string;
  usage: string;
  run(argv: string[], ctx: CommandContext): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig['options']>;
/** What `parse` returns (named here: @types/node does not export its own name for it, which declarations need). */
type Parsed<O extends Options> = ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: boolean; strict: true }>>;

/** parseArgs with errors that say what was wrong and how to ask for help. */
export function parse<O extends Options>(argv: string[], options: O, command: string, allowPositionals = true): Parsed<O> {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (err) {
    throw new FerryError('ERR_USAGE', `${command}: ${(err as Error).message.replace(/\. To specify a positional.*$/s, '')}`, {
      hint: `see \`ferry ${command} --help\``,
    });
  }
}

/** Parses a positive integer option or positional, with a clear error. */
export function positiveInt(value: string | undefined, what: string, command: string): number {
  const n = value === undefined ? NaN : Number(value);
  if (!Number.isInteger(n) || n <= 0) {
    throw new FerryError('ERR_USAGE', `${command}: ${what} must be a positive integer, got '${value ?? ''}'`, {
      hint: `see \`ferry ${command} --help\``,
    });
  }
  return n;
}
