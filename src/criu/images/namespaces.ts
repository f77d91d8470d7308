/**
 * Which namespaces the dumped tasks are in, and which of them the tree owns. CRIU dumps a
 * namespace's own image only when the tree's namespace differs from CRIU's (its root_ns_mask):
 * netns-N.img (net), mountpoints-N.img (mnt), utsns-N.img, ipcns-var-N.img, userns-N.img,
 * pidns-N.img, timens-N.img with N the namespace id. Without its own time namespace CRIU
 * writes timens-0.img with the clocks at dump time, and restore (on kernels with time
 * namespaces) creates one so that CLOCK_MONOTONIC and CLOCK_BOOTTIME continue from there.
 * cgroup namespaces have no image of their own (they are in cgroup.img) and are listed by id only.
 */
import type { RootIds } from './inventory.js';
import type { NamespaceIds, NamespaceKind, NamespacesSummary } from './inspect-types.js';
import type { ImageKind } from './magic.js';

const ID_FIELDS: readonly [NamespaceKind, keyof RootIds][] = [
  ['pid', 'pid_ns_id'], ['net', 'net_ns_id'], ['mnt', 'mnt_ns_id'], ['ipc', 'ipc_ns_id'],
  ['uts', 'uts_ns_id'], ['user', 'user_ns_id'], ['cgroup', 'cgroup_ns_id'], ['time', 'time_ns_id'],
];

/** The image kind whose presence (with the namespace id in its name) means "dumped". */
const OWN_IMAGE: Readonly<Partial<Record<ImageKind, NamespaceKind>>> = {
  'netns': 'net', 'mountpoints': 'mnt', 'utsns': 'uts', 'ipcns-var': 'ipc', 'userns': 'user', 'pidns': 'pid', 'timens': 'time',
};

export function namespaceIds(ids: RootIds): NamespaceIds {
  const out: NamespaceIds = {};
  for (const [kind, field] of ID_FIELDS) {
    const v = ids[field];
    if (v !== undefined) out[kind] = v;
  }
  return out;
}

/**
 * The namespaces section from inventory root_ids, each task's ids-N.img, and the images in
 * the directory (kind and id of each).
 */
export function summariseNamespaces(
  root: RootIds | undefined,
  tasks: readonly { pid: number; ids: RootIds }[],
  images: readonly { kind: ImageKind | 'unknown'; id?: string }[],
): NamespacesSummary {
  const dumped: Partial<Record<NamespaceKind, number[]>> = {};
  let timeNamespaceOnRestore = false;
  for (const img of images) {
    if (img.kind === 'unknown' || img.id === undefined) continue;
    const kind = OWN_IMAGE[img.kind];
    if (kind === undefined) continue;
    const id = Number(img.id);
    if (kind === 'time' && id === 0) {
      timeNamespaceOnRestore = true;
      continue;
    }
    (dumped[kind] ??= []).push(id);
  }
  for (const ids of Object.values(dumped)) ids.sort((a, b) => a - b);
  const out: NamespacesSummary = {
    tasks: tasks.map((t) => ({ pid: t.pid, ids: namespaceIds(t.ids) })),
    dumped,
    own: ID_FIELDS.map(([kind]) => kind).filter((kind) => dumped[kind] !== undefined),
    timeNamespaceOnRestore,
  };
  if (root !== undefined) out.root = namespaceIds(root);
  return out;
}
