/**
 * A deduped snapshot's `parent` link: a relative symlink `../<parentId>` in its directory, which
 * CRIU follows for PE_PARENT pages. Its manifest names the same parent; the two must agree.
 */
import { readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError } from '../util/errors.js';
import type { SnapshotManifest } from './manifest.js';

export const PARENT_LINK = 'parent';

/** What the parent link of a snapshot whose parent is `parentId` points to. */
export function parentLinkTarget(parentId: string): string {
  return `../${parentId}`;
}

/** The parent link of a snapshot directory, or undefined when there is none. */
export async function readParentLink(dir: string): Promise<string | undefined> {
  try {
    return await readlink(join(dir, PARENT_LINK));
  } catch {
    return undefined;
  }
}

/** Checks that a snapshot's `parent` link matches its manifest (a tampered link is refused). */
export async function checkParentLink(s: { manifest: Pick<SnapshotManifest, 'id' | 'parent'>; dir: string }): Promise<void> {
  const target = await readParentLink(s.dir);
  const want = s.manifest.parent === undefined ? undefined : parentLinkTarget(s.manifest.parent);
  if (target !== want) {
    throw new FerryError('ERR_SNAPSHOT_CORRUPT', `snapshot ${s.manifest.id} is damaged: its parent link is ${target ?? 'missing'}, expected ${want ?? 'none'}`, {
      hint: 'restore another snapshot, or take a new one',
    });
  }
}
