/**
 * A dumped task's command line and environment, recovered from its memory as the kernel
 * shows them in /proc/PID/cmdline and /proc/PID/environ: NUL-terminated strings between
 * mm_arg_start and mm_arg_end (mm_env_start and mm_env_end), read through the pagemap.
 */
import { readTaskMemory } from './task-memory.js';
import type { Mm } from './mm.js';
import type { Pagemap } from './pagemap.js';

export type EnvironmentDetail = 'names' | 'full' | 'none';

export interface RecoveredCommandLine {
  argv: string[];
  source: 'memory' | 'comm';
  /** Why it fell back to comm. */
  note?: string;
  /** Absent when not asked for or not readable. */
  environment?: string[];
}

/** NUL-terminated strings; a last string without its NUL still counts, trailing padding does not. */
export function splitNulStrings(bytes: Uint8Array): string[] {
  const text = Buffer.from(bytes).toString('utf8');
  const parts = text.split('\0');
  if (parts[parts.length - 1] === '') parts.pop();
  return parts;
}

/**
 * argv (and the environment at the requested detail) of the task with this mm and pagemap;
 * `[comm]` with a note when the memory is not in the images.
 */
export async function recoverCommandLine(
  dir: string, mm: Mm | undefined, pagemap: Pagemap | undefined, comm: string, environment: EnvironmentDetail,
): Promise<RecoveredCommandLine> {
  const fallback = (note: string): RecoveredCommandLine => ({ argv: [comm], source: 'comm', note });
  if (mm === undefined) return fallback('no mm image (the task has no memory, e.g. a zombie)');
  if (pagemap === undefined) return fallback('no pagemap image');
  if (mm.arg_end <= mm.arg_start) return fallback('the task has an empty argument area (a kernel thread?)');
  const args = await readTaskMemory(dir, pagemap, mm.arg_start, mm.arg_end);
  if (!args.ok) return fallback(`arguments not readable: ${args.reason}`);
  const argv = splitNulStrings(args.bytes);
  if (argv.length === 0) return fallback('the argument area holds no strings');
  const out: RecoveredCommandLine = { argv, source: 'memory' };
  if (environment !== 'none') {
    const env = await readTaskMemory(dir, pagemap, mm.env_start, mm.env_end);
    if (env.ok) {
      const vars = splitNulStrings(env.bytes).filter((v) => v !== '');
      out.environment = environment === 'full' ? vars : vars.map((v) => v.split('=', 1)[0] ?? v);
    }
  }
  return out;
}
