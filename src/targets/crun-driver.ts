import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CriuOperationError } from '../criu/errors.js';
import { FerryError } from '../util/errors.js';
import { adoptIntoCrun, freezerCgroup, isBindMount, readBundleSpec, runRuntime } from './container.js';
import { checkpointError, restoreError } from './container-errors.js';
import { containerLogDir, containerRestorePlan, preflightContainerRestore, resolveContainer, restoredContainer, type ContainerFacts } from './container-driver.js';
import { cgroupMountsFor, DESCRIPTORS, SPEC_DUMP, stdioPipes } from './container-io.js';
import type { TargetDriver } from './driver.js';
import { dumpCriuOptions, restoreCriuOptions } from './recorded-options.js';

const run = promisify(execFile);

/**
 * A cgroup v1 cpuset parent must have cpus and mems before a child can get any: the parent a
 * host restores under (FERRY_CGROUP_PARENT) is made with its root's.
 */
async function ensureCpusetParent(parent: string, leaf: string): Promise<void> {
  const base = '/sys/fs/cgroup/cpuset';
  if (!existsSync(join(base, 'cpuset.cpus'))) return; // no v1 cpuset hierarchy
  let path = base;
  const parts = parent.split('/').filter(Boolean);
  for (const [i, part] of [...parts, leaf].entries()) {
    const up = path;
    path = join(path, part);
    // (the leaf is CRIU's to make; one left by an earlier failed restore is completed here)
    if (i === parts.length && !existsSync(path)) break;
    await mkdir(path, { recursive: true });
    for (const f of ['cpuset.cpus', 'cpuset.mems']) {
      if ((await readFile(join(path, f), 'utf8')).trim() === '') await writeFile(join(path, f), await readFile(join(up, f), 'utf8'));
    }
  }
}

/**
 * crun containers. Debian's crun 1.8.1 is built without CRIU support (`crun --version` lacks
 * +CRIU), so ferry drives CRIU itself with what crun would have sent (root, external bind
 * mounts, empty network namespace, freezer cgroup, stdio pipes by inode) and registers the
 * restored tree with crun as a container. CRIU's notifications reach the engine (ownsCriu).
 */
export const crunDriver: TargetDriver<ContainerFacts> = {
  name: 'crun',
  ownsCriu: true,

  resolve(ref) {
    return resolveContainer(ref, 'crun');
  },

  async dump(live, call) {
    const t = live.record;
    if (t.kind !== 'container') throw new FerryError('ERR_USAGE', 'not a container');
    try {
      await call.criu.dump({
        pid: live.rootPid,
        imagesDir: call.imagesDir,
        workDir: call.workDir,
        logFile: 'dump.log',
        root: t.rootfs,
        ...dumpCriuOptions(call.options),
        external: [...t.externalMounts.map((m) => `mnt[${m.key}]:${m.key}`), ...(call.options.external ?? [])],
        ...(t.namespaces.includes('network') ? { emptyNs: ['net'] as const } : {}),
        manageCgroupsMode: 'soft',
        ...(await freezerCgroup(live.rootPid).then((p) => (p ? { freezeCgroup: p } : {}))),
        // The container's own network namespace is not dumped (as runc does): nothing to lock
        // unless live TCP connections travel.
        ...(call.options.tcpEstablished ? {} : { networkLock: 'skip' as const }),
        ...(call.leaveRunning ? { leaveRunning: true } : {}),
      }, call.handlers, call.control);
    } catch (err) {
      if (err instanceof CriuOperationError) throw await checkpointError(t.id, 'crun', live.private.root, join(call.workDir, 'dump.log'), t.stdio, '', err);
      throw err;
    }
    await writeFile(join(call.imagesDir, DESCRIPTORS), JSON.stringify(t.stdio));
    await writeFile(join(call.imagesDir, SPEC_DUMP), live.private.specText);
    if (!call.leaveRunning) {
      // CRIU has killed the tree; crun still lists the container (stopped) and owns its cgroup.
      await runRuntime('crun', live.private.root, ['delete', '--force', t.id]);
    }
  },

  async preflightRestore(call) {
    await preflightContainerRestore(containerRestorePlan(call, 'crun'));
  },

  async restore(call) {
    const plan = containerRestorePlan(call, 'crun');
    await containerLogDir(plan);
    // Hosts sharing one kernel (the testbed) share its cgroups: each restores under its own parent,
    // or ending the original (by cgroup) would end the copy too.
    const parent = (process.env['FERRY_CGROUP_PARENT'] ?? '').replace(/\/+$/, '');
    const cgroupPath = `${parent}/${plan.id}`;
    if (parent) await ensureCpusetParent(parent, plan.id);
    const { spec, text: specText, rootfs } = await readBundleSpec(plan.bundle);
    // CRIU wants the root to be a mount point (runc bind-mounts the rootfs the same way).
    const mnt = join(call.workDir, 'root');
    await mkdir(mnt, { recursive: true });
    await run('mount', ['--bind', rootfs, mnt]);
    // Bind mounts come from the restore's bundle (a clone may bind other host directories).
    const binds = new Map((spec.mounts ?? []).filter((m) => isBindMount(m) && m.source).map((m) => [m.destination, m.source ?? '']));
    const external = await cgroupMountsFor(plan.target.externalMounts.map((m) => ({ key: m.key, source: binds.get(m.key) ?? m.source })), plan.id);
    const pipes = await stdioPipes(plan.target.stdio, plan.stdoutLog, plan.stderrLog);
    try {
      const inheritFds = pipes.fds.map((p) => ({ key: p.key, fd: p.fd }));
      const engineAfter = call.handlers['post-restore'];
      let restored: number;
      try {
        const r = await call.criu.restore({
          imagesDir: call.dir,
          workDir: call.workDir,
          logFile: 'restore.log',
          root: mnt,
          ...restoreCriuOptions(call.manifest.options, call.extra),
          external: [...external.map((m) => `mnt[${m.key}]:${m.source}`), ...(call.manifest.options.external ?? [])],
          manageCgroupsMode: 'soft',
          cgroupRoots: [{ path: cgroupPath }],
          ...(inheritFds.length ? { inheritFds } : {}),
          ...(call.manifest.options.tcpEstablished ? {} : { networkLock: 'skip' as const }),
        }, {
          ...call.handlers,
          // The empty network namespace comes with loopback down; bring it up as crun would.
          'post-restore': async (ctx) => {
            if (engineAfter) await engineAfter(ctx);
            if (ctx.pid && plan.target.namespaces.includes('network')) await run('nsenter', [`--net=/proc/${ctx.pid}/ns/net`, 'ip', 'link', 'set', 'lo', 'up']);
          },
        }, call.control);
        restored = r.pid;
      } catch (err) {
        if (err instanceof CriuOperationError) throw await restoreError(plan.id, plan.logPath, undefined, err);
        throw err;
      }
      await adoptIntoCrun(plan.root, plan.id, { pid: restored, bundle: plan.bundle, rootfs, specText, cgroupPath, stdio: plan.target.stdio });
      return await restoredContainer(plan, restored, call.workDir);
    } finally {
      pipes.close();
      await run('umount', ['-l', mnt]).catch(() => undefined);
      await rm(mnt, { recursive: true, force: true }).catch(() => undefined);
    }
  },
};
