import { constants, createReadStream, createWriteStream } from 'node:fs';
import { access, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import { PROJECT_ROOT } from '../criu/binary.js';
import { checkpointAnnotations, checkpointNameOf } from '../oci/checkpoint-annotations.js';
import {
  checkBlob, hashing, MEDIA, normalizeImageRef, ociArch, readJsonBlob, REF_NAME, sha256, unpackOciArchive, writeOciArchive,
  type Descriptor, type ImageIndex, type ImageManifest,
} from '../oci/layout.js';
import { loadIntoContainersStorage, saveFromContainersStorage } from '../oci/podman.js';
import type { ContainerTarget } from '../store/manifest.js';
import type { Store } from '../store/store.js';
import { FerryError } from '../util/errors.js';
import { decompressorFor } from '../oci/compression.js';
import {
  ARCHIVE_NAMES, exportContainerArchive, KEPT_PREFIX, importContainerArchive, type ContainerImportOptions, type ContainerImportResult,
} from './container-archive.js';

/**
 * Container snapshots as *checkpoint OCI images*: the layout Podman writes with `podman
 * container checkpoint --create-image` and restores with `podman container restore IMAGE`, and
 * that CRI-O (≥ 1.25) and containerd (≥ 2.0) restore when a pod's container names one as its
 * image. One image: a config (os/architecture, the layer's diff_id), one layer holding the
 * checkpoint archive's files at its root (checkpoint/, config.dump, spec.dump, …: the same
 * members as `ferry container-archive export`), and on the manifest the checkpoint annotations
 * of Podman, CRI-O and containerd (src/oci/checkpoint-annotations.ts).
 *
 * Destinations: an oci-archive file, or the local containers-storage (through Podman).
 * Sources: an oci-archive, an image in containers-storage by name, or — through
 * importContainerArchive — a plain checkpoint archive (Podman's --export, the kubelet's).
 */

export type ImageDestination = { kind: 'oci-archive'; file: string } | { kind: 'containers-storage' };
export type LayerCompression = 'gzip' | 'none';

export interface CheckpointImageExportOptions {
  /** NAME[:TAG]; normalized as Podman names local images (localhost/NAME:latest). */
  ref: string;
  to: ImageDestination;
  compression?: LayerCompression;
  includeRootfs?: boolean;
  /** The image the container's files come from (Podman and CRI-O create the restored container from it). */
  image?: { name: string; id?: string };
}
export interface CheckpointImageExportResult {
  ref: string;
  snapshot: string;
  to: ImageDestination;
  manifestDigest: string;
  layer: { digest: string; diffId: string; bytes: number; mediaType: string };
  /** containers-storage's id of the loaded image. */
  imageId?: string;
  /** The image the restored container is to be created from (--image, else the kept config.dump's), if any. */
  rootfsImage: string | undefined;
  archiveBytes?: number;
  annotations: Record<string, string>;
  durationMs: number;
}

async function engineVersion(): Promise<string> {
  return readFile(join(PROJECT_ROOT, 'package.json'), 'utf8').then((t) => (JSON.parse(t) as { version?: string }).version ?? '0.0.0', () => '0.0.0');
}

/** The base image named by the config.dump an imported snapshot kept from its engine (Podman's and CRI-O's keys). */
async function keptRootfsImage(dir: string): Promise<{ name: string; id?: string } | undefined> {
  const text = await readFile(join(dir, `${KEPT_PREFIX}${ARCHIVE_NAMES.configDump}`), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const c = JSON.parse(text) as { rootfsImageName?: unknown; rootfsImageID?: unknown; rootfsImageRef?: unknown };
    const name = typeof c.rootfsImageName === 'string' && c.rootfsImageName !== '' ? c.rootfsImageName : undefined;
    const id = [c.rootfsImageID, c.rootfsImageRef].find((v): v is string => typeof v === 'string' && v !== '');
    return name ? { name, ...(id ? { id } : {}) } : undefined;
  } catch {
    return undefined;
  }
}

/** Writes container snapshot `snapshot` as a checkpoint OCI image. */
export async function exportCheckpointImage(store: Store, snapshot: string, opts: CheckpointImageExportOptions): Promise<CheckpointImageExportResult> {
  const started = Date.now();
  const ref = normalizeImageRef(opts.ref);
  if (opts.to.kind === 'oci-archive' && await stat(opts.to.file).then(() => true, () => false)) {
    throw new FerryError('ERR_FILE_EXISTS', `${opts.to.file} already exists`, { hint: 'remove it or name another file' });
  }
  const { manifest, dir } = await store.get(snapshot);
  if (manifest.target.kind !== 'container') {
    throw new FerryError('ERR_USAGE', `snapshot ${snapshot} is of a process, not a container: a checkpoint image holds a container`, { hint: 'use `ferry export` for process snapshots' });
  }
  const target: ContainerTarget = manifest.target;
  const rootfsImage = opts.image ?? await keptRootfsImage(dir);
  const tmp = await mkdtemp(join(store.root, '.tmp-oci-'));
  try {
    // 1. The layer's content: the checkpoint archive, uncompressed (a layer is a tar).
    const layerTar = join(tmp, 'layer.tar');
    await exportContainerArchive(store, snapshot, layerTar, {
      compression: 'none', ...(opts.includeRootfs ? { includeRootfs: true } : {}), ...(opts.image ? { image: opts.image } : {}),
    });
    // 2. The layer blob: diff_id = sha256 of the tar, digest = sha256 of the blob as stored.
    // (gzip at level 1: speed over ratio; --compress none skips it)
    const compression = opts.compression ?? 'gzip';
    const raw = hashing();
    const stored = compression === 'gzip' ? hashing() : raw;
    let layerBlob = layerTar;
    if (compression === 'gzip') {
      layerBlob = join(tmp, 'layer.blob');
      await pipeline(createReadStream(layerTar), raw, createGzip({ level: 1 }), stored, createWriteStream(layerBlob, { mode: 0o600 }));
      await rm(layerTar, { force: true });
    } else {
      // An uncompressed layer is the tar itself: hashed, not copied.
      await pipeline(createReadStream(layerTar), raw, new Writable({ write: (_c, _e, done) => done() }));
    }
    const layer: Descriptor = { mediaType: compression === 'gzip' ? MEDIA.layerGzip : MEDIA.layerTar, digest: stored.digest(), size: stored.bytes() };
    // 3. Config, manifest (with the checkpoint annotations), index.
    const created = new Date().toISOString();
    const config = Buffer.from(JSON.stringify({
      created, architecture: ociArch(manifest.host.arch), os: 'linux', config: {},
      rootfs: { type: 'layers', diff_ids: [raw.digest()] },
      history: [{ created, created_by: `ferry container-archive export ${snapshot} --oci-image ${ref}`, comment: `checkpoint of container ${target.id}` }],
    }));
    const annotations = checkpointAnnotations({
      name: target.id, rootfsImageName: rootfsImage?.name, rootfsImageId: rootfsImage?.id, runtime: target.runtime,
      criuVersion: manifest.criu.version, kernel: manifest.host.kernel, arch: ociArch(manifest.host.arch), engineVersion: await engineVersion(),
    });
    const imageManifest: ImageManifest = {
      schemaVersion: 2, mediaType: MEDIA.manifest,
      config: { mediaType: MEDIA.config, digest: sha256(config), size: config.length },
      layers: [layer], annotations,
    };
    const manifestBody = Buffer.from(JSON.stringify(imageManifest));
    const manifestDigest = sha256(manifestBody);
    const index: ImageIndex = {
      schemaVersion: 2, mediaType: MEDIA.index,
      manifests: [{ mediaType: MEDIA.manifest, digest: manifestDigest, size: manifestBody.length, annotations: { [REF_NAME]: ref } }],
    };
    // 4. The archive, then (for containers-storage) Podman loads it.
    const archive = opts.to.kind === 'oci-archive' ? opts.to.file : join(tmp, 'image.oci.tar');
    let archiveBytes: number;
    try {
      archiveBytes = await writeOciArchive(archive, index, [
        { digest: imageManifest.config.digest, body: config },
        { digest: layer.digest, path: layerBlob, size: layer.size },
        { digest: manifestDigest, body: manifestBody },
      ]);
    } catch (err) {
      await rm(archive, { force: true });
      throw new FerryError('ERR_EXPORT', `writing ${archive} failed: ${(err as Error).message}`, { cause: err });
    }
    const loaded = opts.to.kind === 'containers-storage' ? await loadIntoContainersStorage(archive, ref) : undefined;
    return {
      ref, snapshot, to: opts.to, manifestDigest,
      layer: { digest: layer.digest, diffId: raw.digest(), bytes: layer.size, mediaType: layer.mediaType },
      ...(loaded ? { imageId: loaded.id } : { archiveBytes }), rootfsImage: rootfsImage?.name, annotations, durationMs: Date.now() - started,
    };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

export type ImageSource = { kind: 'oci-archive'; file: string } | { kind: 'containers-storage'; ref: string };
export interface CheckpointImageImportResult extends ContainerImportResult {
  image: { ref: string | undefined; manifestDigest: string; checkpointName: string; layers: number };
}

/** What a file holds: an OCI image layout (oci-archive) or a checkpoint archive (Podman, CRI-O, kubelet, ferry). */
export async function sniffArchive(file: string): Promise<'oci-archive' | 'checkpoint-archive'> {
  const st = await stat(file).catch(() => undefined);
  if (!st?.isFile()) throw new FerryError('ERR_USAGE', `${file} ${st ? 'is not a regular file' : 'does not exist'}`, { hint: 'give a checkpoint archive, an oci-archive, or containers-storage:NAME' });
  const extract = tar.extract();
  const source = createReadStream(file, { end: 1 << 20 });
  let first: string | undefined;
  const reading = pipeline(source, await decompressorFor(file), extract as unknown as Writable).catch(() => undefined);
  try {
    for await (const entry of extract) { first = entry.header.name.replace(/^\.\//, ''); entry.resume(); break; }
  } catch { /* not a tar: the checkpoint-archive reader says why */ }
  source.destroy();
  extract.destroy();
  await reading;
  return first !== undefined && (first === 'oci-layout' || first === 'index.json' || first.startsWith('blobs/')) ? 'oci-archive' : 'checkpoint-archive';
}

/** Picks the checkpoint image of an index: the one named `wanted`, else the only one. */
function pickManifest(index: ImageIndex, what: string): Descriptor {
  const images = index.manifests.filter((d) => d.mediaType === MEDIA.manifest || d.mediaType === MEDIA.dockerManifest || d.mediaType === undefined);
  if (images.length === 1 && images[0]) return images[0];
  const names = images.map((d) => d.annotations?.[REF_NAME] ?? d.digest.slice(0, 19)).join(', ');
  throw new FerryError('ERR_ARCHIVE_INVALID', `${what} holds ${images.length} images (${names || 'none'}); ferry imports an archive of one checkpoint image`, {
    hint: 'save the one image alone (podman image save --format oci-archive -o FILE NAME)',
  });
}

/** Does this layer blob hold a checkpoint archive's spec.dump? (Looks at the member names only.) */
async function layerHasSpecDump(blob: string): Promise<boolean> {
  const extract = tar.extract();
  let found = false;
  const reading = pipeline(createReadStream(blob), await decompressorFor(blob), extract as unknown as Writable).catch(() => undefined);
  for await (const entry of extract) {
    if (entry.header.name.replace(/^\.\//, '') === ARCHIVE_NAMES.specDump) { found = true; entry.resume(); break; }
    entry.resume();
  }
  extract.destroy();
  await reading;
  return found;
}

/**
 * Imports a checkpoint image — from an oci-archive file or by name from containers-storage —
 * as a ferry snapshot: the archive is unpacked and checked (every blob against its digest, each
 * descriptor's size), the manifest must carry a checkpoint annotation, and the layer holding the
 * checkpoint (the topmost with a spec.dump: an image built FROM another keeps it on top) is read
 * by the checkpoint-archive importer with all its checks.
 */
export async function importCheckpointImage(store: Store, source: ImageSource, opts: ContainerImportOptions = {}): Promise<CheckpointImageImportResult> {
  await store.ensure(opts.tier ?? 'disk');
  const tmp = await mkdtemp(join(store.root, '.tmp-oci-import-'));
  try {
    let file: string;
    if (source.kind === 'containers-storage') {
      file = join(tmp, 'image.oci.tar');
      await saveFromContainersStorage(normalizeImageRef(source.ref), file);
    } else {
      file = source.file;
    }
    const what = source.kind === 'containers-storage' ? `image ${source.ref}` : basename(file);
    const layout = join(tmp, 'layout');
    await access(file, constants.R_OK).catch((err: NodeJS.ErrnoException) => {
      throw new FerryError('ERR_USAGE', `cannot read ${file}: ${err.code ?? err.message}`, { hint: 'give an oci-archive file' });
    });
    const index = await unpackOciArchive(file, layout);
    if (source.kind === 'containers-storage') await rm(file, { force: true });
    const desc = pickManifest(index, what);
    const manifestPath = await checkBlob(layout, desc, `${what}: the image manifest`);
    const m = await readJsonBlob<ImageManifest>(manifestPath, `${what}: the image manifest`);
    if (m.schemaVersion !== 2 || !Array.isArray(m.layers) || !m.config) throw new FerryError('ERR_ARCHIVE_INVALID', `${what}: the manifest is not an OCI image manifest (schemaVersion 2, config, layers)`);
    const checkpointName = checkpointNameOf(m.annotations) ?? checkpointNameOf(desc.annotations) ?? checkpointNameOf(index.annotations);
    if (checkpointName === undefined) {
      throw new FerryError('ERR_ARCHIVE_INVALID', `${what} is an image, but not a checkpoint image: its manifest has none of the checkpoint annotations (io.podman.annotations.checkpoint.name, io.kubernetes.cri-o.annotations.checkpoint.name, org.criu.checkpoint.container.name)`, {
        hint: 'give an image from `podman container checkpoint --create-image`, `ferry container-archive export --oci-image`, or one built from a checkpoint archive with that annotation',
      });
    }
    await checkBlob(layout, m.config, `${what}: the image config`);
    let layerPath: string | undefined;
    for (const [i, l] of [...m.layers.entries()].reverse()) {
      const p = await checkBlob(layout, l, `${what}: layer ${i + 1} of ${m.layers.length}`);
      // One layer (what Podman and ferry write) is read once, by the importer; only images built
      // FROM another are searched (a pass over each layer's member names, top down).
      if (m.layers.length === 1 || await layerHasSpecDump(p)) { layerPath = p; break; }
    }
    if (!layerPath) throw new FerryError('ERR_ARCHIVE_INVALID', `${what} is marked as a checkpoint of ${checkpointName}, but none of its ${m.layers.length} layers holds spec.dump`, { hint: 'the image was not built from a checkpoint archive' });
    const r = await importContainerArchive(store, layerPath, opts);
    return { ...r, image: { ref: desc.annotations?.[REF_NAME] ?? (source.kind === 'containers-storage' ? normalizeImageRef(source.ref) : undefined), manifestDigest: desc.digest, checkpointName, layers: m.layers.length } };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
