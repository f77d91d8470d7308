import { readFile } from 'node:fs/promises';
import { FerryError } from '../util/errors.js';

/**
 * Reads a token file: its first line, which must not be empty. An agent's own token must be at
 * least 16 characters; a peer's is taken as given (`minLength` 1) and judged by the peer.
 */
export async function readTokenFile(path: string, minLength = 16): Promise<string> {
  const text = await readFile(path, 'utf8').catch((err: unknown) => {
    throw new FerryError('ERR_USAGE', `cannot read the token file ${path}: ${(err as Error).message}`, { hint: 'give --token-file a readable file holding the agent\'s token' });
  });
  const token = text.split('\n')[0]?.trim() ?? '';
  if (token.length < minLength) throw new FerryError('ERR_USAGE', `the token in ${path} is ${token.length ? `shorter than ${minLength} characters` : 'empty'}`, { hint: 'e.g. head -c 32 /dev/urandom | base64 > FILE' });
  return token;
}
