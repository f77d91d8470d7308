/** What is in an images directory, by file name. */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { imageKindOf, type ImageKind } from './magic.js';

export interface ImageFile {
  /** The file name, e.g. 'pagemap-1234.img'. */
  name: string;
  path: string;
  /** The kind, or 'unknown' for an image (`*.img`) ferry does not know. */
  kind: ImageKind | 'unknown';
  /** The id in the name (pid, pages id, object id), when the kind's name has one. */
  id?: string;
}

/**
 * The CRIU image files in `dir`, sorted by name: every `*.img` file plus CRIU's service files
 * (stats-dump, stats-restore, irmap-cache). Other files (logs, ferry's own) are left out.
 */
export async function listImages(dir: string): Promise<ImageFile[]> {
  const dirents = await readdir(dir, { withFileTypes: true });
  const out: ImageFile[] = [];
  for (const d of dirents) {
    if (!d.isFile()) continue;
    const found = imageKindOf(d.name);
    if (found === undefined && !d.name.endsWith('.img')) continue;
    const file: ImageFile = { name: d.name, path: join(dir, d.name), kind: found?.kind ?? 'unknown' };
    if (found?.id !== undefined) file.id = found.id;
    out.push(file);
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
