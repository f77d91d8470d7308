import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Transform, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { FerryError } from '../util/errors.js';
import { decompressorFor } from './compression.js';

/**
 * The OCI image layout (image-spec: image-layout.md, manifest.md, config.md) as a single tar —
 * the "oci-archive" that Podman, skopeo and containerd's `ctr image import` read and write:
 *
 *   oci-layout               {"imageLayoutVersion":"1.0.0"}
 *   index.json               an image index: one descriptor per image, named by the
 *                            org.opencontainers.image.ref.name annotation
 *   blobs/sha256/<hex>       content-addressed blobs: manifests, configs, layers
 *
 * A small writer and a checking reader of our own: the subset ferry needs (one image, one
 * layer) is a few JSON documents and a tar, and no npm package for it is installed.
 */
export const MEDIA = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layerTar: 'application/vnd.oci.image.layer.v1.tar',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  layerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  // Docker's schema 2 names for the same things (what `podman save` may keep for docker images).
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;
export const REF_NAME = 'org.opencontainers.image.ref.name';

export interface Descriptor { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }
export interface ImageManifest { schemaVersion: 2; mediaType?: string; config: Descriptor; layers: Descriptor[]; annotations?: Record<string, string> }
export interface ImageIndex { schemaVersion: 2; mediaType?: string; manifests: Descriptor[]; annotations?: Record<string, string> }

const DIGEST = /^sha256:([a-f0-9]{64})$/;
/** Bounds for the JSON documents of a layout (index, manifest, config): far above real ones. */
const MAX_JSON_BYTES = 4 << 20;

export function sha256(buf: Buffer | string): string {
  return `sha256:${createHash('sha256').update(buf).digest('hex')}`;
}

/** A pass-through stream that hashes and counts what flows through it. */
export function hashing(): Transform & { digest(): string; bytes(): number } {
  const h = createHash('sha256');
  let n = 0;
  const t = new Transform({
    transform(chunk: Buffer, _enc, done) { h.update(chunk); n += chunk.length; done(null, chunk); },
  }) as Transform & { digest(): string; bytes(): number };
  let hex: string | undefined;
  t.digest = () => `sha256:${(hex ??= h.digest('hex'))}`;
  t.bytes = () => n;
  return t;
}

export const blobPath = (layoutDir: string, digest: string): string => {
  const m = DIGEST.exec(digest);
  if (!m?.[1]) throw new FerryError('ERR_ARCHIVE_INVALID', `'${digest}' is not a sha256 digest`, { hint: 'the image layout names blobs sha256:<64 hex digits>' });
  return join(layoutDir, 'blobs', 'sha256', m[1]);
};

/** A blob to put into an archive: in memory (JSON documents) or a file (layers). */
export type Blob = { digest: string; body: Buffer } | { digest: string; path: string; size: number };

/** Writes an oci-archive: oci-layout, the blobs, then index.json (readers look it up by name). */
export async function writeOciArchive(file: string, index: ImageIndex, blobs: Blob[]): Promise<number> {
  const pack = tar.pack();
  const out = createWriteStream(file, { mode: 0o644 });
  const done = pipeline(pack as unknown as Readable, out);
  const mtime = new Date();
  try {
    pack.entry({ name: 'oci-layout', mode: 0o644, mtime }, JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    pack.entry({ name: 'blobs/', type: 'directory', mode: 0o755, mtime });
    pack.entry({ name: 'blobs/sha256/', type: 'directory', mode: 0o755, mtime });
    for (const b of blobs) {
      const name = `blobs/sha256/${b.digest.slice('sha256:'.length)}`;
      if ('body' in b) { pack.entry({ name, mode: 0o644, mtime }, b.body); continue; }
      await new Promise<void>((ok, bad) => {
        const sink = pack.entry({ name, size: b.size, mode: 0o644, mtime }, (err) => (err ? bad(err) : ok()));
        createReadStream(b.path).on('error', bad).pipe(sink as unknown as Writable);
      });
    }
    pack.entry({ name: 'index.json', mode: 0o644, mtime }, JSON.stringify(index));
    pack.finalize();
    await done;
  } catch (err) {
    pack.destroy(err as Error);
    await done.catch(() => undefined);
    throw err;
  }
  return (await stat(file)).size;
}

/**
 * Unpacks an oci-archive into `dir` (which must be empty and private), refusing anything but
 * oci-layout, index.json and regular files under blobs/sha256/ named by a digest — and checking
 * each blob's sha256 against its name as it is written. Returns the index.
 */
export async function unpackOciArchive(file: string, dir: string): Promise<ImageIndex> {
  const name = basename(file);
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true, mode: 0o700 });
  const extract = tar.extract();
  const seen = new Set<string>();
  let layoutSeen = false;
  const consumed = (async () => {
    for await (const entry of extract) {
      const member = entry.header.name.replace(/^\.\//, '');
      if (entry.header.type === 'directory' && ['', 'blobs/', 'blobs/sha256/', 'blobs', 'blobs/sha256'].includes(member)) { entry.resume(); continue; }
      if (entry.header.type !== 'file') throw new FerryError('ERR_ARCHIVE_INVALID', `${name}: member ${member} is a ${entry.header.type}, not a file (an OCI image layout holds files only)`);
      if (seen.has(member)) throw new FerryError('ERR_ARCHIVE_INVALID', `${name}: member ${member} appears twice`);
      seen.add(member);
      if (member === 'oci-layout' || member === 'index.json') {
        if ((entry.header.size ?? 0) > MAX_JSON_BYTES) throw new FerryError('ERR_ARCHIVE_INVALID', `${name}: ${member} is larger than ${MAX_JSON_BYTES} bytes`);
        layoutSeen ||= member === 'oci-layout';
        await pipeline(entry, createWriteStream(join(dir, member), { mode: 0o600 }));
        continue;
      }
      const m = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(member);
      const hex = m?.[1];
      if (hex === undefined) throw new FerryError('ERR_ARCHIVE_INVALID', `${name}: unexpected member ${member} (not oci-layout, index.json or blobs/sha256/<digest>)`, { hint: 'give an oci-archive (e.g. from `podman image save --format oci-archive`)' });
      const h = hashing();
      await pipeline(entry, h, createWriteStream(join(dir, member), { mode: 0o600 }));
      if (h.digest() !== `sha256:${hex}`) {
        throw new FerryError('ERR_ARCHIVE_CORRUPT', `${name}: blob ${hex.slice(0, 12)}… does not match its digest (its content hashes to ${h.digest().slice(7, 19)}…)`, { hint: 'the archive was damaged or changed after it was written; write it again' });
      }
    }
  })();
  await Promise.all([pipeline(createReadStream(file), await decompressorFor(file), extract as unknown as Writable), consumed]).catch((err: unknown) => {
    if (err instanceof FerryError) throw err;
    throw new FerryError('ERR_ARCHIVE_INVALID', `${name} is not a readable OCI archive: ${(err as Error).message}`, { cause: err });
  });
  if (!layoutSeen || !seen.has('index.json')) {
    throw new FerryError('ERR_ARCHIVE_INVALID', `${name} lacks ${layoutSeen ? 'index.json' : 'oci-layout'}: not an OCI image layout`, { hint: 'give an oci-archive (e.g. from `podman image save --format oci-archive`)' });
  }
  const index = await readJsonBlob<ImageIndex>(join(dir, 'index.json'), `${name}: index.json`);
  if (index.schemaVersion !== 2 || !Array.isArray(index.manifests)) throw new FerryError('ERR_ARCHIVE_INVALID', `${name}: index.json is not an OCI image index (schemaVersion 2 with manifests)`);
  return index;
}

/** Reads a JSON document of a layout (bounded), with the file's role in any error. */
export async function readJsonBlob<T>(path: string, what: string): Promise<T> {
  const st = await stat(path).catch(() => undefined);
  if (!st) throw new FerryError('ERR_ARCHIVE_INVALID', `${what} is missing from the archive`, { hint: 'the image layout is incomplete; save the image again' });
  if (st.size > MAX_JSON_BYTES) throw new FerryError('ERR_ARCHIVE_INVALID', `${what} is larger than ${MAX_JSON_BYTES} bytes`);
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch (err) {
    throw new FerryError('ERR_ARCHIVE_INVALID', `${what} is not JSON: ${(err as Error).message}`, { cause: err });
  }
}

/** Checks a descriptor's blob: present, of the declared size (its digest was checked on unpack). */
export async function checkBlob(layoutDir: string, d: Descriptor, what: string): Promise<string> {
  const path = blobPath(layoutDir, d.digest);
  const st = await stat(path).catch(() => undefined);
  if (!st) throw new FerryError('ERR_ARCHIVE_INVALID', `${what} (${d.digest.slice(0, 19)}…) is missing from the archive`, { hint: 'the image layout is incomplete; save the image again' });
  if (st.size !== d.size) throw new FerryError('ERR_ARCHIVE_CORRUPT', `${what} (${d.digest.slice(0, 19)}…) is ${st.size} bytes, its descriptor says ${d.size}`);
  return path;
}

/**
 * An image name as NAME[:TAG], normalized the way Podman stores local images: a name without a
 * registry (no '.' or ':' in its first component, and not 'localhost') gets 'localhost/', a name
 * without a tag gets ':latest'. The grammar is the distribution reference's (lowercase path
 * components separated by '/', a tag of up to 128 word characters, dots and dashes); digests
 * (@sha256:…) are refused: a checkpoint image is written under a name.
 */
export function normalizeImageRef(ref: string): string {
  const m = /^((?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::[0-9]+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)(?::([\w][\w.-]{0,127}))?$/.exec(ref);
  if (!m?.[1] || ref.length > 255) {
    throw new FerryError('ERR_USAGE', `'${ref}' is not an image name (NAME[:TAG]: lowercase letters, digits, '.', '_', '-' and '/'; a tag of letters, digits, '.', '_', '-')`, { hint: 'e.g. --oci-image localhost/web-checkpoint:1' });
  }
  const name = m[1];
  const first = name.split('/')[0] ?? '';
  const hasRegistry = name.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  return `${hasRegistry ? name : `localhost/${name}`}:${m[2] ?? 'latest'}`;
}

/** The OCI platform architecture of this machine (GOARCH names: amd64, arm64, …). */
export function ociArch(arch: string = process.arch): string {
  return ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' } as Record<string, string>)[arch] ?? arch;
}
