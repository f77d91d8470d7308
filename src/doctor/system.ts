import { execFile } from 'node:child_process';
import { constants as fsc } from 'node:fs';
import { access, readFile, statfs, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Small readers of host facts used by the doctor. Each returns undefined when unknown. */

export function commandOutput(cmd: string, args: string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 10_000 }, (err, stdout, stderr) => {
      resolve(err ? undefined : `${stdout}${stderr}`.trim());
    });
  });
}

/** Effective capability mask of this process. */
export async function effectiveCaps(): Promise<bigint | undefined> {
  const status = await readFile('/proc/self/status', 'utf8').catch(() => '');
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  return m?.[1] ? BigInt(`0x${m[1]}`) : undefined;
}

export const CAP = { SYS_ADMIN: 21, SYS_PTRACE: 19, NET_ADMIN: 12, SYS_RESOURCE: 24, CHECKPOINT_RESTORE: 40 } as const;

export function hasCap(mask: bigint, bit: number): boolean {
  return ((mask >> BigInt(bit)) & 1n) === 1n;
}

export type CgroupLayout = 'v2' | 'v1' | 'hybrid' | 'unknown';

export async function cgroupLayout(): Promise<CgroupLayout> {
  const mounts = await readFile('/proc/self/mounts', 'utf8').catch(() => '');
  const lines = mounts.split('\n').map((l) => l.split(' '));
  const v2 = lines.filter((f) => f[2] === 'cgroup2');
  const v1 = lines.filter((f) => f[2] === 'cgroup');
  if (v2.some((f) => f[1] === '/sys/fs/cgroup')) return 'v2';
  if (v1.length && v2.length) return 'hybrid';
  if (v1.length) return 'v1';
  return 'unknown';
}

export async function readSysctl(path: string): Promise<number | undefined> {
  const text = await readFile(path, 'utf8').catch(() => undefined);
  const n = text === undefined ? NaN : Number(text.trim());
  return Number.isFinite(n) ? n : undefined;
}

/** Free bytes where `path` lives (or would live: its nearest existing ancestor). */
export async function freeSpace(path: string): Promise<{ at: string; freeBytes: number } | undefined> {
  let p = path;
  for (;;) {
    try {
      await stat(p);
      const s = await statfs(p);
      return { at: p, freeBytes: s.bavail * s.bsize };
    } catch {
      const up = dirname(p);
      if (up === p) return undefined;
      p = up;
    }
  }
}

/**
 * Why a store path cannot be used, or undefined when it can: it exists and is not a directory or
 * not writable, or the nearest existing ancestor is a file.
 */
export async function storePathProblem(path: string): Promise<string | undefined> {
  let p = path;
  for (;;) {
    const st = await stat(p).catch((err: unknown) => (err as NodeJS.ErrnoException).code ?? 'error');
    if (typeof st === 'string') {
      if (st === 'ENOTDIR') return `${p === path ? 'a parent of it' : p} is not a directory`;
      if (st !== 'ENOENT') return `cannot be reached (${st})`;
      const up = dirname(p);
      if (up === p) return undefined;
      p = up;
      continue;
    }
    if (!st.isDirectory()) return p === path ? 'is a file, not a directory' : `${p} is a file, not a directory`;
    const writable = await access(p, fsc.W_OK).then(() => true, () => false);
    return writable ? undefined : `${p} is not writable`;
  }
}
