import { hostname, release, arch } from 'node:os';
import { CriuClient, CRIU_MIN, type CriuVersion } from '../criu/client.js';
import { resolveCriuBinary } from '../criu/binary.js';
import { KERNEL_FEATURES, probeKernelFeature, type KernelFeature } from '../criu/kernel-check.js';
import { FerryError } from '../util/errors.js';
import type { DoctorCheck, DoctorReport } from './report.js';
import { selfTest } from './selftest.js';
import { formatBytes } from '../util/format.js';
import { CAP, cgroupLayout, commandOutput, effectiveCaps, freeSpace, hasCap, readSysctl, storePathProblem } from './system.js';

export interface DoctorOptions {
  /** Where the snapshot store lives (reported with its free space). */
  storeDir: string;
  /** Skip the real checkpoint/restore of a test process. */
  skipSelfTest?: boolean;
  /** What the store's memory tier holds (measured by the caller, which knows the store's layout). */
  memoryTier?: MemoryTierFacts;
}

/** The memory tier as the doctor reports it. */
export interface MemoryTierFacts {
  /** This store's memory-tier directory (null: it has none yet). */
  dir: string | null;
  usedBytes: number;
  /** Base directory of all stores' memory tiers, and what they hold together. */
  base: string;
  allStoresBytes: number;
  /** Memory-tier directories of stores that no longer exist. */
  orphans: number;
  orphanBytes: number;
  hostAvailableBytes: number | null;
  reserveBytes: number | null;
}

const PIPE_MAX_WANT = 16 * 1024 * 1024;
const STORE_FREE_WARN = 2 * 1024 * 1024 * 1024;
const INSTALL_CRIU = 'run `make setup` (it builds CRIU 4.2 from Debian\'s source into .deps/), or set FERRY_CRIU to a criu >= 4.2 binary';

/** Pre-flight checks with consequences and remedies. The engine and CLI decide how to show them. */
export async function runDoctor(options: DoctorOptions): Promise<DoctorReport> {
  const checks: DoctorCheck[] = [];
  const add = (c: DoctorCheck): DoctorCheck => { checks.push(c); return c; };
  const report: DoctorReport = {
    ok: false,
    selfTest: 'not-run',
    host: { hostname: hostname(), kernel: release(), arch: arch() },
    criu: { path: null, source: null, version: null },
    checks,
  };

  // --- privileges
  const caps = await effectiveCaps();
  const isRoot = process.getuid?.() === 0;
  const canCr = caps !== undefined && (hasCap(caps, CAP.SYS_ADMIN) || hasCap(caps, CAP.CHECKPOINT_RESTORE));
  const missing = caps === undefined ? [] : Object.entries(CAP).filter(([, bit]) => !hasCap(caps, bit)).map(([n]) => `CAP_${n}`);
  add({
    id: 'privileges',
    title: 'privileges',
    status: canCr && (isRoot || (caps !== undefined && hasCap(caps, CAP.SYS_PTRACE))) ? 'ok' : 'fail',
    value: `${isRoot ? 'root' : `uid ${process.getuid?.()}`}${missing.length ? `, without ${missing.join(', ')}` : ', all capabilities ferry uses'}`,
    ...(canCr ? {} : {
      consequence: 'CRIU cannot checkpoint or restore anything without CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE',
      remedy: 'run ferry as root',
    }),
  });

  // --- CRIU binary, version, basic check
  const bin = resolveCriuBinary();
  let version: CriuVersion | undefined;
  let client: CriuClient | undefined;
  if (!bin) {
    add({ id: 'criu', title: 'CRIU', status: 'fail', value: 'not found', consequence: 'ferry cannot checkpoint or restore anything', remedy: INSTALL_CRIU });
  } else {
    report.criu.path = bin.path;
    report.criu.source = bin.source;
    client = new CriuClient();
    try {
      version = await client.requireVersion(CRIU_MIN.ferry, 'ferry');
      report.criu.version = version.text;
      add({ id: 'criu', title: 'CRIU', status: 'ok', value: `${version.text} at ${bin.path} (${bin.source})` });
    } catch (err) {
      const v = await client.version().catch(() => undefined);
      report.criu.version = v?.text ?? null;
      add({
        id: 'criu', title: 'CRIU', status: 'fail',
        value: v ? `${v.text} at ${bin.path} — too old` : `${bin.path} does not answer: ${(err as Error).message}`,
        consequence: v
          ? 'CRIU older than 4.2 does not start on new kernels (vDSO) or cannot dump TCP/UDP sockets on them'
          : 'ferry cannot checkpoint or restore anything',
        remedy: INSTALL_CRIU,
      });
      client = undefined;
    }
  }

  if (client && bin) {
    const check = await client.check().catch((err: unknown) => ({ ok: false, firstError: (err as Error).message, logPath: '' }));
    add({
      id: 'criu-check', title: '`criu check`', status: check.ok ? 'ok' : 'fail',
      value: check.ok ? 'Looks good.' : `failed: ${check.firstError ?? 'see log'}`,
      ...(check.ok ? {} : { consequence: 'the kernel lacks something CRIU needs for any checkpoint', remedy: `run \`${bin.path} check\` to see what` }),
    });

    const f = await client.features().catch(() => undefined);
    const probes = new Map<KernelFeature, boolean>();
    await Promise.all((['timens', 'clone3_set_tid', 'network_lock_nftables', 'has_ipt_legacy', 'uffd-noncoop'] as const)
      .map(async (name) => probes.set(name, (await probeKernelFeature(bin.path, name)).supported)));
    add({
      id: 'mem-track', title: KERNEL_FEATURES.mem_dirty_track, status: f?.memTrack ? 'ok' : 'warn',
      value: f?.memTrack ? 'available' : 'absent',
      ...(f?.memTrack ? {} : {
        consequence: 'pre-copy migration unavailable: this kernel has no soft-dirty tracking (ferry finds changed pages by content instead)',
        remedy: 'use a kernel built with CONFIG_MEM_SOFT_DIRTY for pre-copy',
      }),
    });
    add({
      id: 'lazy-pages', title: 'lazy pages (userfaultfd)', status: f?.lazyPages ? 'ok' : 'warn',
      value: f?.lazyPages ? 'available' : 'absent',
      ...(f?.lazyPages ? {} : { consequence: 'post-copy migration unavailable', remedy: 'use a kernel with userfaultfd (CONFIG_USERFAULTFD) and allow it (vm.unprivileged_userfaultfd or root)' }),
    });
    add({
      id: 'timens', title: KERNEL_FEATURES.timens, status: probes.get('timens') ? 'ok' : 'warn',
      value: probes.get('timens') ? 'available' : 'absent',
      ...(probes.get('timens') ? {} : { consequence: 'restored processes see CLOCK_MONOTONIC jump to the new host\'s clock' }),
    });
    add({
      id: 'clone3-set-tid', title: KERNEL_FEATURES.clone3_set_tid, status: probes.get('clone3_set_tid') ? 'ok' : 'warn',
      value: probes.get('clone3_set_tid') ? 'available' : 'absent',
      ...(probes.get('clone3_set_tid') ? {} : { consequence: 'CRIU falls back to ns_last_pid; concurrent restores can race for pids' }),
    });
    add({
      id: 'pidfd-store', title: 'pidfd store', status: f?.pidfdStore ? 'ok' : 'warn',
      value: f?.pidfdStore ? 'available' : 'absent',
      ...(f?.pidfdStore ? {} : { consequence: 'pid reuse between iterative dumps cannot be detected' }),
    });
    const ipt = probes.get('has_ipt_legacy') && (await commandOutput('iptables-restore', ['--version'])) !== undefined;
    const nft = probes.get('network_lock_nftables');
    add({
      id: 'network-lock', title: 'network lock backend', status: ipt || nft ? 'ok' : 'warn',
      value: [ipt ? 'iptables (default)' : undefined, nft ? 'nftables' : undefined].filter(Boolean).join(', ') || 'none',
      ...(ipt || nft ? {} : {
        consequence: 'checkpoints of processes with their own network namespace or established TCP connections fail ("Locking network failed")',
        remedy: 'apt-get install iptables',
      }),
    });
    const pipeMax = await readSysctl('/proc/sys/fs/pipe-max-size');
    const hasRes = caps !== undefined && hasCap(caps, CAP.SYS_RESOURCE);
    const pipeOk = hasRes || (pipeMax ?? 0) >= PIPE_MAX_WANT;
    add({
      id: 'pipe-max-size', title: 'fs.pipe-max-size', status: pipeOk ? 'ok' : 'warn',
      value: `${pipeMax === undefined ? 'unknown' : formatBytes(pipeMax)}${hasRes ? ' (CAP_SYS_RESOURCE present)' : ''}`,
      ...(pipeOk ? {} : {
        consequence: 'post-copy (lazy pages) fails on the first page: without CAP_SYS_RESOURCE CRIU cannot grow its pipes past this limit',
        remedy: `sysctl -w fs.pipe-max-size=${PIPE_MAX_WANT} (make setup does this)`,
      }),
    });
  }

  // --- container runtimes, cgroups
  for (const rt of ['runc', 'crun']) {
    const out = await commandOutput(rt, ['--version']);
    const v = out?.split('\n')[0]?.replace(/^\S+ version /, '');
    // crun lists its build features on the last line of --version (e.g. "+CRIU"); without CRIU
    // support its own checkpoint command is missing, and ferry drives CRIU for it instead.
    const crunNoCriu = rt === 'crun' && out !== undefined && !/\+CRIU\b/.test(out);
    add({
      id: rt, title: rt, status: out ? 'ok' : 'warn',
      value: v === undefined ? 'not installed' : crunNoCriu ? `${v} (built without CRIU: ferry drives CRIU itself for crun containers)` : v,
      ...(out ? {} : { consequence: `containers run by ${rt} cannot be checkpointed`, remedy: `apt-get install ${rt}` }),
    });
  }
  const cg = await cgroupLayout();
  add({ id: 'cgroups', title: 'cgroups', status: cg === 'unknown' ? 'warn' : 'ok', value: cg === 'hybrid' ? 'v1 hierarchies with a v2 unified mount (hybrid)' : cg });

  // --- store
  const storeProblem = await storePathProblem(options.storeDir);
  if (storeProblem) {
    add({
      id: 'store', title: 'snapshot store', status: 'fail', value: `${options.storeDir}: ${storeProblem}`,
      consequence: 'no snapshot can be written, listed or restored',
      remedy: 'point --store or FERRY_STORE at a directory ferry can create and write (as root), not at a file',
    });
  }
  const mt = options.memoryTier;
  if (mt) {
    const low = mt.hostAvailableBytes !== null && mt.reserveBytes !== null && mt.hostAvailableBytes <= mt.reserveBytes;
    add({
      id: 'memory-tier', title: 'memory tier', status: low || mt.orphans > 0 ? 'warn' : 'ok',
      value: `${formatBytes(mt.usedBytes)} of RAM in this store's (${mt.dir ?? 'none yet'}); ${formatBytes(mt.allStoresBytes)} in all stores' under ${mt.base}` +
        `${mt.hostAvailableBytes !== null ? `; host memory available ${formatBytes(mt.hostAvailableBytes)}${mt.reserveBytes !== null ? `, reserve ${formatBytes(mt.reserveBytes)}` : ''}` : ''}` +
        `${mt.orphans ? `; ${mt.orphans} director${mt.orphans === 1 ? 'y' : 'ies'} of deleted stores hold ${formatBytes(mt.orphanBytes)}` : ''}`,
      ...(low ? { consequence: 'memory-tier checkpoints are refused (or spill to disk): the host is at its memory reserve', remedy: 'free memory-tier space (`ferry snapshots gc`, `ferry snapshots rm ID`) or other memory' }
        : mt.orphans ? { consequence: 'RAM is held by snapshots of stores that no longer exist', remedy: '`ferry snapshots gc` removes them' } : {}),
    });
  }
  const space = storeProblem ? undefined : await freeSpace(options.storeDir);
  if (!storeProblem) add({
    id: 'store', title: 'snapshot store', status: space && space.freeBytes >= STORE_FREE_WARN ? 'ok' : 'warn',
    value: space ? `${options.storeDir} (${formatBytes(space.freeBytes)} free)` : `${options.storeDir} (not reachable)`,
    ...(space && space.freeBytes >= STORE_FREE_WARN ? {} : { consequence: 'large checkpoints may not fit', remedy: 'point --store or FERRY_STORE at a file system with more room' }),
  });

  // --- the proof
  if (client && !options.skipSelfTest && !checks.some((c) => c.status === 'fail')) {
    try {
      const r = await selfTest(client);
      add({ id: 'self-test', title: 'checkpoint/restore of a test process', status: 'ok', value: `works (dump ${r.dumpMs} ms, restore ${r.restoreMs} ms)` });
      report.selfTest = 'passed';
    } catch (err) {
      report.selfTest = 'failed';
      add({
        id: 'self-test', title: 'checkpoint/restore of a test process', status: 'fail',
        value: err instanceof FerryError ? err.message : String(err),
        consequence: 'checkpoint/restore does not work on this host',
        remedy: err instanceof FerryError && err.hint ? err.hint : 'see the CRIU log named above',
      });
    }
  }

  if (options.skipSelfTest) {
    report.selfTest = 'skipped';
    add({
      id: 'self-test', title: 'checkpoint/restore of a test process', status: 'warn', value: 'skipped (--quick): not tried',
      consequence: 'the checks above say what is present, not that checkpoint/restore works',
      remedy: 'run `ferry doctor` without --quick to checkpoint and restore a test process',
    });
  }
  report.ok = !checks.some((c) => c.status === 'fail');
  return report;
}
