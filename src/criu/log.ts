import { readFile } from 'node:fs/promises';

/**
 * Reading CRIU's own log after a run: the first real error, a numbered excerpt around it,
 * and the tail. CRIU logs lines like
 *   (00.048770) Error (compel/src/lib/infect.c:417): Unable to detach from 999999: No such process
 */

/** Error lines CRIU logs on every run on some machines; they are not the cause of anything. */
const HARMLESS_ERRORS: readonly RegExp[] = [
  // Without CAP_SYS_RESOURCE CRIU cannot raise its own RLIMIT_NOFILE; it carries on.
  /rlimit: Can't setup RLIMIT_NOFILE for self/,
];

const ERROR_LINE = /^\(\s*[\d.]+\)\s+(?:\d+:\s+)?Error\s+\(([^)]*)\):\s?(.*)$/;

export interface LogLine {
  /** 1-based line number in the log file. */
  n: number;
  text: string;
}

export interface CriuLogSummary {
  /** The first `Error (...)` line that is not a known harmless one, without timestamp. */
  firstError: string | undefined;
  /** Source location CRIU named in that line, e.g. `criu/cr-dump.c:1975`. */
  firstErrorAt: string | undefined;
  /** Lines around the first error (a few before, a few after), numbered. */
  excerpt: LogLine[];
  /** The last lines of the log, numbered. */
  tail: LogLine[];
  /** Number of lines in the log. */
  lineCount: number;
}

export interface SummarizeOptions {
  before?: number;
  after?: number;
  tailLines?: number;
}

export function isHarmlessError(message: string): boolean {
  return HARMLESS_ERRORS.some((re) => re.test(message));
}

/** Parses a CRIU log's text into the parts an error report needs. */
export function summarizeLog(text: string, options: SummarizeOptions = {}): CriuLogSummary {
  const before = options.before ?? 8;
  const after = options.after ?? 4;
  const tailLines = options.tailLines ?? 6;
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();

  let firstIdx = -1;
  let firstError: string | undefined;
  let firstErrorAt: string | undefined;
  for (let i = 0; i < lines.length; i++) {
    const m = ERROR_LINE.exec(lines[i] ?? '');
    if (!m) continue;
    const msg = (m[2] ?? '').trim();
    if (isHarmlessError(msg)) continue;
    firstIdx = i;
    firstError = msg;
    firstErrorAt = m[1];
    break;
  }
  const numbered = (from: number, to: number): LogLine[] =>
    lines.slice(Math.max(0, from), Math.min(lines.length, to)).map((t, k) => ({ n: Math.max(0, from) + k + 1, text: t }));
  const excerpt = firstIdx >= 0 ? numbered(firstIdx - before, firstIdx + after + 1) : [];
  const tailStart = Math.max(lines.length - tailLines, firstIdx >= 0 ? firstIdx + after + 1 : 0);
  return { firstError, firstErrorAt, excerpt, tail: numbered(tailStart, lines.length), lineCount: lines.length };
}

/** Reads and summarizes a log file; a missing or unreadable log gives an empty summary. */
export async function summarizeLogFile(path: string, options?: SummarizeOptions): Promise<CriuLogSummary> {
  let text = '';
  try {
    text = await readFile(path, 'utf8');
  } catch {
    // The caller reports the log path; a missing log is itself a clue (CRIU died early).
  }
  return summarizeLog(text, options);
}

/** Renders numbered lines the way the CLI shows them. */
export function formatLogLines(lines: readonly LogLine[]): string {
  const width = String(lines.at(-1)?.n ?? 0).length;
  return lines.map((l) => `${String(l.n).padStart(width)} | ${l.text}`).join('\n');
}

/** The one rendering of "CRIU log around the first error" that every CRIU failure shows. */
export function excerptBlock(log: Pick<CriuLogSummary, 'excerpt' | 'firstErrorAt'>): string | undefined {
  if (!log.excerpt.length) return undefined;
  return `CRIU log around the first error${log.firstErrorAt ? ` (${log.firstErrorAt})` : ''}:\n${formatLogLines(log.excerpt)}`;
}
