import { statfs } from 'node:fs/promises';
import { readPstree } from '../criu/images/pstree.js';
import { FerryError } from '../util/errors.js';
import { hostFacts, type HostFacts } from './host.js';
import { processInfo } from './process.js';

/** What the preflight needs to know about a snapshot (a subset of its manifest). */
export interface CompatSubject {
  id: string;
  criu: { version: string };
  host: HostFacts;
  target: { kind: string; ownPidNamespace: boolean };
  /** Bytes of its images (for the space check). */
  bytes: number;
}

/** CRIU's image format is stable within a line (major.minor). */
export function criuLine(version: string): string {
  return version.split('.').slice(0, 2).join('.');
}

/**
 * Can this host restore the snapshot? The checks every restore runs before CRIU starts, and
 * that a migration's destination runs before anything is frozen: CRIU line, architecture, CPU
 * features and, for snapshots from the host pid namespace, free pids. Each refusal names the
 * reason and the remedy. `imagesDir` (for the pids) may be omitted when the images are not
 * here yet; `here` defaults to this host's facts.
 */
export async function checkRestorable(
  s: CompatSubject,
  criuVersion: string,
  opts: { imagesDir?: string; here?: HostFacts; spaceDir?: string } = {},
): Promise<void> {
  if (criuLine(criuVersion) !== criuLine(s.criu.version)) {
    throw new FerryError('ERR_SNAPSHOT_INCOMPATIBLE', `snapshot ${s.id} was taken by CRIU ${s.criu.version}; this host runs CRIU ${criuVersion}`, {
      hint: `CRIU's image format differs between lines (${criuLine(s.criu.version)} vs ${criuLine(criuVersion)}); restore it on a host with CRIU ${criuLine(s.criu.version)}.x`,
    });
  }
  const here = opts.here ?? await hostFacts();
  if (here.arch !== s.host.arch) {
    throw new FerryError('ERR_SNAPSHOT_INCOMPATIBLE', `snapshot ${s.id} is for ${s.host.arch}; this host is ${here.arch}`, {
      hint: `restore it on a ${s.host.arch} host`,
    });
  }
  const have = new Set(here.cpuFlags);
  const missing = s.host.cpuFlags.filter((f) => !have.has(f));
  if (missing.length) {
    throw new FerryError('ERR_SNAPSHOT_INCOMPATIBLE', `this CPU lacks features the snapshot's host had: ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', …' : ''}`, {
      hint: `restore on a host whose CPU has them (the snapshot was taken on ${s.host.hostname})`,
    });
  }
  if (opts.spaceDir !== undefined) {
    const fs = await statfs(opts.spaceDir);
    const free = fs.bavail * fs.bsize;
    if (s.bytes > free) {
      throw new FerryError('ERR_STORE_FULL', `snapshot ${s.id} needs ${Math.ceil(s.bytes / 2 ** 20)} MiB; ${opts.spaceDir} has ${Math.floor(free / 2 ** 20)} MiB free`, {
        hint: 'free space there, or receive it into a store on a larger file system',
      });
    }
  }
  if (s.target.kind === 'process' && !s.target.ownPidNamespace && opts.imagesDir !== undefined) {
    for (const p of await readPstree(opts.imagesDir)) {
      const live = await processInfo(p.pid);
      if (live) {
        throw new FerryError('ERR_PID_TAKEN', `pid ${p.pid}, which the snapshot needs, is in use by ${live.comm}`, {
          hint: 'the snapshot was taken from the host pid namespace, so its pids must be free: stop that process (often the original), or start workloads with `ferry run` so they get their own pid namespace',
        });
      }
    }
  }
}
