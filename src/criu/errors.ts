import { constants } from 'node:os';
import { FerryError, type FerryErrorOptions } from '../util/errors.js';
import { excerptBlock, formatLogLines, isHarmlessError, type CriuLogSummary, type LogLine } from './log.js';

/** The name of an errno value, e.g. 3 → 'ESRCH'. */
export function errnoName(errno: number | undefined): string | undefined {
  if (errno === undefined || errno === 0) return undefined;
  for (const [name, value] of Object.entries(constants.errno)) if (value === errno) return name;
  return `errno ${errno}`;
}

/** What CRIU's errno values mean for the user, where CRIU documents a meaning. */
const ERRNO_MEANING: Readonly<Record<string, string>> = {
  ESRCH: 'the target process does not exist or vanished',
  EEXIST: 'a process with the same pid already exists (pid collision on restore)',
  EBADRQC: 'CRIU rejected the options of the request',
  ENOTSUP: 'the CPU of this host does not match the one in the snapshot',
  EPERM: 'CRIU lacks a privilege it needs',
  EACCES: 'CRIU was denied access to a file it needs',
};

/**
 * The conversation with CRIU broke: CRIU could not be started, died without answering, or
 * sent something that is not a valid response. The operation's outcome is unknown.
 */
export class CriuTransportError extends FerryError {
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly stderr: string;
  readonly durationMs: number;

  constructor(
    message: string,
    fields: { exitCode?: number | null; signal?: string | null; stderr?: string; durationMs?: number },
    options: FerryErrorOptions = {},
  ) {
    const stderr = fields.stderr ?? '';
    const detail = [options.detail, stderr.trim() ? `CRIU's stderr:\n${stderr.trimEnd()}` : undefined]
      .filter(Boolean).join('\n');
    super('ERR_CRIU_TRANSPORT', message, { ...options, ...(detail ? { detail } : {}) });
    this.name = 'CriuTransportError';
    this.exitCode = fields.exitCode ?? null;
    this.signal = fields.signal ?? null;
    this.stderr = stderr;
    this.durationMs = fields.durationMs ?? 0;
  }

  override jsonFields(): Record<string, unknown> {
    return { exitCode: this.exitCode, signal: this.signal, durationMs: this.durationMs };
  }
}

export interface CriuOperationErrorFields {
  /** The request type, e.g. 'DUMP'. */
  request: string;
  /** Options of the request, as sent (after mapping), for the record. */
  requestOptions?: Record<string, unknown> | undefined;
  /** errno reported by CRIU (`cr_errno`), by name. */
  errno: string | undefined;
  /** CRIU's own first error message (`cr_errmsg`); may be a harmless one, see `firstError`. */
  criuMessage: string | undefined;
  /** The first real `Error` line from the log. */
  firstError: string | undefined;
  firstErrorAt: string | undefined;
  excerpt: LogLine[];
  tail: LogLine[];
  /** Absolute path of this run's CRIU log. */
  logPath: string | undefined;
  durationMs: number;
}

/** CRIU answered, and the answer was `success: false`. */
export class CriuOperationError extends FerryError implements CriuOperationErrorFields {
  readonly request: string;
  readonly requestOptions: Record<string, unknown> | undefined;
  readonly errno: string | undefined;
  readonly criuMessage: string | undefined;
  readonly firstError: string | undefined;
  readonly firstErrorAt: string | undefined;
  readonly excerpt: LogLine[];
  readonly tail: LogLine[];
  readonly logPath: string | undefined;
  readonly durationMs: number;

  constructor(fields: CriuOperationErrorFields, options: FerryErrorOptions = {}) {
    const what = fields.request.toLowerCase().replace(/_/g, '-');
    const meaning = fields.errno ? ERRNO_MEANING[fields.errno] : undefined;
    const criuOwn = fields.criuMessage && !isHarmlessError(fields.criuMessage) ? fields.criuMessage : undefined;
    const cause = fields.firstError ?? criuOwn ?? 'CRIU gave no reason; see its log';
    const errnoPart = fields.errno ? ` [${fields.errno}${meaning ? `: ${meaning}` : ''}]` : '';
    const message = `criu ${what} failed: ${cause}${errnoPart}`;
    const parts: string[] = [];
    const excerpt = excerptBlock(fields);
    if (excerpt) parts.push(excerpt);
    if (fields.tail.length) parts.push(`CRIU log tail:\n${formatLogLines(fields.tail)}`);
    if (fields.logPath) parts.push(`full log: ${fields.logPath}`);
    const detail = [options.detail, ...parts].filter(Boolean).join('\n');
    super('ERR_CRIU_OPERATION', message, { ...options, ...(detail ? { detail } : {}) });
    this.name = 'CriuOperationError';
    this.request = fields.request;
    this.requestOptions = fields.requestOptions;
    this.errno = fields.errno;
    this.criuMessage = fields.criuMessage;
    this.firstError = fields.firstError;
    this.firstErrorAt = fields.firstErrorAt;
    this.excerpt = fields.excerpt;
    this.tail = fields.tail;
    this.logPath = fields.logPath;
    this.durationMs = fields.durationMs;
  }

  override jsonFields(): Record<string, unknown> {
    return { request: this.request, errno: this.errno, firstError: this.firstError, logPath: this.logPath, durationMs: this.durationMs };
  }

  /** Builds the error from CRIU's response and a summary of its log. */
  static from(
    base: Omit<CriuOperationErrorFields, 'firstError' | 'firstErrorAt' | 'excerpt' | 'tail'>,
    log: CriuLogSummary,
    options: FerryErrorOptions = {},
  ): CriuOperationError {
    return new CriuOperationError(
      { ...base, firstError: log.firstError, firstErrorAt: log.firstErrorAt, excerpt: log.excerpt, tail: log.tail },
      options,
    );
  }
}
