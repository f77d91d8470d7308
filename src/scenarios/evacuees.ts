import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Engine } from '../engine/engine.js';
import { containerState, runtimeRoot, type Runtime } from '../targets/container.js';
import { addressIsUp } from '../targets/workload-address.js';
import { listWorkloads, workloadIsRunning } from '../targets/workload-record.js';

/** One thing a host evacuation moves: a `ferry run` workload or a container ferry knows. */
export interface Evacuand {
  /** The checkpoint/migrate target: the workload's name, or `container:ID`. */
  target: string;
  kind: 'process' | 'container';
  /** Containers: the runtime it runs in (checkpointed with it). */
  runtime?: Runtime;
  /** Workloads: its service address, while it has one up. */
  address?: { address: string; prefix: number; dev: string };
}

/**
 * What runs on this host under ferry: every running `ferry run` workload of the store (as `ferry
 * ps` shows them), and every running container ferry knows — one it restored (its logs are under
 * `<store>/containers/ID`), one it checkpointed (a snapshot of it is in the store), or one in a
 * runtime state directory set for ferry ($FERRY_RUNC_ROOT / $FERRY_CRUN_ROOT) — looked up in this
 * host's runtime state directories. Sorted by target, so
 * a report reads the same twice.
 */
export async function listEvacuands(engine: Engine): Promise<Evacuand[]> {
  const out: Evacuand[] = [];
  for (const rec of await listWorkloads(engine.store.workloadsDir)) {
    if (!await workloadIsRunning(rec)) continue;
    const a = addressIsUp(rec) ? rec.address : undefined;
    out.push({ target: rec.name, kind: 'process', ...(a ? { address: { address: a.address, prefix: a.prefix, dev: a.dev } } : {}) });
  }
  const ids = new Map<string, Runtime | undefined>();
  for (const id of await readdir(join(engine.store.root, 'containers')).catch(() => [] as string[])) ids.set(id, undefined);
  for (const { manifest: m } of await engine.list()) if (m.target.kind === 'container') ids.set(m.target.id, m.target.runtime);
  // A runtime state directory set for ferry ($FERRY_CRUN_ROOT / $FERRY_RUNC_ROOT: ferry's own, as
  // on a testbed host) holds only ferry's containers; the runtimes' defaults are shared and are not read.
  for (const rt of ['crun', 'runc'] as const) {
    if (!process.env[rt === 'crun' ? 'FERRY_CRUN_ROOT' : 'FERRY_RUNC_ROOT']) continue;
    for (const id of await readdir(runtimeRoot(rt)).catch(() => [] as string[])) if (/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(id) && !ids.has(id)) ids.set(id, rt);
  }
  for (const [id, known] of ids) {
    for (const rt of known ? [known] : (['crun', 'runc'] as const)) {
      const st = await containerState(rt, runtimeRoot(rt), id).catch(() => undefined);
      if (st?.status === 'running') {
        out.push({ target: `container:${id}`, kind: 'container', runtime: rt });
        break;
      }
    }
  }
  return out.sort((a, b) => a.target.localeCompare(b.target));
}
