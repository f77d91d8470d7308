import { acquireLock } from '../store/locks.js';
import { removeSnapshot } from '../store/retention.js';
import type { Store } from '../store/store.js';
import { FerryError } from '../util/errors.js';
import { checkWarmKey, listWarm, readWarm, removeWarm, type WarmRecord } from './warm-store.js';

/** `ferry warm ls|rm`: the keys of the warm key store, and removing them with their snapshots. */
export type WarmKeyRow =
  | ({ key: string; snapshotPresent: boolean } & Omit<WarmRecord, 'identity' | 'format' | 'key'>)
  | { key: string; error: string };

export async function listWarmKeys(store: Store): Promise<WarmKeyRow[]> {
  const out: WarmKeyRow[] = [];
  for (const r of await listWarm(store.root)) {
    if ('error' in r) {
      out.push({ key: r.key, error: r.error.message });
      continue;
    }
    const { identity: _i, format: _f, key: _k, ...rest } = r.record;
    out.push({ key: r.key, ...rest, snapshotPresent: (await store.find(r.record.snapshot)) !== undefined });
  }
  return out;
}

/** Removes a key and its snapshot (a damaged record is removed too; a snapshot already gone is fine). */
export async function removeWarmKey(store: Store, key: string): Promise<{ key: string; snapshot: string | null }> {
  checkWarmKey(key);
  const lock = await acquireLock(store.root, `warm-${key}`, `a change of warm key ${key}`);
  try {
    let rec: WarmRecord | undefined;
    let damaged = false;
    try {
      rec = await readWarm(store.root, key);
    } catch {
      damaged = true;
    }
    if (!rec && !damaged) throw new FerryError('ERR_NO_WARM_KEY', `no warm key '${key}'`, { hint: '`ferry warm ls` lists them' });
    let snapshot: string | null = null;
    if (rec && await store.find(rec.snapshot)) {
      await removeSnapshot(store, rec.snapshot);
      snapshot = rec.snapshot;
    }
    await removeWarm(store.root, key);
    return { key, snapshot };
  } finally {
    await lock.release();
  }
}
