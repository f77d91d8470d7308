import { execFile } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { PassThrough, Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import { CompressStream } from 'zstd-napi';
import { CriuClient } from '../criu/client.js';
import { readDumpStats } from '../criu/images/stats.js';
import { decompressorFor } from '../oci/compression.js';
import { containerIdFor, kubernetesIdentity, parseKubeletArchiveName, type KubernetesIdentity } from '../oci/kubelet.js';
import { checksumDir, HASH_ALGORITHM } from '../store/checksums.js';
import type { ContainerTarget, SnapshotManifest, Tier } from '../store/manifest.js';
import type { Store } from '../store/store.js';
import { isBindMount, isRuntime, ownNamespaces, type OciSpec } from '../targets/container.js';
import { FerryError } from '../util/errors.js';

function isContainerManifest(m: SnapshotManifest): m is SnapshotManifest & { target: ContainerTarget } {
  return m.target.kind === 'container';
}
import { DESCRIPTORS, SPEC_DUMP } from '../targets/container-io.js';
import { hostFacts } from '../targets/host.js';

/**
 * Container snapshots as Podman/CRI-O checkpoint archives (the layout checkpointctl reads):
 *
 *   checkpoint/          CRIU's images (and runc's descriptors.json)
 *   config.dump          the engine's container config: id, name, runtime, createdTime, …
 *   spec.dump            the OCI runtime spec (the bundle's config.json)
 *   network.status       network attachments (ferry's test containers have none: {})
 *   stats-dump           CRIU's dump statistics
 *   dump.log             CRIU's dump log
 *   rootfs-diff.tar      with --include-rootfs: the whole rootfs (ferry's bundles are plain
 *                        directories, so the "diff" is against an empty base)
 *   ferry.manifest.json  ferry's manifest (checksums, CRIU version, host); other tools ignore it
 *
 * Compressed with zstd (Podman's default), gzip, or not at all; import detects which.
 */
export { decompressorFor };
export const ARCHIVE_NAMES = {
  checkpointDir: 'checkpoint',
  configDump: 'config.dump',
  specDump: 'spec.dump',
  networkStatus: 'network.status',
  statsDump: 'stats-dump',
  dumpLog: 'dump.log',
  rootfsDiff: 'rootfs-diff.tar',
  deletedFiles: 'deleted.files',
  ferryManifest: 'ferry.manifest.json',
} as const;

export type Compression = 'zstd' | 'gzip' | 'none';
const run = promisify(execFile);
/** Files of a ferry snapshot that go to the archive's top level rather than into checkpoint/. */
const TOP_LEVEL = new Set(['manifest.json', SPEC_DUMP, 'stats-dump', 'dump.log']);
/**
 * The other engine's own top-level members of an imported archive (its config.dump and
 * network.status; containerd's status.dump, status and container.log; Podman's
 * devshm-checkpoint.tar, ctr.log, bind.mounts, …) are kept in the snapshot as `archive.<name>`
 * and written back under their own names on export, so an archive or image made from the
 * snapshot is what that engine needs to restore it (CRI-O reads config.dump's fields, containerd
 * its status.dump). CRIU ignores files it does not know in its images directory.
 */
export const KEPT_PREFIX = 'archive.';
const PLAIN_NAME = /^[A-Za-z0-9._-]+$/;
/** Members import handles itself, never kept as the engine's extras. */
const HANDLED = new Set<string>([ARCHIVE_NAMES.specDump, ARCHIVE_NAMES.statsDump, ARCHIVE_NAMES.dumpLog, ARCHIVE_NAMES.rootfsDiff, ARCHIVE_NAMES.deletedFiles, ARCHIVE_NAMES.ferryManifest]);

/** An engine's config.dump with the image the restored container should come from written into it (Podman's keys). */
function configWithImage(text: string, image: ContainerExportOptions['image']): string {
  if (!image) return text;
  try {
    const c = JSON.parse(text) as Record<string, unknown>;
    return JSON.stringify({ ...c, rootfsImageName: image.name, RawImageName: image.name, ...(image.id ? { rootfsImageID: image.id } : {}) }, null, 2);
  } catch {
    return text;
  }
}

export interface ContainerExportOptions {
  compression?: Compression;
  includeRootfs?: boolean;
  /** The image Podman should create the restored container from (`podman container restore --import` requires one). */
  image?: { name: string; id?: string };
}
export interface ContainerExportResult { file: string; snapshot: string; members: string[]; archiveBytes: number; durationMs: number }

export async function exportContainerArchive(store: Store, snapshot: string, file: string, opts: ContainerExportOptions = {}): Promise<ContainerExportResult> {
  const started = Date.now();
  const { manifest, dir } = await store.get(snapshot);
  if (!isContainerManifest(manifest)) {
    throw new FerryError('ERR_USAGE', `snapshot ${snapshot} is of a process, not a container: the Podman layout is for containers`, { hint: 'use `ferry export` for process snapshots' });
  }
  const t = manifest.target;
  const pack = tar.pack();
  const members: string[] = [];
  const add = (name: string, body: string | Buffer) => { members.push(name); pack.entry({ name, mode: 0o600 }, body); };
  const addFile = async (name: string, path: string): Promise<void> => {
    const { size } = await stat(path);
    members.push(name);
    await new Promise<void>((ok, bad) => {
      const sink = pack.entry({ name, size, mode: 0o600 }, (err) => (err ? bad(err) : ok()));
      createReadStream(path).on('error', bad).pipe(sink as unknown as Writable);
    });
  };
  const out = createWriteStream(file, { mode: 0o600 });
  const compressor = opts.compression === 'none' ? new PassThrough() : opts.compression === 'gzip' ? createGzip() : new CompressStream();
  const done = pipeline(pack as unknown as Readable, compressor, out);
  let tmp: string | undefined;
  try {
    const spec = await readFile(join(dir, SPEC_DUMP), 'utf8');
    const names = (await readdir(dir)).sort();
    const kept = new Set(names.filter((n) => n.startsWith(KEPT_PREFIX)).map((n) => n.slice(KEPT_PREFIX.length)));
    // The engine's own config.dump when the snapshot came from one (with --image written in), else ferry's.
    add(ARCHIVE_NAMES.configDump, kept.has(ARCHIVE_NAMES.configDump)
      ? configWithImage(await readFile(join(dir, `${KEPT_PREFIX}${ARCHIVE_NAMES.configDump}`), 'utf8'), opts.image)
      : JSON.stringify({
        id: t.id, name: t.id, rootfsImageName: opts.image?.name ?? '', RawImageName: opts.image?.name ?? '',
        ...(opts.image?.id ? { rootfsImageID: opts.image.id } : {}), runtime: t.runtime, createdTime: manifest.createdAt,
        checkpointedTime: manifest.createdAt, ferrySnapshot: manifest.id,
      }, null, 2));
    add(ARCHIVE_NAMES.specDump, spec);
    if (!kept.has(ARCHIVE_NAMES.networkStatus)) add(ARCHIVE_NAMES.networkStatus, '{}');
    add(ARCHIVE_NAMES.ferryManifest, JSON.stringify(manifest, null, 2));
    for (const name of names) {
      if (name === 'manifest.json' || name === SPEC_DUMP || name === `${KEPT_PREFIX}${ARCHIVE_NAMES.configDump}`) continue;
      if (name.startsWith(KEPT_PREFIX)) { await addFile(name.slice(KEPT_PREFIX.length), join(dir, name)); continue; }
      await addFile(TOP_LEVEL.has(name) ? name : `${ARCHIVE_NAMES.checkpointDir}/${name}`, join(dir, name));
    }
    if (opts.includeRootfs) {
      tmp = await mkdtemp(join(store.root, '.tmp-rootfs-'));
      const diff = join(tmp, ARCHIVE_NAMES.rootfsDiff);
      await run('tar', ['-C', t.rootfs, '--numeric-owner', '-cf', diff, '.'], { maxBuffer: 16 << 20 });
      await addFile(ARCHIVE_NAMES.rootfsDiff, diff);
      add(ARCHIVE_NAMES.deletedFiles, '[]');
    }
    pack.finalize();
    await done;
  } catch (err) {
    pack.destroy(err as Error);
    await done.catch(() => undefined);
    await rm(file, { force: true });
    throw err;
  } finally {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  }
  return { file, snapshot, members, archiveBytes: (await stat(file)).size, durationMs: Date.now() - started };
}

export interface ContainerImportOptions {
  name?: string;
  tier?: Tier;
  /** Where the container's bundle is (or, with a rootfs-diff.tar in the archive, where to create it). */
  bundle?: string;
}
export interface ContainerImportResult {
  snapshot: string;
  /** Who wrote the archive: ferry (its manifest is inside), CRI-O or containerd (a kubelet checkpoint), else Podman. */
  source: 'ferry' | 'podman' | 'cri-o' | 'containerd';
  /** The container's id in the snapshot (restore uses it unless --as). */
  container: string;
  bundle: string;
  rootfsUnpacked: boolean;
  /** Who the container was in Kubernetes (from spec.dump's annotations), for a kubelet checkpoint. */
  kubernetes?: KubernetesIdentity;
  /** The kubelet's archive name, parsed (`checkpoint-<pod>_<namespace>-<container>-<time>.tar`). */
  kubeletArchive?: { pod: string; time: string };
  durationMs: number;
}

/** Imports a Podman/CRI-O container checkpoint archive (or one ferry exported) as a ferry snapshot. */
export async function importContainerArchive(store: Store, file: string, opts: ContainerImportOptions = {}, criu = new CriuClient()): Promise<ContainerImportResult> {
  const started = Date.now();
  const tier = opts.tier ?? 'disk';
  const pending = await store.begin(tier, opts.name);
  const side = await mkdtemp(join(store.root, '.tmp-import-'));
  try {
    const texts: Record<string, string> = {};
    let hasRootfs = false;
    const otherMembers = new Set<string>();
    /** The engine's own top-level members, held aside until we know whether ferry wrote the archive. */
    const extras: string[] = [];
    const extract = tar.extract();
    const consumed = (async () => {
      for await (const entry of extract) {
        const name = entry.header.name.replace(/^\.\//, '').replace(/\/$/, '');
        const inCheckpoint = name.startsWith(`${ARCHIVE_NAMES.checkpointDir}/`) ? name.slice(ARCHIVE_NAMES.checkpointDir.length + 1) : undefined;
        if (entry.header.type === 'directory' || name === ARCHIVE_NAMES.checkpointDir) { entry.resume(); continue; }
        if (entry.header.type !== 'file') throw new FerryError('ERR_ARCHIVE_INVALID', `${basename(file)}: member ${name} is a ${entry.header.type}, not a file`);
        let target: string | undefined;
        if (inCheckpoint !== undefined) {
          if (!/^[A-Za-z0-9._-]+$/.test(inCheckpoint) || inCheckpoint === 'manifest.json') throw new FerryError('ERR_ARCHIVE_INVALID', `${basename(file)}: unexpected member ${name}`);
          target = join(pending.dir, inCheckpoint);
        } else if (name === ARCHIVE_NAMES.statsDump || name === ARCHIVE_NAMES.dumpLog) {
          target = join(pending.dir, name);
        } else if (name === ARCHIVE_NAMES.rootfsDiff) {
          target = join(side, name);
          hasRootfs = true;
        } else if ([ARCHIVE_NAMES.configDump, ARCHIVE_NAMES.specDump, ARCHIVE_NAMES.ferryManifest, ARCHIVE_NAMES.networkStatus, ARCHIVE_NAMES.deletedFiles].includes(name as never)) {
          const chunks: Buffer[] = [];
          for await (const c of entry) chunks.push(c as Buffer);
          texts[name] = Buffer.concat(chunks).toString('utf8');
          if (!HANDLED.has(name)) { extras.push(name); await writeFile(join(side, `${KEPT_PREFIX}${name}`), texts[name] ?? '', { mode: 0o600 }); }
          continue;
        } else if (PLAIN_NAME.test(name) && !HANDLED.has(name) && !extras.includes(name)) {
          otherMembers.add(name);
          extras.push(name);
          target = join(side, `${KEPT_PREFIX}${name}`);
        } else {
          otherMembers.add(name);
          entry.resume(); // other engines' extras (artifacts, ctr.log, bind.mounts, containerd's status.dump, …)
          continue;
        }
        await pipeline(entry, createWriteStream(target, { mode: 0o600 }));
      }
    })();
    await Promise.all([pipeline(createReadStream(file), await decompressorFor(file), extract as unknown as Writable), consumed]).catch((err: unknown) => {
      if (err instanceof FerryError) throw err;
      throw new FerryError('ERR_ARCHIVE_INVALID', `${basename(file)} is not a readable checkpoint archive: ${(err as Error).message}`, { cause: err });
    });
    const specText = texts[ARCHIVE_NAMES.specDump];
    const configText = texts[ARCHIVE_NAMES.configDump];
    if (specText === undefined || configText === undefined) {
      throw new FerryError('ERR_ARCHIVE_INVALID', `${basename(file)} lacks ${specText === undefined ? 'spec.dump' : 'config.dump'}: not a container checkpoint archive`, {
        hint: 'give an archive from `podman container checkpoint --export` or `ferry container-archive export`',
      });
    }
    await writeFile(join(pending.dir, SPEC_DUMP), specText);
    const spec = JSON.parse(specText) as OciSpec;
    const config = JSON.parse(configText) as { id?: string; name?: string; runtime?: string; createdTime?: string };
    const ferryText = texts[ARCHIVE_NAMES.ferryManifest];
    const ferryManifest = ferryText ? JSON.parse(ferryText) as SnapshotManifest : undefined;
    const previous = ferryManifest && isContainerManifest(ferryManifest) ? ferryManifest.target : undefined;

    let bundle = opts.bundle ?? previous?.bundle ?? '';
    let rootfs = previous?.rootfs ?? '';
    let rootfsUnpacked = false;
    if (opts.bundle) {
      // A bundle for the imported container: spec.dump as its config.json; the rootfs from
      // rootfs-diff.tar when the archive carries one and the bundle has none yet, else the
      // bundle's own rootfs/ (e.g. the image's files, for a Podman archive), else spec.dump's.
      bundle = opts.bundle;
      const rootPath = spec.root?.path ?? 'rootfs';
      const bundleHasRootfs = (await stat(join(bundle, 'rootfs')).catch(() => undefined)) !== undefined;
      rootfs = rootPath.startsWith('/') && !hasRootfs && !bundleHasRootfs ? rootPath : join(bundle, 'rootfs');
      await mkdir(bundle, { recursive: true });
      if (hasRootfs && !bundleHasRootfs) {
        await mkdir(rootfs, { recursive: true });
        await run('tar', ['-C', rootfs, '--numeric-owner', '-xf', join(side, ARCHIVE_NAMES.rootfsDiff)]);
        rootfsUnpacked = true;
      }
      const own = { ...spec, root: { ...(spec.root ?? {}), path: rootfs } };
      await writeFile(join(bundle, 'config.json'), JSON.stringify(own, null, 2));
    }
    // The engine's extras: all of a foreign archive's; of ferry's, those its snapshot had kept.
    for (const name of extras) {
      const kept = `${KEPT_PREFIX}${name}`;
      if (previous && !ferryManifest?.files[kept]) continue;
      await rename(join(side, kept), join(pending.dir, kept));
    }
    const files = await checksumDir(pending.dir);
    if (previous && ferryManifest) {
      for (const [name, f] of Object.entries(ferryManifest.files)) {
        // (an engine's config.dump is written back with --image's name in it: not byte for byte)
        if (name === `${KEPT_PREFIX}${ARCHIVE_NAMES.configDump}`) continue;
        const got = files[name];
        if (ferryManifest.algorithm === HASH_ALGORITHM && (!got || got.hash !== f.hash || got.size !== f.size)) {
          throw new FerryError('ERR_SNAPSHOT_CORRUPT', `${basename(file)}: ${name} ${got ? 'differs from the checksum ferry recorded' : 'is missing'}`, {
            hint: 'the archive was damaged or changed after export; export it again',
          });
        }
      }
    }
    let stdio: string[] = previous?.stdio ?? [];
    if (!previous) stdio = JSON.parse(await readFile(join(pending.dir, DESCRIPTORS), 'utf8').catch(() => '[]')) as string[];
    const specAnnotations = (typeof spec['annotations'] === 'object' && spec['annotations'] !== null ? spec['annotations'] : undefined) as Record<string, string> | undefined;
    const kubernetes = kubernetesIdentity(specAnnotations);
    const source: ContainerImportResult['source'] = previous ? 'ferry'
      : otherMembers.has('status.dump') ? 'containerd'
        // (Podman's specs carry some io.kubernetes.cri-o.* annotations too; the manager says who it is.)
        : specAnnotations?.['io.container.manager'] === 'cri-o' || (specAnnotations?.['io.kubernetes.cri-o.ContainerType'] !== undefined && specAnnotations['io.container.manager'] !== 'libpod') ? 'cri-o' : 'podman';
    const runtime = previous?.runtime ?? (config.runtime && isRuntime(basename(config.runtime)) ? basename(config.runtime) as 'runc' | 'crun' : 'runc');
    const target: ContainerTarget = previous ? { ...previous, bundle, rootfs: rootfs || previous.rootfs } : {
      kind: 'container', id: kubernetes ? containerIdFor(kubernetes) : config.name || config.id || 'imported', runtime, runtimeRoot: runtime === 'runc' ? '/run/runc' : '/run/crun',
      driver: 'runtime', bundle, rootfs, pid: 0, workload: undefined, command: spec.process?.args ?? [],
      ownPidNamespace: ownNamespaces(spec).includes('pid'), namespaces: ownNamespaces(spec), stdio,
      externalMounts: (spec.mounts ?? []).filter((m) => isBindMount(m) && m.source).map((m) => ({ key: m.destination, source: m.source ?? '' })),
    };
    const manifest: SnapshotManifest = {
      format: 1, id: pending.id, name: opts.name, parent: undefined, tier, createdAt: previous ? ferryManifest!.createdAt : (config.createdTime ?? new Date().toISOString()),
      target,
      host: previous ? ferryManifest!.host : await hostFacts(),
      // A Podman archive does not say which CRIU wrote it: it is taken to be this host's.
      criu: previous ? ferryManifest!.criu : { version: (await criu.version()).text },
      options: previous ? ferryManifest!.options : { tcpEstablished: false, extUnixSk: false, fileLocks: false, shellJob: false },
      stats: await readDumpStats(pending.dir).catch(() => undefined),
      timings: previous ? ferryManifest!.timings : { totalMs: 0, criuMs: 0, checksumMs: 0 },
      bytes: Object.values(files).reduce((a, f) => a + f.size, 0),
      algorithm: HASH_ALGORITHM,
      files,
    };
    await pending.commit(manifest);
    const kubelet = parseKubeletArchiveName(basename(file));
    return {
      snapshot: pending.id, source, container: target.id, bundle, rootfsUnpacked,
      ...(kubernetes ? { kubernetes } : {}), ...(kubelet ? { kubeletArchive: { pod: kubelet.pod, time: kubelet.time } } : {}),
      durationMs: Date.now() - started,
    };
  } catch (err) {
    await pending.abandon().catch(() => undefined);
    throw err;
  } finally {
    await rm(side, { recursive: true, force: true });
  }
}
