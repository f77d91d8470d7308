import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Whether an Authorization header carries the agent's token. Both sides are hashed first, so
 * timingSafeEqual compares equal-length digests and the time taken says nothing about the token
 * (not even its length).
 */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer ([^\s]+)$/.exec(header ?? '');
  const given = createHash('sha256').update(m?.[1] ?? '').digest();
  const want = createHash('sha256').update(token).digest();
  return timingSafeEqual(given, want) && m !== null;
}
