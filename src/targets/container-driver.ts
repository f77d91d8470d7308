import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { readRestoreStats } from '../criu/images/stats.js';
import type { ContainerTarget } from '../store/manifest.js';
import { FerryError } from '../util/errors.js';
import { containerState, findContainer, runtimeRoot, ownNamespaces, readBundleSpec, runtimeBinary, stdioDescriptors, type OciSpec, type Runtime } from './container.js';
import { externalMountsOf } from './container-io.js';
import type { LiveTarget, RestoreCall, RestoredTarget, TargetRef } from './driver.js';

/** What resolving a container found, beyond its manifest record. */
export interface ContainerFacts { root: string; specText: string; spec: OciSpec }

/** Finds a running container of `runtime` and gathers what its dump needs (shared by runc and crun). */
export async function resolveContainer(ref: TargetRef, runtime: Runtime): Promise<LiveTarget<ContainerFacts>> {
  if (ref.kind !== 'container') throw new FerryError('ERR_USAGE', 'a process target was given to a container driver');
  const { root, state } = await findContainer(ref.id, runtime, ref.runtimeRoot);
  // A paused container (frozen by its runtime) is dumped as it is, and stays paused after a
  // --leave-running dump: a runc migration holds it that way.
  if ((state.status !== 'running' && state.status !== 'paused') || state.pid <= 0) {
    throw new FerryError('ERR_CONTAINER_STATE', `container ${ref.id} is ${state.status}, not running`, {
      hint: `only a running (or paused) container can be checkpointed; start it (\`${runtime} start ${ref.id}\`)`,
    });
  }
  const { spec, text: specText, rootfs } = await readBundleSpec(state.bundle);
  const namespaces = ownNamespaces(spec);
  const record: ContainerTarget = {
    kind: 'container', id: ref.id, runtime, runtimeRoot: root, driver: runtime === 'runc' ? 'runtime' : 'ferry',
    bundle: state.bundle, rootfs, pid: state.pid, workload: undefined, command: spec.process?.args ?? [],
    ownPidNamespace: namespaces.includes('pid'), namespaces,
    stdio: await stdioDescriptors(state.pid),
    externalMounts: await externalMountsOf(state.pid, spec.mounts ?? []),
  };
  return {
    driver: runtime, rootPid: state.pid, lockKey: `container-${runtime}-${ref.id}`, label: `container ${ref.id} (${runtime})`,
    record, private: { root, specText, spec },
  };
}

/** Where a container restore goes, resolved from the snapshot and the request. */
export interface ContainerRestorePlan {
  target: ContainerTarget;
  runtime: Runtime;
  root: string;
  id: string;
  bundle: string;
  stdoutLog: string;
  stderrLog: string;
  logPath: string;
}

export function containerRestorePlan(call: RestoreCall, runtime: Runtime): ContainerRestorePlan {
  const t = call.manifest.target;
  if (t.kind !== 'container') throw new FerryError('ERR_USAGE', `snapshot ${call.manifest.id} is of a process, not a container`, { hint: 'restore it without --bundle/--runtime' });
  const root = call.runtimeRoot ?? (runtime === t.runtime ? t.runtimeRoot : runtimeRoot(runtime));
  const id = call.as ?? t.id;
  const logDir = join(call.paths.containersDir, id);
  return {
    target: t, runtime, root, id, bundle: call.bundle ?? t.bundle,
    stdoutLog: join(logDir, 'stdout.log'), stderrLog: join(logDir, 'stderr.log'), logPath: join(call.workDir, 'restore.log'),
  };
}

/** Refusals shared by runc and crun restores: the runtime missing, the id in use, no bundle. */
export async function preflightContainerRestore(plan: ContainerRestorePlan): Promise<void> {
  runtimeBinary(plan.runtime);
  const existing = await containerState(plan.runtime, plan.root, plan.id);
  if (existing) {
    throw new FerryError('ERR_CONTAINER_EXISTS', `a container named '${plan.id}' already exists in ${plan.runtime} (${existing.status}, pid ${existing.pid})`, {
      hint: `restore under another id with --as container:<new-id>, or remove it (\`${plan.runtime} delete -f ${plan.id}\`)`,
    });
  }
  await readBundleSpec(plan.bundle);
}

/** The end of every container restore: its log dir exists, the result names where output goes. */
export async function containerLogDir(plan: ContainerRestorePlan): Promise<void> {
  await mkdir(join(plan.stdoutLog, '..'), { recursive: true, mode: 0o700 });
}

export async function restoredContainer(plan: ContainerRestorePlan, pid: number, workDir: string): Promise<RestoredTarget> {
  return {
    pid, logPath: plan.logPath, stats: await readRestoreStats(workDir).catch(() => undefined), name: plan.id,
    container: { id: plan.id, runtime: plan.runtime, stdout: plan.stdoutLog, stderr: plan.stderrLog },
  };
}

