import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CriuClient, CRIU_MIN } from '../criu/client.js';
import { readPstree } from '../criu/images/pstree.js';
import { readRestoreStats, type RestoreStats } from '../criu/images/stats.js';
import { verifyChecksums } from '../store/checksums.js';
import { ancestors, checkParentLink } from '../store/chain.js';
import { Store } from '../store/store.js';
import { OperationRecorder, type OperationTelemetry } from '../telemetry/operation.js';
import { processInfo } from '../targets/process.js';
import { readWorkload, writeWorkload } from '../targets/run.js';
import { FerryError } from '../util/errors.js';
import { hostFacts } from './host.js';

export interface RestoreResult {
  pid: number;
  snapshot: string;
  stats: RestoreStats | undefined;
  timings: { totalMs: number; verifyMs: number; criuMs: number };
  logPath: string;
  /** Phase timings, CRIU's stats, host CPU/memory and the restored tree's RSS sampled while it ran. */
  telemetry: OperationTelemetry;
}

/**
 * Restores a snapshot, detached. Before CRIU runs: the images' checksums, the CRIU line,
 * the CPU features and the pids the snapshot needs are checked; each refusal says why and
 * what to do.
 */
export async function restore(store: Store, id: string, criu = new CriuClient()): Promise<RestoreResult> {
  return OperationRecorder.run('restore', (rec) => restoreRecorded(store, id, criu, rec));
}

async function restoreRecorded(store: Store, id: string, criu: CriuClient, rec: OperationRecorder): Promise<RestoreResult> {
  const started = Date.now();
  const { manifest, dir } = await store.get(id);
  if (manifest.target.kind !== 'process') {
    throw new FerryError('ERR_USAGE', `snapshot ${id} is of a container; the process restore cannot bring it back`, {
      hint: `restore it with \`ferry restore ${id}\` (optionally --as container:<new-id>), which hands containers to their runtime`,
    });
  }
  // The VERSION round trip with CRIU overlaps the checksum verification.
  const versionP = criu.requireVersion(CRIU_MIN.ferry, 'restores');
  versionP.catch(() => undefined);
  // A deduped snapshot reads pages from its chain: every snapshot in it is checked.
  const self = { manifest, dir };
  const chain = [self, ...await ancestors(store, self)];
  for (const s of chain) await checkParentLink(s);
  await Promise.all(chain.map((s) => verifyChecksums(s.dir, s.manifest.files, s.manifest.id, (s.manifest as { algorithm?: string }).algorithm ?? 'sha256')));
  const verifyMs = Date.now() - started;
  const version = await versionP;
  const line = (v: string) => v.split('.').slice(0, 2).join('.');
  if (line(version.text) !== line(manifest.criu.version)) {
    throw new FerryError('ERR_SNAPSHOT_INCOMPATIBLE', `snapshot ${id} was taken by CRIU ${manifest.criu.version}; this host runs CRIU ${version.text}`, {
      hint: `CRIU's image format differs between lines (${line(manifest.criu.version)} vs ${line(version.text)}); restore it on a host with CRIU ${line(manifest.criu.version)}.x`,
    });
  }
  const here = await hostFacts();
  if (here.arch !== manifest.host.arch) {
    throw new FerryError('ERR_SNAPSHOT_INCOMPATIBLE', `snapshot ${id} is for ${manifest.host.arch}; this host is ${here.arch}`);
  }
  const have = new Set(here.cpuFlags);
  const missing = manifest.host.cpuFlags.filter((f) => !have.has(f));
  if (missing.length) {
    throw new FerryError('ERR_SNAPSHOT_INCOMPATIBLE', `this CPU lacks features the snapshot's host had: ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', …' : ''}`, {
      hint: `restore on a host whose CPU has them (the snapshot was taken on ${manifest.host.hostname})`,
    });
  }
  if (!manifest.target.ownPidNamespace) {
    for (const p of await readPstree(dir)) {
      const live = await processInfo(p.pid);
      if (live) {
        throw new FerryError('ERR_PID_TAKEN', `pid ${p.pid}, which the snapshot needs, is in use by ${live.comm}`, {
          hint: 'the snapshot was taken from the host pid namespace, so its pids must be free: stop that process (often the original), or run workloads with `ferry run` so they get their own pid namespace',
        });
      }
    }
  }

  const workDir = join(store.root, 'logs', `restore-${id}-${Date.now()}`);
  await mkdir(workDir, { recursive: true, mode: 0o700 });
  const criuStarted = Date.now();
  const r = await criu.restore({
    imagesDir: dir,
    workDir,
    ...(manifest.options.tcpEstablished ? { tcpEstablished: true } : {}),
    ...(manifest.options.extUnixSk ? { extUnixSk: true } : {}),
    ...(manifest.options.fileLocks ? { fileLocks: true } : {}),
    ...(manifest.options.shellJob ? { shellJob: true } : {}),
  });
  const criuMs = Date.now() - criuStarted;
  if (manifest.target.workload) {
    const rec = await readWorkload(store.workloadsDir, manifest.target.workload);
    if (rec) await writeWorkload(store.workloadsDir, { ...rec, pid: r.pid, restoredFrom: id });
  }
  rec.watch(r.pid);
  const stats = await readRestoreStats(workDir);
  const timings = { totalMs: Date.now() - started, verifyMs, criuMs };
  const telemetry = rec.finish({ ok: true, criu: stats, phasesMs: { total: timings.totalMs, verify: verifyMs, criu: criuMs } });
  return { pid: r.pid, snapshot: id, stats, timings, logPath: r.logPath, telemetry };
}
