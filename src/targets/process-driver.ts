import { readRestoreStats } from '../criu/images/stats.js';
import { FerryError } from '../util/errors.js';
import type { DumpCall, LiveTarget, RestoreCall, RestoredTarget, TargetDriver, TargetRef, DriverPaths } from './driver.js';
import { checkCheckpointable } from './process.js';
import { dumpCriuOptions, restoreCriuOptions, type RecordedOptions } from './recorded-options.js';
import { readWorkload, recordWorkload, workloadIsRunning, type WorkloadRecord } from './run.js';
import { workloadRestoreFds } from './workload-files.js';

/** What resolving a process tree found: its `ferry run` record, when it is one. */
export interface ProcessFacts { workload: WorkloadRecord | undefined }

/** A process tree by pid, or a workload started with `ferry run`; ferry drives CRIU itself. */
export const processDriver: TargetDriver<ProcessFacts> = {
  name: 'process',
  ownsCriu: true,

  async resolve(ref: TargetRef, paths: DriverPaths, options: RecordedOptions): Promise<LiveTarget<ProcessFacts>> {
    let pid: number;
    let workload: WorkloadRecord | undefined;
    if (ref.kind === 'process') {
      pid = ref.pid;
    } else if (ref.kind === 'workload') {
      workload = await readWorkload(paths.workloadsDir, ref.name);
      if (!workload) {
        throw new FerryError('ERR_NO_WORKLOAD', `no pid or workload named '${ref.name}'`, { hint: 'give a pid, or the name of a workload started with `ferry run` (`ferry ps` lists them)' });
      }
      // The recorded pid, only while it is still the recorded process (pid_max wraps: a later
      // process may have the pid, and must not be frozen in the workload's name).
      if (!(await workloadIsRunning(workload))) {
        throw new FerryError('ERR_WORKLOAD_NOT_RUNNING', `workload '${ref.name}' is not running (its process ${workload.pid} ${workload.stoppedAt ? `was stopped at ${workload.stoppedAt}` : 'has exited'})`, {
          hint: `\`ferry ps\` shows its state; restore one of its snapshots (\`ferry snapshots ls\`) or start it again with \`ferry run --name ${ref.name} -- …\``,
        });
      }
      pid = workload.pid;
    } else {
      throw new FerryError('ERR_USAGE', `container:${ref.id} is a container, not a process`);
    }
    const info = await checkCheckpointable(pid, { shellJob: options.shellJob });
    return {
      driver: 'process',
      rootPid: pid,
      lockKey: `pid-${pid}`,
      label: `pid ${pid} (${info.comm})`,
      record: { kind: 'process', pid, workload: workload?.name, command: info.command, ownPidNamespace: info.nsPid === 1 },
      private: { workload },
    };
  },

  async dump(live, call: DumpCall): Promise<void> {
    await call.criu.dump({
      pid: live.rootPid,
      imagesDir: call.imagesDir,
      workDir: call.workDir,
      ...(call.leaveRunning ? { leaveRunning: true } : {}),
      ...dumpCriuOptions(call.options),
      ...(call.lazyPages ? { lazyPages: true, pageServer: { port: call.lazyPages.port } } : {}),
    }, call.handlers, call.control);
  },

  async preflightRestore(call: RestoreCall): Promise<void> {
    const t = call.manifest.target;
    if (t.kind !== 'process') throw new FerryError('ERR_USAGE', `snapshot ${call.manifest.id} is not of a process`);
    // Restoring a workload that still runs would make two copies under one name: the copy must
    // be asked for by a new name (--as), and a name never moves silently.
    const name = call.as ?? t.workload;
    if (name === undefined) return;
    const rec = await readWorkload(call.paths.workloadsDir, name);
    if (rec && await workloadIsRunning(rec)) {
      throw new FerryError('ERR_WORKLOAD_RUNNING', `workload '${name}' is still running (pid ${rec.pid}); restoring ${call.manifest.id} would start a second copy`, {
        hint: call.as !== undefined ? `pick another name with --as NAME, or stop '${name}' first (\`ferry stop ${name}\`)` : `stop it first (\`ferry stop ${name}\`), or restore the copy under a new name with --as NAME (or --clone)`,
      });
    }
  },

  async restore(call: RestoreCall): Promise<RestoredTarget> {
    const t = call.manifest.target;
    if (t.kind !== 'process') throw new FerryError('ERR_USAGE', `snapshot ${call.manifest.id} is not of a process`);
    const name = call.as ?? t.workload;
    // A `ferry run` workload's logs are this store's (under the restored name), handed to CRIU
    // in place of the recorded paths, which need not exist here (another store or host).
    const logs = await workloadRestoreFds(call.paths.workloadsDir, t, call.dir, name);
    const r = await call.criu.restore({
      imagesDir: call.dir,
      workDir: call.workDir,
      ...restoreCriuOptions(call.manifest.options, call.extra),
      ...(logs.inheritFds.length ? { inheritFds: logs.inheritFds } : {}),
    }, call.handlers, call.control).finally(() => logs.close());
    if (name !== undefined) {
      const old = t.workload !== undefined ? await readWorkload(call.paths.workloadsDir, t.workload) : undefined;
      await recordWorkload(call.paths.workloadsDir, {
        name,
        pid: r.pid,
        command: old?.command ?? t.command,
        stdout: logs.stdout ?? old?.stdout ?? '',
        stderr: logs.stderr ?? old?.stderr ?? '',
        startedAt: old?.startedAt ?? call.manifest.createdAt,
        restoredFrom: call.manifest.id,
        restoredAt: new Date().toISOString(),
      });
    }
    return { pid: r.pid, logPath: r.logPath, stats: await readRestoreStats(call.workDir), name };
  },
};
