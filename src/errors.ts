/**
 * `ferry/errors`: the errors ferry raises and the catalog of their codes, without loading the
 * engine. Match on `code` (stable), never on the message; `hint` says what to do about it.
 */

/** Every error ferry raises: a stable `code`, a message saying what was wrong and why, a `hint`. */
export { FerryError, type FerryErrorOptions } from './util/errors.js';
/** True when a value is a FerryError (from any copy of ferry), optionally with the given code. */
export { isFerryError } from './util/errors.js';
/** An operation stopped by a signal (code ERR_INTERRUPTED); carries the signal. */
export { InterruptedError } from './util/errors.js';
/** CRIU answered "no" (code ERR_CRIU_OPERATION): errno, CRIU's first real error, a log excerpt and path. */
export { CriuOperationError } from './criu/errors.js';
/** The conversation with CRIU broke (code ERR_CRIU_TRANSPORT): exit code, signal, stderr. */
export { CriuTransportError } from './criu/errors.js';
/** Every error code, with its meaning, the CLI's exit status and the agent's HTTP status. */
export { ERROR_CODES, type ErrorCode, type ErrorCodeInfo } from './util/error-codes.js';
/** True when a string is one of ferry's error codes. */
export { isErrorCode } from './util/error-codes.js';
/** The code to report for any thrown value: its own for a FerryError, else ERR_INTERNAL. */
export { errorCodeOf } from './util/errors.js';
