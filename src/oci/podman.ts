import { execFile } from 'node:child_process';
import { FerryError } from '../util/errors.js';

/**
 * Local containers-storage (/var/lib/containers/storage), the image store Podman, Buildah and
 * CRI-O share, reached through Podman's command line: ferry does not link containers/storage,
 * and Podman is what both ends of the tests use anyway.
 *
 * Import by name goes through `podman image save --format oci-archive`, not `podman image
 * mount`: the image then reaches ferry's one checking reader of OCI archives (digests verified
 * as it is unpacked), nothing stays mounted if ferry dies half-way, and the image store's driver
 * does not matter. The price is one copy of the image in a temporary file.
 */

export const PODMAN_TIMEOUT_MS = 10 * 60_000;

interface Ran { stdout: string; stderr: string }

function podman(args: string[], timeoutMs = PODMAN_TIMEOUT_MS): Promise<Ran> {
  return new Promise((resolve, reject) => {
    execFile('podman', args, { timeout: timeoutMs, maxBuffer: 16 << 20, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (!err) { resolve({ stdout, stderr }); return; }
      const e = err as NodeJS.ErrnoException & { killed?: boolean };
      if (e.code === 'ENOENT') {
        reject(new FerryError('ERR_RUNTIME_MISSING', 'podman is not installed: containers-storage is reached through it', { hint: 'install podman (Debian: apt-get install podman), or use --to oci-archive:FILE / an archive file' }));
        return;
      }
      const why = stderr.trim().split('\n').filter(Boolean).pop() ?? e.message;
      reject(Object.assign(new Error(e.killed ? `podman ${args[0] ?? ''} ${args[1] ?? ''} ran out of time (${timeoutMs / 1000} s)` : why), { stderr }));
    });
  });
}

/** Loads an oci-archive into containers-storage and returns the image's id. */
export async function loadIntoContainersStorage(archive: string, ref: string): Promise<{ id: string }> {
  try {
    await podman(['image', 'load', '--quiet', '--input', archive]);
    // `podman load` names the image by the index's ref.name; tag it anyway, so the name is
    // exactly the one asked for whatever this Podman version does with the annotation.
    const id = (await podman(['image', 'inspect', '--format', '{{.Id}}', ref]).catch(() => {
      throw new Error(`podman loaded the archive but has no image named ${ref}`);
    })).stdout.trim();
    return { id };
  } catch (err) {
    if (err instanceof FerryError) throw err;
    throw new FerryError('ERR_EXPORT', `podman could not load the checkpoint image ${ref}: ${(err as Error).message}`, {
      hint: 'check `podman info`; or write the image to a file with --to oci-archive:FILE', cause: err,
    });
  }
}

/** Writes image `ref` of containers-storage to `archive` as an oci-archive. */
export async function saveFromContainersStorage(ref: string, archive: string): Promise<void> {
  try {
    await podman(['image', 'exists', ref], 30_000).catch(() => {
      throw new FerryError('ERR_IMPORT', `containers-storage has no image named ${ref}`, { hint: 'list them with `podman images`; give the name as NAME[:TAG]' });
    });
    await podman(['image', 'save', '--quiet', '--format', 'oci-archive', '--output', archive, ref]);
  } catch (err) {
    if (err instanceof FerryError) throw err;
    throw new FerryError('ERR_IMPORT', `podman could not save image ${ref}: ${(err as Error).message}`, { hint: 'check `podman image inspect NAME`', cause: err });
  }
}
