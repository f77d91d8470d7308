import { randomBytes } from 'node:crypto';
import { PeerClient } from '../migrate/peer.js';
import { sendImages } from '../migrate/send-images.js';
import type { SnapshotManifest } from '../store/manifest.js';
import { hostFacts } from '../targets/host.js';
import { FerryError } from '../util/errors.js';

/**
 * Clones on another host (`ferry clone … --to HOST`), over the migration protocol of the
 * destination's agent: for each copy, a preflight (its CRIU, CPU, space, and that no workload of
 * that name runs there), the snapshot's images sent (send-images.ts: checked chunk by chunk and
 * file by file as they arrive), a restore held at CRIU's post-restore, and the commit. The copy
 * travels under its new name (the images' target names the workload it is restored as); the
 * original here is never touched. A copy that fails is aborted there (the destination removes
 * what it received and any held copy).
 */
export interface PeerTarget { url: string; token: string | undefined }

export interface RemoteClone { pid: number; name: string }

export async function cloneToPeer(o: {
  manifest: SnapshotManifest;
  dir: string;
  peer: PeerTarget;
  names: string[];
  interrupt?: AbortSignal;
  say?: (line: string) => void;
  /** Called with each copy as it commits (so a later failure can list what runs). */
  onClone?: (c: RemoteClone) => void;
}): Promise<RemoteClone[]> {
  const t = o.manifest.target;
  if (t.kind !== 'process') throw new FerryError('ERR_USAGE', `clone --to: ${o.manifest.id} is not a process snapshot`);
  const peer = new PeerClient(o.peer.url, o.peer.token);
  const host = await hostFacts();
  const out: RemoteClone[] = [];
  for (const name of o.names) {
    const id = `m-${randomBytes(8).toString('hex')}`;
    o.say?.(`sending ${o.manifest.id} to ${o.peer.url} as ${name}`);
    await peer.preflight(id, {
      strategy: 'cold', criuVersion: o.manifest.criu.version, host,
      target: { kind: 'process', ownPidNamespace: t.ownPidNamespace, pids: [], workload: name },
      bytes: o.manifest.bytes, tier: 'memory',
    }, o.interrupt);
    try {
      const sent = await sendImages({
        dir: o.dir,
        meta: { target: { ...t, workload: name }, options: o.manifest.options, criuVersion: o.manifest.criu.version, name: undefined, host: o.manifest.host, criuMs: o.manifest.timings.criuMs },
        url: o.peer.url, token: o.peer.token, migrationId: id,
        ...(o.interrupt ? { signal: o.interrupt } : {}),
      });
      await peer.restore(id, sent.snapshot, o.interrupt);
      const done = await peer.commit(id);
      const c = { pid: done.pid, name: done.name ?? name };
      out.push(c);
      o.onClone?.(c);
    } catch (err) {
      await peer.abort(id, `the clone failed: ${err instanceof Error ? err.message : String(err)}`).catch(() => undefined);
      throw err;
    }
  }
  return out;
}
