import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError } from '../util/errors.js';

/** Where `ferry testbed` keeps its state (its hosts' agents and token). */
export function testbedDir(): string {
  return process.env['FERRY_TESTBED_DIR'] || '/run/ferry-testbed';
}

export interface PeerRef { url: string; token: string | undefined; name: string | undefined }

/**
 * `--to HOST|URL`: a URL is a destination agent (its token from --to-token-file, else
 * $FERRY_PEER_TOKEN, else this host's own $FERRY_TOKEN); a name is a host of the running
 * testbed (its agent's URL and the testbed's token).
 */
export async function resolvePeer(to: string, tokenFile?: string): Promise<PeerRef> {
  const fileToken = tokenFile !== undefined ? await readToken(tokenFile) : undefined;
  if (/^https?:\/\//.test(to)) {
    return { url: to.replace(/\/+$/, ''), token: fileToken ?? (process.env['FERRY_PEER_TOKEN'] || process.env['FERRY_TOKEN'] || undefined), name: undefined };
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(to)) {
    throw new FerryError('ERR_USAGE', `--to '${to.slice(0, 80)}' is neither an agent URL nor a host name`, { hint: 'give --to http://ADDR:PORT (a ferry agent), or the name of a testbed host (e.g. h2)' });
  }
  const path = join(testbedDir(), 'state.json');
  let state: { hosts?: { name?: string; agent?: string }[]; token?: string } | undefined;
  try {
    state = JSON.parse(await readFile(path, 'utf8')) as typeof state;
  } catch {
    throw new FerryError('ERR_USAGE', `--to ${to}: no testbed is up (${path} is missing), and '${to}' is not a URL`, { hint: 'give the destination agent\'s URL (--to http://ADDR:PORT), or start a testbed with `ferry testbed up`' });
  }
  const host = state?.hosts?.find((h) => h.name === to);
  if (!host?.agent) {
    throw new FerryError('ERR_USAGE', `--to ${to}: the testbed has no such host (it has ${(state?.hosts ?? []).map((h) => h.name).join(', ') || 'none'})`, { hint: 'see `ferry testbed status`' });
  }
  const token = fileToken ?? (state?.token !== undefined ? await readToken(state.token) : undefined);
  return { url: host.agent, token, name: to };
}

async function readToken(file: string): Promise<string> {
  try {
    const t = (await readFile(file, 'utf8')).trim();
    if (t) return t;
  } catch (e) {
    throw new FerryError('ERR_USAGE', `cannot read the token file ${file}: ${(e as Error).message}`, { hint: 'give the file the destination agent was started with (--token-file)' });
  }
  throw new FerryError('ERR_USAGE', `the token file ${file} is empty`);
}
