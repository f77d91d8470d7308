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

/**
 * Marks FerryErrors by a registered symbol, so that `instanceof FerryError` holds across copies
 * of this module: the CLI bundle has its own copy, and the modules it imports on demand from
 * tsc's output (`bench`) have theirs.
 */
const BRAND = Symbol.for('ferry.FerryError');

export class FerryError extends Error {
  static override [Symbol.hasInstance](x: unknown): boolean {
    // Subclasses keep ordinary instanceof; the base class recognises every copy's errors.
    if (this !== FerryError) return Function.prototype[Symbol.hasInstance].call(this, x);
    return typeof x === 'object' && x !== null && (x as Record<symbol, unknown>)[BRAND] === true;
  }

  readonly code: string;
  readonly hint: string | undefined;
  readonly detail: string | undefined;
  /** Errors raised while cleaning up after this one: attached, never lost. */
  readonly cleanupErrors: unknown[] = [];

  constructor(code: string, message: string, options: FerryErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FerryError';
    Object.defineProperty(this, BRAND, { value: true });
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
