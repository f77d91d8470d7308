import { FerryError } from '../util/errors.js';
import type { CommandContext } from './command.js';

/**
 * `--priority N`: where a job goes among an agent's waiting jobs (-1000…1000, higher first, the
 * same as the request's `priority`). It means nothing to a command run here, so it needs an agent.
 */
export function jobPriority(value: string | undefined, ctx: CommandContext, command: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^-?\d+$/.test(value) || Math.abs(Number(value)) > 1000) {
    throw new FerryError('ERR_USAGE', `${command}: --priority must be a whole number from -1000 to 1000, not '${value}'`, { hint: 'e.g. --priority 10 (higher runs first; default 0)' });
  }
  if (!ctx.agent) {
    throw new FerryError('ERR_USAGE', `${command}: --priority orders jobs on an agent; this command runs here`, { hint: 'run it through an agent (--agent URL or $FERRY_AGENT), or drop --priority' });
  }
  return Number(value);
}
