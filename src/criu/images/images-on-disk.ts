/** How much room a dump takes, in total and by image kind. */
import { stat } from 'node:fs/promises';
import type { ImagesOnDisk } from './inspect-types.js';
import type { ImageFile } from './list.js';

export async function imagesOnDisk(files: readonly ImageFile[]): Promise<ImagesOnDisk> {
  const out: ImagesOnDisk = { files: 0, totalBytes: 0, diskBytes: 0, byKind: {} };
  for (const f of files) {
    const st = await stat(f.path);
    out.files += 1;
    out.totalBytes += st.size;
    out.diskBytes += st.blocks * 512;
    const kind = (out.byKind[f.kind] ??= { files: 0, bytes: 0 });
    kind.files += 1;
    kind.bytes += st.size;
  }
  return out;
}
