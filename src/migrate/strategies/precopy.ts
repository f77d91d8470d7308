import { CriuClient } from '../../criu/client.js';
import { FerryError } from '../../util/errors.js';
import type { MigrationStrategy } from '../strategy.js';

/**
 * `precopy`: CRIU's pre-dump iterations (the kernel's soft-dirty tracking says which pages
 * changed) then a final dump of what changed last. Without the kernel's memory tracking it is
 * refused before anything is frozen. ferry's own pre-copy, which needs no kernel help, is
 * `incremental`.
 */
export const precopy: MigrationStrategy = {
  name: 'precopy',
  async check() {
    const f = await new CriuClient().features();
    if (!f.memTrack) {
      throw new FerryError('ERR_CRIU_FEATURE', 'the precopy strategy needs the kernel\'s dirty-page tracking (soft-dirty; CRIU\'s FEATURE_CHECK reports mem_dirty_track missing), which this kernel lacks', {
        hint: 'use --strategy incremental (ferry finds changed pages by content, no kernel help needed) or --strategy postcopy; nothing was frozen',
      });
    }
    // The pre-dump chain across hosts is not built yet: ferry's transfer sends one image set.
    throw new FerryError('ERR_MIGRATE_STRATEGY', 'this kernel tracks dirty pages, but ferry\'s precopy across hosts (a CRIU pre-dump chain on the wire) is not built yet', {
      hint: 'use --strategy incremental (the same pre-copy, by content); nothing was frozen',
    });
  },
  prepare() {
    return Promise.reject(new FerryError('ERR_INTERNAL', 'precopy: prepare() after a check() that refuses'));
  },
};
