import { execFile } from 'node:child_process';

/**
 * `criu check --feature NAME`: the kernel-feature probes CRIU offers only on its command
 * line (RPC's CHECK runs the basic category only). Used by `ferry doctor`.
 */
export const KERNEL_FEATURES = {
  mem_dirty_track: 'kernel memory dirty tracking (soft-dirty)',
  uffd: 'userfaultfd',
  'uffd-noncoop': 'userfaultfd non-cooperative events (lazy pages)',
  timens: 'time namespaces',
  clone3_set_tid: 'clone3() with set_tid (exact pids on restore)',
  pidfd_store: 'pidfd store (pid-reuse detection across dumps)',
  network_lock_nftables: 'nftables network lock',
  has_ipt_legacy: 'iptables network lock',
  get_rseq_conf: 'rseq configuration dump',
  can_map_vdso: 'vDSO mapping on restore',
  seccomp_filters: 'seccomp filter dump',
} as const;

export type KernelFeature = keyof typeof KERNEL_FEATURES;

export interface FeatureProbe {
  feature: KernelFeature;
  supported: boolean;
  /** What CRIU printed (its reason when unsupported). */
  output: string;
}

export function probeKernelFeature(binary: string, feature: KernelFeature): Promise<FeatureProbe> {
  return new Promise((resolve) => {
    execFile(binary, ['check', '--feature', feature], { timeout: 20_000 }, (err, stdout, stderr) => {
      const output = `${stdout}${stderr}`.trim();
      resolve({ feature, supported: !err, output });
    });
  });
}
