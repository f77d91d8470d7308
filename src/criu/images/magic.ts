/**
 * The CRIU image kinds ferry knows: their magics (criu/include/magic.h) and file names
 * (criu/image-desc.c). One table; everything else in this directory reads from it.
 *
 * A regular image starts with IMG_COMMON_MAGIC then its type magic; a service file (stats-*,
 * irmap-cache) starts with IMG_SERVICE_MAGIC; inventory.img has no head magic at all; raw
 * images (pages-*.img, ...) have no magic and no framing.
 */

/** Head magic of every regular image since image version 2 ("v1.1"). */
export const IMG_COMMON_MAGIC = 0x54564319;
/** Head magic of CRIU's service files (stats-dump, stats-restore, irmap-cache). */
export const IMG_SERVICE_MAGIC = 0x55105940;
/** Raw images carry no magic at all. */
export const RAW_IMAGE_MAGIC = 0;

/** The framing of one image kind, as the framing reader needs it. */
export interface ImageFraming {
  /** CRIU's name for the magic, e.g. 'PAGEMAP' (used in messages). */
  readonly name: string;
  /** The head magic before the type magic; undefined when there is none (inventory). */
  readonly headMagic: number | undefined;
  /** The type magic. */
  readonly magic: number;
}

export interface ImageKindInfo {
  /** CRIU's name for the magic, e.g. 'PAGEMAP'. */
  readonly name: string;
  /** The head magic; undefined for inventory.img and for raw images. */
  readonly headMagic: number | undefined;
  /** The type magic; RAW_IMAGE_MAGIC (0) for raw images. */
  readonly magic: number;
  /** True for raw images: no magic, no entries (e.g. pages-*.img). */
  readonly raw: boolean;
  /**
   * The file name. Group 1, when present, is the id in the name (a pid, a pages id, an
   * object id; decimal, or hex for the kinds CRIU names with %x).
   */
  readonly file: RegExp;
}

const common = (name: string, magic: number, file: RegExp): ImageKindInfo =>
  ({ name, headMagic: IMG_COMMON_MAGIC, magic, raw: false, file });
const service = (name: string, magic: number, file: RegExp): ImageKindInfo =>
  ({ name, headMagic: IMG_SERVICE_MAGIC, magic, raw: false, file });
const raw = (name: string, file: RegExp): ImageKindInfo =>
  ({ name, headMagic: undefined, magic: RAW_IMAGE_MAGIC, raw: true, file });

/**
 * The image kinds ferry reads or recognises. Order matters for name matching: the more
 * specific pattern comes first (pagemap-shmem before pagemap, netns-ct before netns).
 */
export const IMAGE_KINDS = {
  'inventory': { name: 'INVENTORY', headMagic: undefined, magic: 0x58313116, raw: false, file: /^inventory\.img$/ },
  'stats-dump': service('STATS', 0x57093306, /^stats-dump$/),
  'stats-restore': service('STATS', 0x57093306, /^stats-restore$/),
  'irmap-cache': service('IRMAP_CACHE', 0x57004059, /^irmap-cache$/),
  'pstree': common('PSTREE', 0x50273030, /^pstree\.img$/),
  'pagemap-shmem': common('PAGEMAP', 0x56084025, /^pagemap-shmem-(\d+)\.img$/),
  'pagemap': common('PAGEMAP', 0x56084025, /^pagemap-(\d+)\.img$/),
  'pages': raw('PAGES', /^pages-(\d+)\.img$/),
  'core': common('CORE', 0x55053847, /^core-(\d+)\.img$/),
  'mm': common('MM', 0x57492820, /^mm-(\d+)\.img$/),
  'ids': common('IDS', 0x54432030, /^ids-(\d+)\.img$/),
  'fs': common('FS', 0x51403912, /^fs-(\d+)\.img$/),
  'fdinfo': common('FDINFO', 0x56213732, /^fdinfo-(\d+)\.img$/),
  'files': common('FILES', 0x56303138, /^files\.img$/),
  'pipes-data': common('PIPES_DATA', 0x56453709, /^pipes-data\.img$/),
  'unixsk': common('UNIXSK', 0x54373943, /^unixsk\.img$/),
  'inetsk': common('INETSK', 0x56443851, /^inetsk\.img$/),
  'tcp-stream': common('TCP_STREAM', 0x51465506, /^tcp-stream-([0-9a-f]+)\.img$/),
  'ghost-file': common('GHOST_FILE', 0x52583605, /^ghost-file-([0-9a-f]+)\.img$/),
  'mountpoints': common('MNTS', 0x55563928, /^mountpoints-(\d+)\.img$/),
  'netns-ct': raw('NETNF_CT', /^netns-ct-(\d+)\.img$/),
  'netns-exp': raw('NETNF_EXP', /^netns-exp-(\d+)\.img$/),
  'netns': common('NETNS', 0x55933752, /^netns-(\d+)\.img$/),
  'netdev': common('NETDEV', 0x57373951, /^netdev-(\d+)\.img$/),
  'cgroup': common('CGROUP', 0x59383330, /^cgroup\.img$/),
  'seccomp': common('SECCOMP', 0x64413049, /^seccomp\.img$/),
  'timens': common('TIMENS', 0x43114433, /^timens-(\d+)\.img$/),
  'cpuinfo': common('CPUINFO', 0x61404013, /^cpuinfo\.img$/),
  'tty-info': common('TTY_INFO', 0x59453036, /^tty-info\.img$/),
  'tty-data': common('TTY_DATA', 0x59413026, /^tty-data\.img$/),
  'memfd': common('MEMFD_INODE', 0x48453499, /^memfd\.img$/),
  'sk-queues': common('SK_QUEUES', 0x56264026, /^sk-queues\.img$/),
  'fifo-data': common('FIFO_DATA', 0x59333054, /^fifo-data\.img$/),
  'filelocks': common('FILE_LOCKS', 0x54323616, /^filelocks\.img$/),
  'utsns': common('UTSNS', 0x54473203, /^utsns-(\d+)\.img$/),
  'ipcns-var': common('IPC_VAR', 0x53115007, /^ipcns-var-(\d+)\.img$/),
  'userns': common('USERNS', 0x55474906, /^userns-(\d+)\.img$/),
  'pidns': common('PIDNS', 0x61157326, /^pidns-(\d+)\.img$/),
} as const satisfies Record<string, ImageKindInfo>;

export type ImageKind = keyof typeof IMAGE_KINDS;

/** The kind of an image file, from its name; undefined when ferry does not know it. */
export function imageKindOf(fileName: string): { kind: ImageKind; id: string | undefined } | undefined {
  for (const [kind, info] of Object.entries(IMAGE_KINDS) as [ImageKind, ImageKindInfo][]) {
    const m = info.file.exec(fileName);
    if (m) return { kind, id: m[1] };
  }
  return undefined;
}

/** CRIU's name for a magic value, for error messages ('PAGEMAP', 'IMG_COMMON', ...). */
export function magicName(value: number): string | undefined {
  if (value === IMG_COMMON_MAGIC) return 'IMG_COMMON';
  if (value === IMG_SERVICE_MAGIC) return 'IMG_SERVICE';
  for (const info of Object.values(IMAGE_KINDS) as ImageKindInfo[]) {
    if (!info.raw && info.magic === value) return info.name;
  }
  return undefined;
}

/** `0x56084025 (PAGEMAP)`, for messages. */
export function formatMagic(value: number): string {
  const name = magicName(value);
  const hex = `0x${value.toString(16).padStart(8, '0')}`;
  return name ? `${hex} (${name})` : hex;
}
