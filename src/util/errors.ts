/**
 * One base class for every error ferry raises. Callers match on `code` (stable), never on
 * the message. `hint` says what to do about it. Only the boundaries (CLI exit codes, agent HTTP
 * status) translate errors into something else.
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
  readonly code: string;
  readonly hint: string | undefined;
  readonly detail: string | undefined;
  /** Errors raised while cleaning up after this one: attached, never lost. */
  readonly cleanupErrors: unknown[] = [];

  constructor(code: string, message: string, options: FerryErrorOptions = {}) {
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
}

/** True when `err` is a FerryError, optionally with the given code. */
export function isFerryError(err: unknown, code?: string): err is FerryError {
  return err instanceof FerryError && (code === undefined || err.code === code);
}

/** Node's system errors carry `code` (e.g. 'ENOENT') and `errno`. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}
