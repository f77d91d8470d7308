import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * How far a CRIU dump is, for the scheduler's stagger (AdmissionRequest.progress): the bytes of
 * its pages images (pages-N.img, which CRIU appends to as it drains the frozen tree's memory)
 * over the bytes it is expected to write. Synchronous and cheap on purpose — a readdir and a few
 * stats of a tmpfs or local directory, polled every few ms only while a request waits on it; an
 * unreadable directory reads as 0 (the stagger then waits for the release, never longer).
 */
export function pagesProgress(imagesDir: string, expectedBytes: number): () => number {
  return () => {
    if (!(expectedBytes > 0)) return 1;
    let written = 0;
    let names: string[];
    try { names = readdirSync(imagesDir); } catch { return 0; }
    for (const name of names) {
      if (!/^pages-\d+\.img$/.test(name)) continue;
      try { written += statSync(join(imagesDir, name)).size; } catch { /* gone between the two calls */ }
    }
    return Math.min(1, written / expectedBytes);
  };
}
