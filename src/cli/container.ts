// The container side of `ferry checkpoint container:<id>` and `ferry restore <container snapshot>`:
// flag checks at the edge, then src/engine/container.ts; checkpoint.ts and restore.ts dispatch here.
import { checkpointContainer, restoreContainer } from '../engine/container.js';
import type { Tier } from '../store/manifest.js';
import { Store } from '../store/store.js';
import { isRuntime, parseContainerTarget, type Runtime } from '../targets/container.js';
import { FerryError } from '../util/errors.js';
import type { CommandContext } from './command.js';
import { printJson } from './output.js';
import { startProgress } from './progress.js';

export const CONTAINER_CHECKPOINT_USAGE = '       ferry checkpoint container:<id> [--runtime runc|crun] [--runtime-root DIR] [--name SNAP]\n' +
  '                  [--leave-running] [--tier memory|disk] [--tcp-established] [--ext-unix-sk] [--file-locks] [--json]';
export const CONTAINER_RESTORE_USAGE = '       ferry restore <container snapshot> [--as container:<new-id>] [--bundle DIR] [--runtime runc|crun] [--runtime-root DIR] [--json]';

export const CONTAINER_CHECKPOINT_OPTIONS = {
  runtime: { type: 'string' },
  'runtime-root': { type: 'string' },
} as const;
export const CONTAINER_RESTORE_OPTIONS = {
  as: { type: 'string' },
  bundle: { type: 'string' },
  runtime: { type: 'string' },
  'runtime-root': { type: 'string' },
} as const;

function runtimeOf(value: string | undefined, verb: string): Runtime | undefined {
  if (value === undefined) return undefined;
  if (!isRuntime(value)) throw new FerryError('ERR_USAGE', `${verb}: --runtime must be runc or crun, not '${value}'`, { hint: `see \`ferry ${verb} --help\`` });
  return value;
}

export interface ContainerCheckpointFlags {
  runtime?: string | undefined;
  'runtime-root'?: string | undefined;
  name?: string | undefined;
  'leave-running'?: boolean | undefined;
  'tcp-established'?: boolean | undefined;
  'ext-unix-sk'?: boolean | undefined;
  'file-locks'?: boolean | undefined;
  'shell-job'?: boolean | undefined;
}

export async function runContainerCheckpoint(id: string, v: ContainerCheckpointFlags, tier: Tier, ctx: CommandContext): Promise<number> {
  if (v['shell-job']) throw new FerryError('ERR_USAGE', 'checkpoint: --shell-job does not apply to containers (their init leads its own session)', { hint: 'drop --shell-job' });
  const runtime = runtimeOf(v.runtime, 'checkpoint');
  const stop = startProgress(`checkpointing container ${id}`, ctx.json);
  const r = await checkpointContainer(new Store({ root: ctx.store }), {
    id, tier,
    ...(runtime ? { runtime } : {}),
    ...(v['runtime-root'] !== undefined ? { runtimeRoot: v['runtime-root'] } : {}),
    ...(v.name !== undefined ? { name: v.name } : {}),
    ...(v['leave-running'] ? { leaveRunning: true } : {}),
    ...(v['tcp-established'] ? { tcpEstablished: true } : {}),
    ...(v['ext-unix-sk'] ? { extUnixSk: true } : {}),
    ...(v['file-locks'] ? { fileLocks: true } : {}),
  }).finally(stop);
  const m = r.manifest;
  if (ctx.json) {
    printJson({ snapshot: r.snapshot, tier: m.tier, container: { id: m.target.id, runtime: m.target.runtime, driver: m.target.driver, bundle: m.target.bundle },
      stats: m.stats ?? {}, timings: m.timings, bytesWritten: m.bytes });
  } else {
    const s = m.stats;
    process.stdout.write(`${r.snapshot}\n`);
    process.stderr.write(`checkpointed container ${id} (${m.target.runtime}, pid ${m.target.pid}) in ${m.timings.totalMs} ms` +
      `${s ? `, frozen ${(s.frozen_time / 1000).toFixed(1)} ms, ${s.pages_written} pages written` : ''}, ${m.bytes} bytes (${m.tier} tier)\n`);
  }
  return 0;
}

export interface ContainerRestoreFlags {
  as?: string | undefined;
  bundle?: string | undefined;
  runtime?: string | undefined;
  'runtime-root'?: string | undefined;
}

/** True when any container-only restore flag was given. */
export function hasContainerRestoreFlags(v: ContainerRestoreFlags): boolean {
  return v.as !== undefined || v.bundle !== undefined || v.runtime !== undefined || v['runtime-root'] !== undefined;
}

export async function runContainerRestore(snapshot: string, v: ContainerRestoreFlags, ctx: CommandContext): Promise<number> {
  const runtime = runtimeOf(v.runtime, 'restore');
  let as: string | undefined;
  if (v.as !== undefined) {
    as = parseContainerTarget(v.as.startsWith('container:') ? v.as : `container:${v.as}`);
  }
  const stop = startProgress(`restoring ${snapshot}`, ctx.json);
  const r = await restoreContainer(new Store({ root: ctx.store }), snapshot, {
    ...(as !== undefined ? { as } : {}),
    ...(v.bundle !== undefined ? { bundle: v.bundle } : {}),
    ...(runtime ? { runtime } : {}),
    ...(v['runtime-root'] !== undefined ? { runtimeRoot: v['runtime-root'] } : {}),
  }).finally(stop);
  if (ctx.json) {
    printJson({ container: r.id, runtime: r.runtime, pid: r.pid, snapshot: r.snapshot, stats: r.stats ?? {}, timings: r.timings, stdout: r.stdout, stderr: r.stderr });
  } else {
    process.stdout.write(`container:${r.id}\n`);
    process.stderr.write(`restored ${snapshot} as ${r.runtime} container ${r.id} (pid ${r.pid}) in ${r.timings.totalMs} ms ` +
      `(checksums ${r.timings.verifyMs} ms, restore ${r.timings.criuMs} ms); stdout/stderr → ${r.stdout}, ${r.stderr}\n`);
  }
  return 0;
}
