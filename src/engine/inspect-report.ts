import type { ImageSummary } from '../criu/images/inspect-types.js';
import type { SnapshotManifest } from '../store/manifest.js';
import type { StoredSnapshot } from '../store/store.js';

/**
 * What `ferry snapshots inspect ID --json` prints and `GET /v1/snapshots/:id/inspect` answers:
 * the manifest (without its per-file checksums) and the decoded CRIU images. The environment
 * recovered from memory may hold secrets: names only unless `showEnv`.
 */
export interface InspectReport {
  manifest: Omit<SnapshotManifest, 'files'>;
  environmentValues: string;
  images: ImageSummary;
}

export async function inspectReport(s: StoredSnapshot, showEnv: boolean): Promise<InspectReport> {
  // Loaded only here: the image decoders are the heaviest modules of the CLI.
  const { inspectImages } = await import('../criu/images/inspect.js');
  const images = await inspectImages(s.dir, { environment: showEnv ? 'full' : 'names' });
  const { files: _, ...manifest } = s.manifest;
  return { manifest, environmentValues: showEnv ? 'shown' : 'hidden (names only; --show-env shows values)', images };
}
