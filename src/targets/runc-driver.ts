import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError } from '../util/errors.js';
import { containerState, runRuntime, runtimeBinary, runtimeEnv } from './container.js';
import { checkpointError, restoreError } from './container-errors.js';
import { containerLogDir, containerRestorePlan, preflightContainerRestore, resolveContainer, restoredContainer, type ContainerFacts } from './container-driver.js';
import { SPEC_DUMP, stdioRedirections } from './container-io.js';
import type { TargetDriver } from './driver.js';
import { runcFlags, runcUnsupported } from './recorded-options.js';

/**
 * runc containers, through runc's own `checkpoint`/`restore` (runc knows its cgroups, mounts,
 * namespaces and stdio), with ferry's CRIU first on PATH, the images written straight into the
 * snapshot being built and CRIU's log into ferry's work dir. runc runs CRIU itself, so CRIU's
 * notifications do not reach ferry (ownsCriu: false).
 */
export const runcDriver: TargetDriver<ContainerFacts> = {
  name: 'runc',
  ownsCriu: false,

  async resolve(ref, _paths, options) {
    const unsupported = runcUnsupported(options);
    if (unsupported.length) {
      throw new FerryError('ERR_BAD_OPTION', `runc cannot pass ${unsupported.join(', ')} to CRIU`, { hint: 'drop those options for runc containers' });
    }
    return resolveContainer(ref, 'runc');
  },

  async dump(live, call) {
    const t = live.record;
    if (t.kind !== 'container') throw new FerryError('ERR_USAGE', 'not a container');
    const args = ['checkpoint', '--image-path', call.imagesDir, '--work-path', call.workDir, ...(call.leaveRunning ? ['--leave-running'] : []), ...runcFlags(call.options)];
    const r = await runRuntime('runc', live.private.root, [...args, t.id], 300_000);
    if (r.code !== 0) throw await checkpointError(t.id, 'runc', live.private.root, join(call.workDir, 'dump.log'), t.stdio, r.stderr);
    await writeFile(join(call.imagesDir, SPEC_DUMP), live.private.specText);
  },

  async preflightRestore(call) {
    const unsupported = runcUnsupported(call.manifest.options, call.extra);
    if (unsupported.length) throw new FerryError('ERR_BAD_OPTION', `runc cannot pass ${unsupported.join(', ')} to CRIU`, { hint: 'restore it with crun, or without those options' });
    await preflightContainerRestore(containerRestorePlan(call, 'runc'));
  },

  async restore(call) {
    const plan = containerRestorePlan(call, 'runc');
    await containerLogDir(plan);
    const runtimeLog = join(call.workDir, 'runc.log');
    const args = ['--root', plan.root, '--log', runtimeLog, 'restore', '--detach', '--image-path', call.dir, '--work-path', call.workDir,
      '--bundle', plan.bundle, ...runcFlags(call.manifest.options), plan.id];
    // runc hands its own stdio to the restored container (for pipes: by inode, `--inherit-fd`),
    // so runc runs under a shell that makes those pipes; the `cat`s outlive runc.
    const script = `"$@" ${stdioRedirections(plan.target.stdio)}`;
    const code = await new Promise<number>((ok, bad) => {
      const child = spawn('bash', ['-c', script, 'ferry-restore', runtimeBinary('runc'), ...args], {
        env: { ...runtimeEnv(), FERRY_LOG1: plan.stdoutLog, FERRY_LOG2: plan.stderrLog }, stdio: 'ignore',
      });
      const watchdog = setTimeout(() => child.kill('SIGKILL'), 300_000);
      child.once('error', (e) => { clearTimeout(watchdog); bad(e); });
      child.once('exit', (c) => { clearTimeout(watchdog); ok(c ?? 1); });
    });
    if (code !== 0) {
      const said = await readFile(runtimeLog, 'utf8').catch(() => '');
      const msg = said.split('\n').filter(Boolean).map((l) => { try { return String((JSON.parse(l) as { msg?: string }).msg ?? l); } catch { return l; } }).at(-1);
      throw await restoreError(plan.id, plan.logPath, msg);
    }
    const state = await containerState('runc', plan.root, plan.id);
    if (!state || state.status !== 'running') {
      throw new FerryError('ERR_CONTAINER_RESTORE', `runc restored container ${plan.id}, but it is ${state?.status ?? 'gone'}`, { detail: `full log: ${plan.logPath}` });
    }
    return restoredContainer(plan, state.pid, call.workDir);
  },
};
