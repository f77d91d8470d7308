/** Readers (and the few writers ferry needs) for CRIU's image files. */
export {
  IMG_COMMON_MAGIC, IMG_SERVICE_MAGIC, RAW_IMAGE_MAGIC, IMAGE_KINDS, imageKindOf, magicName, formatMagic,
  type ImageKind, type ImageKindInfo, type ImageFraming,
} from './magic.js';
export {
  ERR_IMAGE_FORMAT, decodeImage, encodeImage, readImageEntries, writeImageFile, imageFormatError,
  type ImageEntry,
} from './framing.js';
export { readDumpStats, readRestoreStats, STATS_DUMP_FILE, STATS_RESTORE_FILE, type DumpStats, type RestoreStats } from './stats.js';
export {
  readInventory, INVENTORY_FILE, CRIU_IMAGES_V1_1, type Inventory, type RootIds, type LsmTypeName,
} from './inventory.js';
export { readPstree, PSTREE_FILE, type PstreeProcess } from './pstree.js';
export {
  readPagemap, writePagemap, presentRuns, pagesFileOffset, pagemapPath, pagesPath,
  PE_PARENT, PE_LAZY, PE_PRESENT, PAGE_SIZE,
  type Pagemap, type PagemapRun, type PresentRun,
} from './pagemap.js';
export { listImages, type ImageFile } from './list.js';
export { readCore, type ThreadCore, type Creds, type TaskStateName } from './core.js';
export { readMm, type Mm, type Vma } from './mm.js';
export { readTaskIds, type TaskIds } from './ids.js';
export { readFdinfo, type FdinfoRecord } from './fdinfo.js';
export { readFiles, fdTypeName, type FdTypeName } from './files.js';
export { describeFile, type FileDescription } from './describe.js';
export { readTaskMemory, type MemoryRead } from './task-memory.js';
export { inspectImages, type InspectOptions } from './inspect.js';
export type * from './inspect-types.js';
