import { FerryError } from '../../util/errors.js';
import type { ConcreteStrategy, MigrationStrategy } from '../strategy.js';
import { cold } from './cold.js';
import { incremental } from './incremental.js';
import { postcopy } from './postcopy.js';
import { precopy } from './precopy.js';
import { stream } from './stream.js';

/** Every strategy this build has, by name; each lives in its own file beside this one. */
const STRATEGIES: ReadonlyMap<ConcreteStrategy, MigrationStrategy> = new Map<ConcreteStrategy, MigrationStrategy>([
  ['cold', cold],
  ['incremental', incremental],
  ['precopy', precopy],
  ['stream', stream],
  ['postcopy', postcopy],
]);

/** The strategies `auto` may pick from (precopy only refuses here: it is never picked). */
export function availableStrategies(): ConcreteStrategy[] {
  return [...STRATEGIES.keys()].filter((s) => s !== 'precopy');
}

export function strategyFor(name: ConcreteStrategy): MigrationStrategy {
  const s = STRATEGIES.get(name);
  if (!s) {
    throw new FerryError('ERR_MIGRATE_STRATEGY', `the ${name} migration strategy is not part of this build of ferry`, {
      hint: `use one of: ${[...STRATEGIES.keys()].join(', ')}, or auto`,
    });
  }
  return s;
}
