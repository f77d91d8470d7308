import { readFile } from 'node:fs/promises';
import { FerryError } from '../util/errors.js';

/** Reads a token file: its first line, which must not be empty. */
export async function readTokenFile(path: string): Promise<string> {
  const text = await readFile(path, 'utf8').catch((err: unknown) => {
    throw new FerryError('ERR_USAGE', `cannot read the token file ${path}: ${(err as Error).message}`, { hint: 'give --token-file a readable file holding the agent\'s token' });
  });
  const token = text.split('\n')[0]?.trim() ?? '';
  if (token.length < 16) throw new FerryError('ERR_USAGE', `the token in ${path} is ${token.length ? 'shorter than 16 characters' : 'empty'}`, { hint: 'e.g. head -c 32 /dev/urandom | base64 > FILE' });
  return token;
}
