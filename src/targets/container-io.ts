import { spawn } from 'node:child_process';
import { closeSync, constants as fsc, openSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ContainerTarget } from '../store/manifest.js';
import { FerryError } from '../util/errors.js';
import { isBindMount } from './container.js';

/**
 * The plumbing of container restores and dumps that runc does itself and ferry does for crun:
 * which mounts are external, the restored container's stdio, its cgroups under v1.
 */

/** Files a container snapshot carries beside CRIU's images (as Podman's checkpoint archives name them). */
export const SPEC_DUMP = 'spec.dump';
export const DESCRIPTORS = 'descriptors.json';

/**
 * Mounts CRIU must treat as external: the spec's bind mounts, and any mount of the container
 * whose file system is not mounted from its root inside the container (crun's /dev/null over
 * masked paths, for example). Keys are the destinations (as runc names them); sources are host paths.
 */
export async function externalMountsOf(pid: number, specMounts: readonly { destination: string; type?: string; source?: string; options?: string[] }[]): Promise<ContainerTarget['externalMounts']> {
  const out = new Map<string, string>();
  for (const m of specMounts) if (isBindMount(m) && m.source) out.set(m.destination, m.source);
  const parse = (text: string) => text.split('\n').filter(Boolean).map((l) => {
    const f = l.split(' ');
    return { dev: f[2] ?? '', root: unescapeMount(f[3] ?? ''), mountpoint: unescapeMount(f[4] ?? '') };
  });
  const inside = parse(await readFile(`/proc/${pid}/mountinfo`, 'utf8').catch(() => ''));
  const host = parse(await readFile('/proc/self/mountinfo', 'utf8').catch(() => ''));
  const rootedInside = new Set(inside.filter((m) => m.root === '/' && m.mountpoint !== '/').map((m) => m.dev));
  for (const m of inside) {
    if (m.mountpoint === '/' || rootedInside.has(m.dev) || out.has(m.mountpoint)) continue;
    const h = host.find((x) => x.dev === m.dev && x.root === '/');
    if (h) out.set(m.mountpoint, join(h.mountpoint, m.root));
  }
  return [...out].map(([key, source]) => ({ key, source }));
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * The shell redirections that give the restored container's stdio: /dev/null where the
 * container had /dev/null, otherwise a pipe drained by `cat` into the log file (a pipe, not the
 * file itself, so that the restored container can be checkpointed again).
 */
export function stdioRedirections(stdio: string[]): string {
  return stdio.map((d, fd) => {
    if (fd === 0) return '</dev/null'; // a stdin pipe has no writer left to reconnect to
    if (d.startsWith('pipe:')) return `${fd}> >(exec cat >>"$FERRY_LOG${fd}")`;
    return `${fd}>/dev/null`;
  }).join(' ');
}

/**
 * Under cgroup v1, crun bind-mounts the container's own cgroup of every hierarchy into it
 * (/sys/fs/cgroup/<ctrl>/<id>); restored under a new id, those mounts must come from the new
 * id's cgroups, which must exist before CRIU mounts them (cpuset ones with the parent's cpus
 * and mems, or no task could join them).
 */
export async function cgroupMountsFor(mounts: ContainerTarget['externalMounts'], id: string): Promise<ContainerTarget['externalMounts']> {
  const out: ContainerTarget['externalMounts'] = [];
  for (const m of mounts) {
    const cg = /^\/sys\/fs\/cgroup\/([^/]+)\/.+$/.exec(m.source);
    if (!cg) { out.push(m); continue; }
    const hierarchy = join('/sys/fs/cgroup', cg[1] ?? '');
    const source = join(hierarchy, id);
    await mkdir(source, { recursive: true });
    for (const f of ['cpuset.cpus', 'cpuset.mems']) {
      const parent = await readFile(join(hierarchy, f), 'utf8').catch(() => undefined);
      const mine = await readFile(join(source, f), 'utf8').catch(() => undefined);
      if (parent !== undefined && mine !== undefined && !mine.trim()) await writeFile(join(source, f), parent);
    }
    out.push({ key: m.key, source });
  }
  return out;
}

/**
 * Fresh pipes for the restored container's stdio, each drained by a `cat` into its log file:
 * a short-lived bash makes the pipes (Node's own "pipes" are socketpairs), ferry reopens their
 * write ends through /proc and hands them to CRIU as the old pipes' replacements.
 */
export async function stdioPipes(stdio: string[], stdoutLog: string, stderrLog: string): Promise<{ fds: { key: string; fd: number }[]; close(): void }> {
  const wanted = stdio.map((d, fd) => ({ d, fd })).filter((x) => x.fd > 0 && x.d.startsWith('pipe:'));
  if (!wanted.length) return { fds: [], close() { /* none */ } };
  const opens = wanted.map((w) => `exec ${w.fd + 10}> >(exec cat >>"$FERRY_LOG${w.fd}")`).join('; ');
  const holder = spawn('bash', ['-c', `${opens}; echo ready; read -r _`], {
    env: { ...process.env, FERRY_LOG1: stdoutLog, FERRY_LOG2: stderrLog }, stdio: ['pipe', 'pipe', 'ignore'],
  });
  const fds: { key: string; fd: number }[] = [];
  try {
    await new Promise<void>((ok, bad) => {
      const timer = setTimeout(() => bad(new FerryError('ERR_CONTAINER_RESTORE', 'the helper that makes the stdio pipes did not answer within 10 s')), 10_000);
      holder.once('error', (e) => { clearTimeout(timer); bad(e); });
      holder.once('exit', () => { clearTimeout(timer); bad(new FerryError('ERR_CONTAINER_RESTORE', 'the helper that makes the stdio pipes exited early')); });
      holder.stdout?.once('data', () => { clearTimeout(timer); ok(); });
    });
    for (const w of wanted) fds.push({ key: w.d, fd: openSync(`/proc/${holder.pid}/fd/${w.fd + 10}`, fsc.O_WRONLY) });
  } finally {
    holder.stdin?.end();
  }
  return { fds, close() { for (const f of fds) closeSync(f.fd); } };
}
