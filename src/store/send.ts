/**
 * Sending snapshots out of the store (an export, later a migration): which snapshots a snapshot
 * needs (its chain) and the members of each, checked against its manifest before anything is sent.
 */
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError } from '../util/errors.js';
import { UNSUMMED } from './receive.js';
import type { Store, StoredSnapshot } from './store.js';

/** The longest chain sent or received. */
export const MAX_CHAIN = 4096;

/** The snapshot and its ancestors, oldest first; refuses a broken chain. */
export async function resolveChain(store: Store, id: string): Promise<StoredSnapshot[]> {
  const chain: StoredSnapshot[] = [];
  const seen = new Set<string>();
  let cur: string | undefined = id;
  while (cur !== undefined) {
    const wanted: string = cur;
    if (seen.has(wanted) || chain.length >= MAX_CHAIN) {
      throw new FerryError('ERR_SNAPSHOT_CORRUPT', `snapshot ${id} has a parent chain that loops back to ${wanted}`);
    }
    seen.add(wanted);
    const s: StoredSnapshot | undefined = chain.length === 0 ? await store.get(wanted) : await store.find(wanted);
    if (!s) {
      throw new FerryError('ERR_SNAPSHOT_CORRUPT', `snapshot ${chain[0]?.manifest.id ?? id} depends on ${wanted}, which is not in the store`, {
        hint: 'the chain is broken; restore and export another snapshot',
      });
    }
    chain.unshift(s);
    cur = s.manifest.parent ?? undefined;
  }
  return chain;
}

/** One member of a snapshot as it will be sent: its directory, a file (with its path), or its parent link. */
export interface PlannedMember { name: string; type: 'file' | 'directory' | 'symlink'; path?: string; size: number; linkname?: string; summed: boolean }

/**
 * The members of a stored snapshot, its directory first, then manifest.json, then its other files
 * and its parent link; refuses a snapshot whose files or link do not match its manifest.
 */
export async function planSnapshot(s: StoredSnapshot): Promise<PlannedMember[]> {
  const m = s.manifest;
  const id = m.id;
  const names = (await readdir(s.dir)).sort((a, b) => (a === 'manifest.json' ? -1 : b === 'manifest.json' ? 1 : a.localeCompare(b)));
  const out: PlannedMember[] = [{ name: `${id}/`, type: 'directory', size: 0, summed: false }];
  let hasParentLink = false;
  for (const n of names) {
    const p = join(s.dir, n);
    const st = await lstat(p);
    if (st.isFile()) {
      const summed = !UNSUMMED.test(n);
      if (summed && m.files[n]?.size !== st.size) {
        throw new FerryError('ERR_SNAPSHOT_CORRUPT', `snapshot ${id}: ${n} does not match its manifest`, { hint: 'the snapshot changed after the checkpoint; export another one' });
      }
      out.push({ name: `${id}/${n}`, type: 'file', path: p, size: st.size, summed });
    } else if (st.isSymbolicLink() && n === 'parent') {
      const target = await readlink(p);
      if (!m.parent || target !== `../${m.parent}`) {
        throw new FerryError('ERR_SNAPSHOT_CORRUPT', `snapshot ${id}: its parent link points to '${target}', its manifest names ${m.parent ?? 'no parent'}`);
      }
      hasParentLink = true;
      out.push({ name: `${id}/parent`, type: 'symlink', size: 0, linkname: target, summed: false });
    } else {
      throw new FerryError('ERR_SNAPSHOT_CORRUPT', `snapshot ${id} holds '${n}', which is neither an image file nor its parent link`, { hint: 'remove it from the snapshot directory, then export again' });
    }
  }
  if (m.parent && !hasParentLink) throw new FerryError('ERR_SNAPSHOT_CORRUPT', `snapshot ${id} names parent ${m.parent} but has no parent link`);
  for (const f of Object.keys(m.files)) {
    if (!out.some((o) => o.name === `${id}/${f}`)) throw new FerryError('ERR_SNAPSHOT_CORRUPT', `snapshot ${id}: ${f} is missing`);
  }
  return out;
}
