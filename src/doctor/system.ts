import { execFile } from 'node:child_process';
import { readFile, statfs, stat } from 'node:fs/promises';
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
