import { isErrorCode } from './error-codes.js';
import { FerryError } from './errors.js';

/**
 * The HTTP conversation with a ferry agent, shared by the agent's typed client (agent/client.ts)
 * and a migration's calls to its peer (migrate/peer.ts): a JSON request with the bearer token,
 * and an error answer turned back into the FerryError the agent raised (its code, message, hint).
 */
export type FetchFn = (url: string, init: RequestInit) => Promise<Response>;

export async function sendToAgent(
  o: { base: string; token?: string | undefined; fetch?: FetchFn }, method: string, path: string, body: unknown, signal: AbortSignal | undefined,
): Promise<Response> {
  const headers: Record<string, string> = {};
  if (o.token !== undefined) headers['authorization'] = `Bearer ${o.token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  try {
    return await (o.fetch ?? fetch)(o.base + path, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}), ...(signal ? { signal } : {}) });
  } catch (err) {
    const c = (err as { cause?: { code?: string; message?: string } }).cause;
    const cause = c?.code ?? c?.message ?? (err as Error).message;
    throw new FerryError('ERR_AGENT_UNREACHABLE', `cannot reach the agent at ${o.base}: ${cause}`, { hint: 'is `ferry agent` running there, and is the URL right?', cause: err });
  }
}

/** A JSON call: the answer's body, or the agent's error as a FerryError. */
export async function callAgent<T>(o: { base: string; token?: string | undefined; fetch?: FetchFn }, method: string, path: string, body: unknown, signal: AbortSignal | undefined): Promise<T> {
  const res = await sendToAgent(o, method, path, body, signal);
  if (!res.ok) throw await agentError(res);
  try {
    return await res.json() as T;
  } catch {
    throw new FerryError('ERR_AGENT_UNREACHABLE', `${method} ${path}: the agent's answer is not JSON`, { hint: 'is the URL a ferry agent?' });
  }
}

/** An error answer as a FerryError with the agent's code (ERR_AGENT_UNREACHABLE when it is not one). */
export async function agentError(res: Response): Promise<FerryError> {
  const text = await res.text().catch(() => '');
  let e: { code?: unknown; message?: unknown; hint?: unknown } | undefined;
  try {
    e = (JSON.parse(text) as { error?: typeof e }).error;
  } catch { /* not JSON */ }
  if (typeof e?.code === 'string' && isErrorCode(e.code) && typeof e.message === 'string') {
    return new FerryError(e.code, e.message, typeof e.hint === 'string' ? { hint: e.hint } : {});
  }
  return new FerryError('ERR_AGENT_UNREACHABLE', `the agent answered ${res.status} without a ferry error: ${text.slice(0, 200)}`, { hint: 'is the URL a ferry agent?' });
}
