import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Store } from '../store/store.js';
import type { DriverPaths } from '../targets/driver.js';

/** Where drivers keep their bookkeeping in a store. */
export function driverPaths(store: Store): DriverPaths {
  return { workloadsDir: store.workloadsDir, containersDir: join(store.root, 'containers') };
}

/** A work directory for one operation's CRIU log and stats (outside any snapshot). */
export async function operationDir(store: Store, kind: string, id: string): Promise<string> {
  const dir = join(store.root, 'logs', `${kind}-${id}${kind === 'restore' ? `-${Date.now()}` : ''}`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return dir;
}
