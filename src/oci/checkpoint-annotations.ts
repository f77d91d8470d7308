/**
 * The annotations that mark an OCI image as a container *checkpoint image*, on its manifest.
 * Each engine looks for its own name key (facts from their sources):
 *
 * - Podman (`podman container checkpoint --create-image`, `podman container restore IMAGE`):
 *   io.podman.annotations.checkpoint.name, plus rawImageName, rootfsImageID, rootfsImageName,
 *   podman.version, criu.version (CRIU's version as a number, 40201 for 4.2.1), runtime.name,
 *   runtime.version, conmon.version, host.arch, host.kernel, cgroups.version,
 *   distribution.name, distribution.version.
 * - CRI-O (a container whose image is a checkpoint image is restored from it):
 *   io.kubernetes.cri-o.annotations.checkpoint.name (+ rawImageName, rootfsImageID,
 *   rootfsImageName, criu.version, …).
 * - containerd 2.x's CRI and checkpointctl's current library: org.criu.checkpoint.container.name
 *   (+ org.criu.checkpoint.rootfsImageName, engine.name, criu.version, host.arch, …); containerd
 *   reads the annotations of the object the image name points to (here: the manifest).
 *
 * ferry writes all three families (a restore needs only its engine's name key; the others are
 * information), and on import accepts an image carrying any of them.
 */
export const CHECKPOINT_NAME_KEYS = [
  'io.podman.annotations.checkpoint.name',
  'io.kubernetes.cri-o.annotations.checkpoint.name',
  'org.criu.checkpoint.container.name',
  // checkpointctl's `build` (some releases) — read only
  'checkpointctl.annotation.checkpoint.name',
] as const;

export interface CheckpointImageInfo {
  /** The checkpointed container's name. */
  name: string;
  /** The image the container's files come from (Podman and CRI-O create the restored container from it). */
  rootfsImageName?: string | undefined;
  rootfsImageId?: string | undefined;
  runtime: string;
  /** CRIU's version text, e.g. "4.2.1" (or "Version: 4.2.1"). */
  criuVersion: string;
  kernel: string;
  arch: string;
  engineVersion: string;
  pod?: string | undefined;
  namespace?: string | undefined;
}

/** CRIU's version as the number Podman records (major·10000 + minor·100 + sublevel), or undefined. */
export function criuVersionNumber(text: string): number | undefined {
  const m = /(\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
  if (!m) return undefined;
  return Number(m[1]) * 10000 + Number(m[2]) * 100 + Number(m[3] ?? 0);
}

export function checkpointAnnotations(i: CheckpointImageInfo): Record<string, string> {
  const criu = criuVersionNumber(i.criuVersion);
  const a: Record<string, string> = {};
  const set = (key: string, value: string | number | undefined) => { if (value !== undefined && value !== '') a[key] = String(value); };
  for (const prefix of ['io.podman.annotations.checkpoint', 'io.kubernetes.cri-o.annotations.checkpoint']) {
    set(`${prefix}.name`, i.name);
    set(`${prefix}.rawImageName`, i.rootfsImageName);
    set(`${prefix}.rootfsImageName`, i.rootfsImageName);
    set(`${prefix}.rootfsImageID`, i.rootfsImageId);
    set(`${prefix}.criu.version`, criu);
    set(`${prefix}.runtime.name`, i.runtime);
    set(`${prefix}.host.arch`, i.arch);
    set(`${prefix}.host.kernel`, i.kernel);
  }
  set('org.criu.checkpoint.container.name', i.name);
  set('org.criu.checkpoint.rootfsImageName', i.rootfsImageName);
  set('org.criu.checkpoint.rawImageName', i.rootfsImageName);
  set('org.criu.checkpoint.rootfsImageID', i.rootfsImageId);
  set('org.criu.checkpoint.engine.name', 'ferry');
  set('org.criu.checkpoint.engine.version', i.engineVersion);
  set('org.criu.checkpoint.runtime.name', i.runtime);
  set('org.criu.checkpoint.criu.version', criu);
  set('org.criu.checkpoint.host.arch', i.arch);
  set('org.criu.checkpoint.host.kernel', i.kernel);
  set('org.criu.checkpoint.pod.name', i.pod);
  set('org.criu.checkpoint.pod.namespace', i.namespace);
  return a;
}

/** The checkpointed container's name when the annotations mark a checkpoint image, else undefined. */
export function checkpointNameOf(annotations: Record<string, string> | undefined): string | undefined {
  for (const k of CHECKPOINT_NAME_KEYS) {
    const v = annotations?.[k];
    if (typeof v === 'string' && v !== '') return v;
  }
  return undefined;
}
