/** Hand-made snapshots for the store's unit and fuzz tests (no CRIU involved). */
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { exportSnapshot } from './archive.js';
import { checksumDir, HASH_ALGORITHM } from './checksums.js';
import type { SnapshotManifest } from './manifest.js';
import type { Store } from './store.js';
import { fakeManifest } from './testing-manifest.js';

/**
 * A snapshot made by hand in the disk tier: a pages image of `pagesBytes` derived from `seed`, a
 * pagemap, a log, an optional parent link, and a complete manifest with real checksums.
 */
export async function makeHandSnapshot(store: Store, id: string, o: { parent?: string | undefined; seed: number; pagesBytes: number; createdAt: string }): Promise<void> {
  const dir = join(store.tierDir('disk'), id);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const pages = Buffer.alloc(o.pagesBytes);
  for (let i = 0; i < pages.length; i++) pages[i] = (i * 31 + o.seed * 7) & 0xff;
  await writeFile(join(dir, 'pages-1.img'), pages);
  await writeFile(join(dir, 'pagemap-1.img'), `pagemap ${id}`);
  await writeFile(join(dir, 'dump.log'), `log of ${id}\n`);
  if (o.parent) await symlink(`../${o.parent}`, join(dir, 'parent'));
  const files = await checksumDir(dir);
  const manifest = {
    // (a complete manifest: the store reads manifests through a schema, see layout.ts)
    ...fakeManifest(id, 'disk'), parent: o.parent, createdAt: o.createdAt,
    target: { kind: 'process', pid: 1, workload: undefined, command: ['x'], ownPidNamespace: true },
    bytes: Object.values(files).reduce((a, f) => a + f.size, 0), algorithm: HASH_ALGORITHM, files,
  } as unknown as SnapshotManifest;
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest));
}

/** `ferry export` of a snapshot, in memory. */
export async function exportedBytes(store: Store, id: string): Promise<Buffer> {
  const sink = new PassThrough();
  const chunks: Buffer[] = [];
  sink.on('data', (c: Buffer) => chunks.push(c));
  await exportSnapshot(store, id, sink);
  return Buffer.concat(chunks);
}
