import { readFile } from 'node:fs/promises';
import { arch, hostname, release } from 'node:os';

/** Facts about this host recorded in every snapshot and checked before every restore. */
export async function hostFacts(): Promise<{ hostname: string; kernel: string; arch: string; cpuFlags: string[] }> {
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  const flags = /^flags\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim().split(/\s+/) ?? [];
  return { hostname: hostname(), kernel: release(), arch: arch(), cpuFlags: [...new Set(flags)].sort() };
}
