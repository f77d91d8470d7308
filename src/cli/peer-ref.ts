import { readTokenFile } from '../agent/token.js';
import { testbedExecEnv } from '../testbed/testbed.js';
import { FerryError } from '../util/errors.js';

export interface PeerRef { url: string; token: string | undefined; name: string | undefined }

/**
 * `ferry migrate --to HOST|URL`: a URL is a destination agent (its token from --to-token-file,
 * else $FERRY_PEER_TOKEN, else this host's own $FERRY_TOKEN); a name is a host of the running
 * testbed (its agent's URL and the testbed's token, as `ferry testbed exec` gives them).
 */
export async function resolvePeer(to: string, tokenFile?: string): Promise<PeerRef> {
  const fileToken = tokenFile !== undefined ? await readTokenFile(tokenFile, 1) : undefined;
  if (/^https?:\/\//.test(to)) {
    return { url: to.replace(/\/+$/, ''), token: fileToken ?? (process.env['FERRY_PEER_TOKEN'] || process.env['FERRY_TOKEN'] || undefined), name: undefined };
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(to)) {
    throw new FerryError('ERR_USAGE', `--to '${to.slice(0, 80)}' is neither an agent URL nor a host name`, { hint: 'give --to http://ADDR:PORT (a ferry agent), or the name of a testbed host (e.g. h2)' });
  }
  const { env } = await testbedExecEnv(to);
  return { url: env.FERRY_AGENT, token: fileToken ?? env.FERRY_TOKEN, name: to };
}
