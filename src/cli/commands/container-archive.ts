import { exportContainerArchive, importContainerArchive, type ContainerImportResult } from '../../engine/container-archive.js';
import {
  exportCheckpointImage, importCheckpointImage, sniffArchive, type ImageDestination, type ImageSource,
} from '../../engine/oci-checkpoint-image.js';
import { Store } from '../../store/store.js';
import { formatBytes } from '../../util/format.js';
import { FerryError } from '../../util/errors.js';
import { emitJson, parse, type Command } from '../command.js';

const HELP = { hint: 'see `ferry container-archive --help`' };

/** `--to oci-archive:FILE | containers-storage` (a FILE may itself hold ':', as the kubelet's names do). */
export function parseDestination(to: string | undefined, file: string | undefined): ImageDestination {
  if (to === undefined) return file !== undefined ? { kind: 'oci-archive', file } : { kind: 'containers-storage' };
  if (file !== undefined) throw new FerryError('ERR_USAGE', 'container-archive export: give the output either as FILE or as --to, not both', HELP);
  if (to === 'containers-storage') return { kind: 'containers-storage' };
  if (to.startsWith('oci-archive:') && to.length > 'oci-archive:'.length) return { kind: 'oci-archive', file: to.slice('oci-archive:'.length) };
  throw new FerryError('ERR_USAGE', `container-archive export: --to must be oci-archive:FILE or containers-storage, not '${to}'`, HELP);
}

/**
 * An import source: `containers-storage:NAME`, `oci-archive:FILE`, or a FILE (an oci-archive or a
 * checkpoint archive, told apart by their first member). Only those two prefixes are
 * transports: any other text is a path, colons and all (the kubelet's archives are named
 * `checkpoint-<pod>_<namespace>-<container>-2024-02-29T18:28:17Z.tar`).
 */
export function parseSource(arg: string): ImageSource | { kind: 'file'; file: string } {
  if (arg.startsWith('containers-storage:')) {
    const ref = arg.slice('containers-storage:'.length);
    if (!ref) throw new FerryError('ERR_USAGE', 'container-archive import: containers-storage: needs an image name (containers-storage:NAME[:TAG])', HELP);
    return { kind: 'containers-storage', ref };
  }
  if (arg.startsWith('oci-archive:') && arg.length > 'oci-archive:'.length) return { kind: 'oci-archive', file: arg.slice('oci-archive:'.length) };
  return { kind: 'file', file: arg };
}

function importLine(arg: string, r: ContainerImportResult & { image?: { ref: string | undefined; checkpointName: string } }): string {
  const from = r.image ? `checkpoint image ${r.image.ref ?? arg} (of ${r.image.checkpointName})` : `${arg} (${r.source} archive)`;
  const k8s = r.kubernetes ? `; Kubernetes container ${r.kubernetes.namespace}/${r.kubernetes.pod}/${r.kubernetes.container}` : '';
  return `imported ${from} as ${r.snapshot}, container ${r.container}, in ${r.durationMs} ms${k8s}${r.rootfsUnpacked ? `; rootfs unpacked into ${r.bundle}/rootfs` : ''}\n`;
}

export const command: Command = {
  summary: 'Export a container snapshot as a Podman/CRI-O checkpoint archive or a checkpoint OCI image,\n' +
    'or import either (from Podman, CRI-O/containerd through the kubelet, or ferry) as a snapshot.',
  usage: 'ferry container-archive export <snapshot> <file> [--compress zstd|gzip|none] [--include-rootfs] [--image NAME [--image-id ID]] [--json]\n' +
    '       ferry container-archive export <snapshot> --oci-image NAME[:TAG] [--to oci-archive:FILE|containers-storage] [--compress gzip|none]\n' +
    '                                     [--include-rootfs] [--image NAME [--image-id ID]] [--json]\n' +
    '       ferry container-archive import <file|oci-archive:FILE|containers-storage:NAME[:TAG]> [--name SNAP] [--tier memory|disk] [--bundle DIR] [--json]\n' +
    '  --include-rootfs puts the container\'s rootfs in rootfs-diff.tar; import --bundle DIR then unpacks it into DIR/rootfs\n' +
    '  and writes DIR/config.json from spec.dump (restore with --bundle DIR). --image names the image holding the\n' +
    '  container\'s files, which `podman container restore` needs.\n' +
    '  --oci-image writes a checkpoint image (one layer holding the archive, Podman/CRI-O/containerd annotations) to an\n' +
    '  oci-archive file or into the local containers-storage through podman (the default); `podman container restore NAME`\n' +
    '  restores it. import reads a checkpoint archive (Podman --export, the kubelet\'s checkpoint-<pod>_<ns>-<ctr>-<time>.tar,\n' +
    '  ferry\'s), an oci-archive holding a checkpoint image, or a checkpoint image from containers-storage by name.',
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, {
      compress: { type: 'string' },
      'include-rootfs': { type: 'boolean' },
      name: { type: 'string' },
      tier: { type: 'string' },
      bundle: { type: 'string' },
      image: { type: 'string' },
      'image-id': { type: 'string' },
      'oci-image': { type: 'string' },
      to: { type: 'string' },
    }, 'container-archive');
    const [sub, ...rest] = positionals;
    const store = new Store({ root: ctx.store });
    const image = values.image !== undefined ? { image: { name: values.image, ...(values['image-id'] !== undefined ? { id: values['image-id'] } : {}) } } : {};
    if (sub === 'export') {
      const [snapshot, file, ...extra] = rest;
      if (values['oci-image'] !== undefined) {
        if (!snapshot || extra.length) throw new FerryError('ERR_USAGE', 'container-archive export --oci-image: give a snapshot id (and the output as --to or FILE)', HELP);
        const to = parseDestination(values.to, file);
        const compression = values.compress ?? 'gzip';
        if (compression !== 'gzip' && compression !== 'none') {
          throw new FerryError('ERR_USAGE', `container-archive: an image layer is compressed with gzip or none, not '${compression}'`, { hint: 'gzip is what every runtime and registry reads; none is faster' });
        }
        const r = await exportCheckpointImage(store, snapshot, {
          ref: values['oci-image'], to, compression, ...(values['include-rootfs'] ? { includeRootfs: true } : {}), ...image,
        });
        if (ctx.json) emitJson(ctx.out, r);
        else {
          ctx.out.stdout(`${r.ref}\n`);
          const where = r.to.kind === 'oci-archive' ? `${r.to.file} (oci-archive, ${formatBytes(r.archiveBytes ?? 0)})` : `containers-storage (image ${r.imageId?.slice(0, 12) ?? '?'})`;
          ctx.out.stderr(`exported ${snapshot} as checkpoint image ${r.ref} to ${where}: layer ${formatBytes(r.layer.bytes)}, in ${r.durationMs} ms\n`);
          if (r.rootfsImage === undefined) {
            ctx.out.stderr('note: no base image is named (--image NAME): ferry imports this image, but Podman and CRI-O need the image the container\'s files came from to restore it\n');
          }
        }
        return 0;
      }
      if (values.to !== undefined) throw new FerryError('ERR_USAGE', 'container-archive export: --to is for --oci-image (an archive is written to FILE)', HELP);
      if (!snapshot || !file || extra.length) throw new FerryError('ERR_USAGE', 'container-archive export: give a snapshot id and an output file', HELP);
      const compression = values.compress ?? 'zstd';
      if (compression !== 'zstd' && compression !== 'gzip' && compression !== 'none') {
        throw new FerryError('ERR_USAGE', `container-archive: --compress must be zstd, gzip or none, not '${compression}'`, HELP);
      }
      const r = await exportContainerArchive(store, snapshot, file, { compression, ...(values['include-rootfs'] ? { includeRootfs: true } : {}), ...image });
      if (ctx.json) emitJson(ctx.out, r);
      else {
        ctx.out.stdout(`${r.file}\n`);
        ctx.out.stderr(`exported ${snapshot}: ${r.members.length} members, ${formatBytes(r.archiveBytes)} in ${r.durationMs} ms\n`);
      }
      return 0;
    }
    if (sub === 'import') {
      const [arg, ...extra] = rest;
      if (!arg || extra.length) throw new FerryError('ERR_USAGE', 'container-archive import: give one archive file, oci-archive:FILE or containers-storage:NAME', HELP);
      for (const o of ['oci-image', 'to', 'compress', 'image', 'image-id'] as const) {
        if (values[o] !== undefined) throw new FerryError('ERR_USAGE', `container-archive import: --${o} is an export option`, HELP);
      }
      const tier = values.tier ?? 'disk';
      if (tier !== 'memory' && tier !== 'disk') throw new FerryError('ERR_USAGE', `container-archive: --tier must be memory or disk, not '${tier}'`, HELP);
      const opts = { tier, ...(values.name !== undefined ? { name: values.name } : {}), ...(values.bundle !== undefined ? { bundle: values.bundle } : {}) } as const;
      const source = parseSource(arg);
      const r = source.kind === 'file' && await sniffArchive(source.file) === 'checkpoint-archive'
        ? await importContainerArchive(store, source.file, opts)
        : await importCheckpointImage(store, source.kind === 'file' ? { kind: 'oci-archive', file: source.file } : source, opts);
      if (ctx.json) emitJson(ctx.out, r);
      else {
        ctx.out.stdout(`${r.snapshot}\n`);
        ctx.out.stderr(importLine(arg, r));
      }
      return 0;
    }
    throw new FerryError('ERR_USAGE', `container-archive: unknown subcommand '${sub ?? ''}'`, { hint: 'ferry container-archive export|import …' });
  },
};
