import { readFile } from 'node:fs/promises';
import { arch, hostname, release } from 'node:os';

/** Facts about a host recorded in every snapshot and checked before every restore. */
export interface HostFacts { hostname: string; kernel: string; arch: string; cpuFlags: string[] }

/** This host's facts. */
export async function hostFacts(): Promise<HostFacts> {
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  const flags = /^flags\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim().split(/\s+/) ?? [];
  return { hostname: hostname(), kernel: release(), arch: arch(), cpuFlags: [...new Set(flags)].sort() };
}
