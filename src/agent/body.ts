import type { Context } from 'hono';
import type { z } from 'zod';
import { FerryError } from '../util/errors.js';

/**
 * A request's JSON body, validated: not JSON, not UTF-8 or not matching the schema → ERR_USAGE
 * (400) naming the first problem. (The size limit is enforced before, by the bodyLimit middleware.)
 */
export async function jsonBody<S extends z.ZodType>(c: Context, schema: S): Promise<z.infer<S>> {
  const type = c.req.header('content-type') ?? '';
  if (!/^application\/json\s*(;|$)/i.test(type)) throw new FerryError('ERR_USAGE', `the body must be application/json, not '${type.slice(0, 80)}'`, { hint: 'send Content-Type: application/json' });
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(await c.req.arrayBuffer());
  } catch {
    throw new FerryError('ERR_USAGE', 'the body is not valid UTF-8', { hint: 'send a JSON object encoded as UTF-8' });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new FerryError('ERR_USAGE', `the body is not JSON: ${(err as Error).message.slice(0, 200)}`, { hint: 'send a JSON object' });
  }
  const r = schema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue?.path.length ? issue.path.join('.') : 'body';
    throw new FerryError('ERR_USAGE', `invalid request: ${where}: ${issue?.message ?? 'does not match the schema'}`, { hint: 'see GET /v1/openapi.json for the request schemas' });
  }
  return r.data;
}
