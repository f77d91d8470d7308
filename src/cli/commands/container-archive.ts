import { exportContainerArchive, importContainerArchive } from '../../engine/container-archive.js';
import { Store } from '../../store/store.js';
import { formatBytes } from '../../util/format.js';
import { FerryError } from '../../util/errors.js';
import { parse, type Command } from '../command.js';
import { printJson } from '../output.js';

export const command: Command = {
  summary: 'Export a container snapshot as a Podman/CRI-O checkpoint archive (checkpoint/, config.dump, spec.dump, …),\n' +
    'or import such an archive (from Podman or from ferry) as a snapshot.',
  usage: 'ferry container-archive export <snapshot> <file> [--compress zstd|gzip|none] [--include-rootfs] [--image NAME [--image-id ID]] [--json]\n' +
    '       ferry container-archive import <file> [--name SNAP] [--tier memory|disk] [--bundle DIR] [--json]\n' +
    '  --include-rootfs puts the container\'s rootfs in rootfs-diff.tar; import --bundle DIR then unpacks it into DIR/rootfs\n' +
    '  and writes DIR/config.json from spec.dump (restore with --bundle DIR). --image names the Podman image holding the\n' +
    '  container\'s files, which `podman container restore --import` needs.',
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, {
      compress: { type: 'string' },
      'include-rootfs': { type: 'boolean' },
      name: { type: 'string' },
      tier: { type: 'string' },
      bundle: { type: 'string' },
      image: { type: 'string' },
      'image-id': { type: 'string' },
    }, 'container-archive');
    const [sub, ...rest] = positionals;
    const store = new Store({ root: ctx.store });
    if (sub === 'export') {
      const [snapshot, file, ...extra] = rest;
      if (!snapshot || !file || extra.length) throw new FerryError('ERR_USAGE', 'container-archive export: give a snapshot id and an output file', { hint: 'see `ferry container-archive --help`' });
      const compression = values.compress ?? 'zstd';
      if (compression !== 'zstd' && compression !== 'gzip' && compression !== 'none') {
        throw new FerryError('ERR_USAGE', `container-archive: --compress must be zstd, gzip or none, not '${compression}'`, { hint: 'see `ferry container-archive --help`' });
      }
      const r = await exportContainerArchive(store, snapshot, file, {
        compression, ...(values['include-rootfs'] ? { includeRootfs: true } : {}),
        ...(values.image !== undefined ? { image: { name: values.image, ...(values['image-id'] !== undefined ? { id: values['image-id'] } : {}) } } : {}),
      });
      if (ctx.json) printJson(r);
      else {
        process.stdout.write(`${r.file}\n`);
        process.stderr.write(`exported ${snapshot}: ${r.members.length} members, ${formatBytes(r.archiveBytes)} in ${r.durationMs} ms\n`);
      }
      return 0;
    }
    if (sub === 'import') {
      const [file, ...extra] = rest;
      if (!file || extra.length) throw new FerryError('ERR_USAGE', 'container-archive import: give one archive file', { hint: 'see `ferry container-archive --help`' });
      const tier = values.tier ?? 'disk';
      if (tier !== 'memory' && tier !== 'disk') throw new FerryError('ERR_USAGE', `container-archive: --tier must be memory or disk, not '${tier}'`, { hint: 'see `ferry container-archive --help`' });
      const r = await importContainerArchive(store, file, {
        tier, ...(values.name !== undefined ? { name: values.name } : {}), ...(values.bundle !== undefined ? { bundle: values.bundle } : {}),
      });
      if (ctx.json) printJson(r);
      else {
        process.stdout.write(`${r.snapshot}\n`);
        process.stderr.write(`imported ${file} (${r.source} archive) as ${r.snapshot} in ${r.durationMs} ms${r.rootfsUnpacked ? `; rootfs unpacked into ${r.bundle}/rootfs` : ''}\n`);
      }
      return 0;
    }
    throw new FerryError('ERR_USAGE', `container-archive: unknown subcommand '${sub ?? ''}'`, { hint: 'ferry container-archive export|import …' });
  },
};
