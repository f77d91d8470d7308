import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { errorJson, FerryError, httpStatusOf, type ErrorCode } from '../util/errors.js';

/**
 * Every error answer of the agent: `{ "error": { code, message, hint?, ... } }` with the code's
 * HTTP status from the catalog. Anything that is not a FerryError is ERR_INTERNAL (500) with its
 * message only: never a stack.
 */
export function errorResponse(c: Context, err: unknown): Response {
  return c.json({ error: errorJson(err) }, httpStatusOf(err) as ContentfulStatusCode);
}

export function fail(code: ErrorCode, message: string, hint?: string): never {
  throw new FerryError(code, message, hint ? { hint } : {});
}
