import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { readDumpStats } from '../criu/images/stats.js';
import { FerryError } from '../util/errors.js';
import { findOnPath } from '../util/path.js';
import type { Testbed } from './migrate-hosts.js';

/**
 * The raw baseline of issue 13: `criu dump` on h1 → `tar` over TCP to h2 → `criu restore -d` on
 * h2, one after another, with the options ferry gives CRIU for a `ferry run` workload (none:
 * it is a session leader in its own pid namespace, no established connections). CRIU runs inside
 * the host's network namespace (nsenter --net), so the restored tree lives in h2's. Images go to
 * tmpfs on both sides (as ferry's memory tier); CRIU's logs (-v4, as ferry's) to a work directory
 * beside them, so only images cross the link. The receiver is a Python listener that hands the
 * accepted socket to `tar x` as its stdin (no copy in between); the sender is bash's /dev/tcp
 * redirection of `tar c`, started after the dump.
 */

export interface RawResult {
  /** `criu dump` spawn → exit. */
  dumpMs: number;
  /** CRIU's own frozen_time (µs → ms) from stats-dump. */
  frozenMs: number;
  /** `tar c` started → the receiver's `tar x` finished writing. */
  wireMs: number;
  /** `criu restore -d` spawn → exit (the tree runs). */
  restoreMs: number;
  /** Dump start → restore done. */
  downtimeMs: number;
  /** Bytes of the images directory. */
  bytes: number;
  /** Host pid of the restored tree's root. */
  pid: number;
}

export const RAW_PORT = 7390;

/** Accepts one connection on PORT and becomes `tar x -C DIR` reading it. */
const LISTENER = `
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', int(sys.argv[1])))
s.listen(1)
print('listening', flush=True)
c, _ = s.accept()
s.close()
os.dup2(c.fileno(), 0)
c.close()
os.execvp('tar', ['tar', 'x', '-C', sys.argv[2]])
`;

async function dirBytes(dir: string): Promise<number> {
  let n = 0;
  for (const f of await readdir(dir)) n += (await stat(join(dir, f))).size;
  return n;
}

/** Moves the tree rooted at `pid` (on h1) to h2 the raw way; `scratch` is tmpfs, emptied afterwards. */
export async function rawMigrate(bed: Testbed, criu: string, pid: number, scratch: string, timeoutMs: number): Promise<RawResult> {
  const h1 = bed.host('h1');
  const h2 = bed.host('h2');
  const python = findOnPath('python3');
  if (!python) throw new FerryError('ERR_WORKLOAD_SETUP', 'bench migrate: python3 is not installed', { hint: 'run `make setup`' });
  const src = join(scratch, 'src');
  const srcWork = join(scratch, 'src-work');
  const dst = join(scratch, 'dst');
  const dstWork = join(scratch, 'dst-work');
  await Promise.all([src, srcWork, dst, dstWork].map((d) => mkdir(d, { recursive: true })));
  try {
    // The receiver listens before anything is frozen (not part of the downtime).
    const receiver = bed.start(h2, [python, '-c', LISTENER, String(RAW_PORT), dst]);
    const received = bed.wait(receiver, 'the raw receiver (tar x) in h2', { timeoutMs: timeoutMs * 3 });
    received.catch(() => undefined);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new FerryError('ERR_BENCH', 'bench migrate: the raw receiver in h2 did not listen within 10 s')), 10_000);
      let out = '';
      receiver.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('listening')) { clearTimeout(timer); resolve(); }
      });
      received.catch((e: unknown) => { clearTimeout(timer); reject(e instanceof Error ? e : new Error(String(e))); });
    });

    const t0 = performance.now();
    const dump = await bed.run(h1, [criu, 'dump', '-t', String(pid), '-D', src, '-W', srcWork, '-v4', '-o', 'dump.log'], 'criu dump in h1', { timeoutMs });
    const t1 = performance.now();
    await bed.run(h1, ['bash', '-c', 'exec tar c -C "$1" . > "/dev/tcp/$2/$3"', 'send', src, h2.address, String(RAW_PORT)], 'tar c over TCP from h1', { timeoutMs });
    await received;
    const t2 = performance.now();
    const pidfile = join(dstWork, 'restore.pid');
    const restore = await bed.run(h2, [criu, 'restore', '-D', dst, '-W', dstWork, '-d', '-v4', '-o', 'restore.log', '--pidfile', pidfile], 'criu restore in h2', { timeoutMs });
    const t3 = performance.now();
    const restored = Number((await readFile(pidfile, 'utf8')).trim());
    if (!(restored > 0)) throw new FerryError('ERR_BENCH', `bench migrate: criu restore wrote no pid to ${pidfile}`);
    return {
      dumpMs: dump.ms, frozenMs: ((await readDumpStats(srcWork))?.frozen_time ?? NaN) / 1000,
      wireMs: t2 - t1, restoreMs: restore.ms, downtimeMs: t3 - t0,
      bytes: await dirBytes(src), pid: restored,
    };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
