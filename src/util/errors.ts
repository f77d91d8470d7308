import { constants } from 'node:os';
import { ERROR_CODES, isErrorCode, type ErrorCode } from './error-codes.js';

export type { ErrorCode } from './error-codes.js';

/**
 * One base class for every error ferry raises. Callers match on `code` (stable, one of
 * ERROR_CODES), never on the message. `hint` says what to do about it, in words that hold for
 * every interface (CLI and agent alike). Only the boundaries (CLI exit codes, agent HTTP status)
 * translate errors into something else, through exitCodeOf / httpStatusOf / errorJson.
 */
export interface FerryErrorOptions {
  /** What the user can do about it, in one or two sentences. */
  hint?: string;
  /** The underlying error, kept as is. */
  cause?: unknown;
  /** Multi-line detail shown under the one-line message (e.g. a CRIU log excerpt). */
  detail?: string;
}

export class FerryError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly detail: string | undefined;
  /** Errors raised while cleaning up after this one: attached, never lost. */
  readonly cleanupErrors: unknown[] = [];

  constructor(code: ErrorCode, message: string, options: FerryErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FerryError';
    this.code = code;
    this.hint = options.hint;
    this.detail = options.detail;
  }

  /** Attach an error that happened while cleaning up after this one. */
  addCleanupError(err: unknown): this {
    this.cleanupErrors.push(err);
    return this;
  }

  /** The fields a subclass adds to the error's JSON form (see errorJson); none by default. */
  jsonFields(): Record<string, unknown> {
    return {};
  }
}

/**
 * An operation stopped because the process got a signal. It carries the signal, so the CLI
 * exits as a shell expects of a killed command (128 + the signal's number).
 */
export class InterruptedError extends FerryError {
  readonly signal: NodeJS.Signals;

  constructor(signal: NodeJS.Signals, message: string, options: FerryErrorOptions = {}) {
    super('ERR_INTERRUPTED', message, options);
    this.name = 'InterruptedError';
    this.signal = signal;
  }

  override jsonFields(): Record<string, unknown> {
    return { signal: this.signal };
  }
}

/** True when `err` is a FerryError, optionally with the given code. */
export function isFerryError(err: unknown, code?: ErrorCode): err is FerryError {
  return err instanceof FerryError && (code === undefined || err.code === code);
}

/** The code a boundary reports for any thrown value: ERR_INTERNAL for anything but a FerryError. */
export function errorCodeOf(err: unknown): ErrorCode {
  return err instanceof FerryError && isErrorCode(err.code) ? err.code : 'ERR_INTERNAL';
}

/** The CLI's exit status for an error (ERROR_CODES; 128 + the signal for an interruption). */
export function exitCodeOf(err: unknown): number {
  const code = errorCodeOf(err);
  if (code === 'ERR_INTERRUPTED') {
    // (Any ERR_INTERRUPTED with a signal name, not only an InterruptedError.)
    const signal = (err as { signal?: unknown }).signal;
    const n = typeof signal === 'string' ? (constants.signals as Readonly<Record<string, number | undefined>>)[signal] : undefined;
    if (n !== undefined) return 128 + n;
  }
  return ERROR_CODES[code].exit;
}

/** The agent's HTTP status for an error (ERROR_CODES). */
export function httpStatusOf(err: unknown): number {
  return ERROR_CODES[errorCodeOf(err)].http;
}

/**
 * An error as JSON, for --json callers and the agent: the stable code, the message, the hint and
 * detail when there are any, the subclass's own fields (e.g. CRIU's errno and log path), and the
 * cleanup errors. No exit or HTTP status: the boundary already reports them as the process's exit
 * status or the response's status line.
 */
export function errorJson(err: unknown): Record<string, unknown> {
  if (!(err instanceof FerryError)) return { code: errorCodeOf(err), message: err instanceof Error ? err.message : String(err) };
  return {
    code: err.code,
    message: err.message,
    ...(err.hint ? { hint: err.hint } : {}),
    ...(err.detail ? { detail: err.detail } : {}),
    ...err.jsonFields(),
    ...(err.cleanupErrors.length ? { cleanupErrors: err.cleanupErrors.map((c) => (c instanceof Error ? c.message : String(c))) } : {}),
  };
}

/** Node's system errors carry `code` (e.g. 'ENOENT') and `errno`. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}
