import { join } from 'node:path';
import type { OperationKind } from '../store/layout.js';
import { sweepLogs } from '../store/log-retention.js';
import type { Store } from '../store/store.js';
import type { DriverPaths } from '../targets/driver.js';

/** Where drivers keep their bookkeeping in a store. */
export function driverPaths(store: Store): DriverPaths {
  return { workloadsDir: store.workloadsDir, containersDir: join(store.root, 'containers') };
}

/**
 * A work directory for one operation's CRIU log and stats (outside any snapshot). Logs past the
 * store's retention are swept meanwhile, beside the operation (one readdir and a stat per log;
 * never awaited by it, never failing it).
 */
export async function operationDir(store: Store, kind: OperationKind, id: string): Promise<string> {
  const dir = await store.makeOperationDir(kind, kind === 'restore' ? `${id}-${Date.now()}` : id);
  void sweepLogs(store, {}, [dir]).catch(() => undefined);
  return dir;
}
