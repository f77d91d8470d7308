import type { SnapshotManifest } from '../store/manifest.js';
import { FerryError } from '../util/errors.js';
import { findContainer, isRuntime, parseContainerTarget, type Runtime } from './container.js';
import { crunDriver } from './crun-driver.js';
import type { DriverPaths, LiveTarget, TargetDriver, TargetRef } from './driver.js';
import { processDriver } from './process-driver.js';
import type { RecordedOptions } from './recorded-options.js';
import { runcDriver } from './runc-driver.js';

/** Every target driver, by name. */
export const DRIVERS = { process: processDriver, runc: runcDriver, crun: crunDriver } as const;

/** The one place a snapshot's kind decides who restores it. */
export function driverForManifest(m: SnapshotManifest, runtime?: Runtime): TargetDriver {
  if (m.target.kind === 'process') {
    if (runtime !== undefined) throw new FerryError('ERR_USAGE', `snapshot ${m.id} is of a process; --runtime applies to container snapshots`, { hint: 'drop --runtime' });
    return DRIVERS.process;
  }
  return DRIVERS[runtime ?? m.target.runtime];
}

/**
 * What the user typed as a target: a pid, a `ferry run` workload name, or `container:<id>`
 * (with an optional runtime and runtime root).
 */
export function parseTargetRef(text: string | number, container: { runtime?: string | undefined; runtimeRoot?: string | undefined } = {}): TargetRef {
  if (typeof text === 'number' || /^\d+$/.test(text)) {
    const pid = Number(text);
    if (!Number.isSafeInteger(pid) || pid <= 0) throw new FerryError('ERR_USAGE', `'${text}' is not a valid pid`);
    return { kind: 'process', pid };
  }
  const id = parseContainerTarget(text);
  if (id === undefined) {
    if (container.runtime !== undefined || container.runtimeRoot !== undefined) {
      throw new FerryError('ERR_USAGE', '--runtime and --runtime-root apply to container:<id> targets only');
    }
    return { kind: 'workload', name: text };
  }
  let runtime: Runtime | undefined;
  if (container.runtime !== undefined) {
    if (!isRuntime(container.runtime)) throw new FerryError('ERR_USAGE', `--runtime must be runc or crun, not '${container.runtime}'`);
    runtime = container.runtime;
  }
  return { kind: 'container', id, ...(runtime ? { runtime } : {}), ...(container.runtimeRoot !== undefined ? { runtimeRoot: container.runtimeRoot } : {}) };
}

/** Finds the target live through its driver (a container's runtime is found when not given). */
export async function resolveLive(ref: TargetRef, paths: DriverPaths, options: RecordedOptions): Promise<{ driver: TargetDriver; live: LiveTarget }> {
  if (ref.kind !== 'container') return { driver: DRIVERS.process, live: await DRIVERS.process.resolve(ref, paths, options) };
  if (options.shellJob) throw new FerryError('ERR_USAGE', '--shell-job does not apply to containers (their init leads its own session)', { hint: 'drop --shell-job' });
  const runtime = ref.runtime ?? (await findContainer(ref.id, undefined, ref.runtimeRoot)).runtime;
  const driver = DRIVERS[runtime] as TargetDriver;
  return { driver, live: await driver.resolve({ ...ref, runtime }, paths, options) };
}
