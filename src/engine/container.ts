import { execFile, spawn } from 'node:child_process';
import { closeSync, constants as fsc, openSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CriuClient, CRIU_MIN } from '../criu/client.js';
import { CriuOperationError } from '../criu/errors.js';
import { hintFor } from '../criu/hints.js';
import { readRestoreStats, type RestoreStats } from '../criu/images/stats.js';
import { formatLogLines, summarizeLogFile } from '../criu/log.js';
import { checksumDir, verifyChecksums } from '../store/checksums.js';
import type { ContainerTarget, SnapshotManifest, Tier } from '../store/manifest.js';
import { Store } from '../store/store.js';
import {
  adoptIntoCrun, containerState, DEFAULT_RUNTIME_ROOT, findContainer, firstLine, freezerCgroup, isBindMount,
  ownNamespaces, readBundleSpec, runRuntime, runtimeBinary, runtimeEnv, stdioDescriptors, type OciSpec, type Runtime,
} from '../targets/container.js';
import { FerryError } from '../util/errors.js';
import { sealSnapshot } from './seal.js';

/**
 * Checkpoint and restore of OCI containers (`container:<id>`).
 *
 * runc: through runc's own `checkpoint`/`restore` (runc knows its cgroups, mounts, namespaces
 * and stdio), with ferry's CRIU first on PATH, images written straight into the snapshot being
 * built and CRIU's log into ferry's log directory.
 * crun: Debian's crun 1.8.1 is built without CRIU support (`crun --version` lacks +CRIU), so
 * ferry drives CRIU itself with what crun would have sent (root, external bind mounts, empty
 * network namespace, freezer cgroup, stdio pipes by inode) and registers the restored tree
 * with crun as a container.
 * Either way the result is a normal ferry snapshot (manifest, checksums) whose target is the
 * container; `spec.dump` (the bundle's config.json) and `descriptors.json` (stdio) travel with it.
 */

export interface ContainerCheckpointRequest {
  id: string;
  runtime?: Runtime;
  runtimeRoot?: string;
  name?: string;
  leaveRunning?: boolean;
  tier?: Tier;
  tcpEstablished?: boolean;
  extUnixSk?: boolean;
  fileLocks?: boolean;
}

export interface ContainerCheckpointResult {
  snapshot: string;
  dir: string;
  manifest: SnapshotManifest & { target: ContainerTarget };
}

export const SPEC_DUMP = 'spec.dump';
export const DESCRIPTORS = 'descriptors.json';

const run = promisify(execFile);

export async function checkpointContainer(store: Store, req: ContainerCheckpointRequest, criu = new CriuClient()): Promise<ContainerCheckpointResult> {
  const started = Date.now();
  const tier = req.tier ?? 'disk';
  await store.ensure(tier);
  const versionP = criu.requireVersion(CRIU_MIN.ferry, 'container checkpoints');
  versionP.catch(() => undefined);
  const { runtime, root, state } = await findContainer(req.id, req.runtime, req.runtimeRoot);
  if (state.status !== 'running' || state.pid <= 0) {
    throw new FerryError('ERR_CONTAINER_STATE', `container ${req.id} is ${state.status}, not running`, {
      hint: `only a running container can be checkpointed; start it (\`${runtime} start ${req.id}\`)`,
    });
  }
  const version = await versionP;
  const { spec, text: specText, rootfs } = await readBundleSpec(state.bundle);
  const stdio = await stdioDescriptors(state.pid);
  const externalMounts = await externalMountsOf(state.pid, spec.mounts ?? []);
  const namespaces = ownNamespaces(spec);
  const pending = await store.begin(tier, req.name);
  const workDir = join(store.root, 'logs', `checkpoint-${pending.id}`);
  try {
    await mkdir(workDir, { recursive: true, mode: 0o700 });
    const criuStarted = Date.now();
    if (runtime === 'runc') {
      const args = ['checkpoint', '--image-path', pending.dir, '--work-path', workDir];
      if (req.leaveRunning) args.push('--leave-running');
      if (req.tcpEstablished) args.push('--tcp-established');
      if (req.extUnixSk) args.push('--ext-unix-sk');
      if (req.fileLocks) args.push('--file-locks');
      const r = await runRuntime('runc', root, [...args, req.id], 300_000);
      if (r.code !== 0) throw await checkpointError(req.id, runtime, root, join(workDir, 'dump.log'), stdio, r.stderr);
    } else {
      try {
        await criu.dump({
          pid: state.pid,
          imagesDir: pending.dir,
          workDir,
          logFile: 'dump.log',
          root: rootfs,
          external: externalMounts.map((m) => `mnt[${m.key}]:${m.key}`),
          ...(namespaces.includes('network') ? { emptyNs: ['net'] as const } : {}),
          manageCgroupsMode: 'soft',
          ...(await freezerCgroup(state.pid).then((p) => (p ? { freezeCgroup: p } : {}))),
          // The container's own network namespace is not dumped (as runc does): nothing to lock
          // unless live TCP connections travel.
          ...(req.tcpEstablished ? { tcpEstablished: true } : { networkLock: 'skip' as const }),
          ...(req.leaveRunning ? { leaveRunning: true } : {}),
          ...(req.extUnixSk ? { extUnixSk: true } : {}),
          ...(req.fileLocks ? { fileLocks: true } : {}),
        });
      } catch (err) {
        if (err instanceof CriuOperationError) throw await checkpointError(req.id, runtime, root, join(workDir, 'dump.log'), stdio, '', err);
        throw err;
      }
      await writeFile(join(pending.dir, DESCRIPTORS), JSON.stringify(stdio));
      if (!req.leaveRunning) {
        // CRIU has killed the tree; crun still lists the container (stopped) and owns its cgroup.
        await runRuntime('crun', root, ['delete', '--force', req.id]);
      }
    }
    const criuMs = Date.now() - criuStarted;
    await writeFile(join(pending.dir, SPEC_DUMP), specText);
    const target: ContainerTarget = {
      kind: 'container', id: req.id, runtime, runtimeRoot: root, driver: runtime === 'runc' ? 'runtime' : 'ferry',
      bundle: state.bundle, rootfs, pid: state.pid, workload: undefined, command: spec.process?.args ?? [],
      ownPidNamespace: namespaces.includes('pid'), namespaces, stdio, externalMounts,
    };
    const { manifest, dir } = await sealSnapshot({
      pending, workDir, started, criuMs, criuVersion: version.text, name: req.name, target, logsOptional: true,
      options: { tcpEstablished: req.tcpEstablished === true, extUnixSk: req.extUnixSk === true, fileLocks: req.fileLocks === true, shellJob: false },
      images: async () => ({ files: await checksumDir(pending.dir) }),
    });
    return { snapshot: pending.id, dir, manifest };
  } catch (err) {
    await pending.abandon().catch((e: unknown) => { if (err instanceof FerryError) err.addCleanupError(e); });
    throw err;
  }
}

/**
 * Mounts CRIU must treat as external: the spec's bind mounts, and any mount of the container
 * whose file system is not mounted from its root inside the container (crun's /dev/null over
 * masked paths, for example). Keys are the destinations (as runc names them); sources are host paths.
 */
async function externalMountsOf(pid: number, specMounts: readonly { destination: string; type?: string; source?: string; options?: string[] }[]): Promise<ContainerTarget['externalMounts']> {
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

const STDIO_NAMES = ['stdin', 'stdout', 'stderr'];

/**
 * A failed container checkpoint as one clear error: what CRIU could not handle (the resource,
 * by fd and name where the log says), what would help, and that the container still runs.
 */
async function checkpointError(
  id: string, runtime: Runtime, root: string, logPath: string, stdio: string[], runtimeStderr: string, cause?: CriuOperationError,
): Promise<FerryError> {
  const log = await summarizeLogFile(logPath);
  const first = log.firstError ?? cause?.firstError;
  let resource: string | undefined;
  let hint: string | undefined;
  const fdOf = (needle: string) => { const i = stdio.indexOf(needle); return i >= 0 ? `fd ${i} (${STDIO_NAMES[i]})` : undefined; };
  let m: RegExpExecArray | null;
  if (first && (m = /Unix socket (\d+) not found/.exec(first))) {
    resource = `${fdOf(`socket:[${m[1]}]`) ?? 'a file descriptor'} is unix socket socket:[${m[1]}], connected to a peer outside the container`;
    hint = 'CRIU cannot reach a unix socket whose peer lives outside the container\'s network namespace: give the container pipes or /dev/null for stdio (as conmon does); for a socket peer inside the dumped network namespace, pass --ext-unix-sk';
  } else if (first && (m = /Can't lookup mount=\d+ for fd=(\d+) path=(.*)/.exec(first))) {
    const fd = Number(m[1]);
    resource = `fd ${fd}${fd <= 2 ? ` (${STDIO_NAMES[fd]})` : ''} is ${m[2]}, a file outside the container's mounts`;
    hint = 'start the container with stdio as pipes or /dev/null rather than host files, or bind-mount that file\'s directory into the container';
  } else if (first && /Connected TCP socket|tcp-established/i.test(first)) {
    const at = log.excerpt.map((l) => /\)\s+(\d+) fdinfo (\d+):/.exec(l.text)).filter((x) => x !== null).at(-1);
    resource = `the container has an established TCP connection${at ? ` (fd ${at[2]} of its process ${at[1]})` : ''}`;
    hint = 'pass --tcp-established (at checkpoint; ferry repeats it at restore)';
  } else {
    hint = hintFor(first, log.excerpt.map((l) => l.text).join('\n'));
  }
  const still = await containerState(runtime, root, id).catch(() => undefined);
  const running = still?.status === 'running';
  const detail = [
    log.excerpt.length ? `CRIU log around the first error${log.firstErrorAt ? ` (${log.firstErrorAt})` : ''}:\n${formatLogLines(log.excerpt)}` : undefined,
    runtimeStderr.trim() ? `${runtime} said: ${firstLine(runtimeStderr.split('\n').reverse().join('\n'))}` : undefined,
    `full log: ${logPath}`,
    running ? `container ${id} is still running (pid ${still.pid})` : `container ${id} is ${still?.status ?? 'gone'}`,
  ].filter(Boolean).join('\n');
  const why = resource ?? first ?? firstLine(runtimeStderr);
  return new FerryError('ERR_CONTAINER_CHECKPOINT', `cannot checkpoint container ${id}: ${why}`, {
    detail, ...(hint ? { hint } : {}), ...(cause ? { cause } : {}),
  });
}

export interface ContainerRestoreRequest {
  /** The id to restore as (default: the id at checkpoint time). */
  as?: string;
  /** Bundle directory (default: the one recorded at checkpoint time). */
  bundle?: string;
  runtime?: Runtime;
  runtimeRoot?: string;
}

export interface ContainerRestoreResult {
  id: string;
  runtime: Runtime;
  pid: number;
  snapshot: string;
  stats: RestoreStats | undefined;
  timings: { totalMs: number; verifyMs: number; criuMs: number };
  logPath: string;
  /** Where the restored container's stdout/stderr go (pipes drained into these files). */
  stdout: string;
  stderr: string;
}

/** True when a stored manifest is a container snapshot. */
export function isContainerManifest(m: SnapshotManifest): m is SnapshotManifest & { target: ContainerTarget } {
  return m.target.kind === 'container';
}

/**
 * Restores a container snapshot as a running container of runc or crun. The checksums, the
 * CRIU line and the bundle are checked first; an id already in use is refused.
 */
export async function restoreContainer(store: Store, snapshot: string, req: ContainerRestoreRequest = {}, criu = new CriuClient()): Promise<ContainerRestoreResult> {
  const started = Date.now();
  const { manifest, dir } = await store.get(snapshot);
  if (!isContainerManifest(manifest)) {
    throw new FerryError('ERR_USAGE', `snapshot ${snapshot} is of a process, not a container`, { hint: 'restore it without --as/--bundle/--runtime' });
  }
  const t = manifest.target;
  const versionP = criu.requireVersion(CRIU_MIN.ferry, 'container restores');
  versionP.catch(() => undefined);
  await verifyChecksums(dir, manifest.files, snapshot, manifest.algorithm);
  const verifyMs = Date.now() - started;
  const version = await versionP;
  const line = (v: string) => v.split('.').slice(0, 2).join('.');
  if (line(version.text) !== line(manifest.criu.version)) {
    throw new FerryError('ERR_SNAPSHOT_INCOMPATIBLE', `snapshot ${snapshot} was taken by CRIU ${manifest.criu.version}; this host runs CRIU ${version.text}`, {
      hint: `restore it on a host with CRIU ${line(manifest.criu.version)}.x`,
    });
  }
  const runtime = req.runtime ?? t.runtime;
  const root = req.runtimeRoot ?? (runtime === t.runtime ? t.runtimeRoot : DEFAULT_RUNTIME_ROOT[runtime]);
  runtimeBinary(runtime);
  const id = req.as ?? t.id;
  const existing = await containerState(runtime, root, id);
  if (existing) {
    throw new FerryError('ERR_CONTAINER_EXISTS', `a container named '${id}' already exists in ${runtime} (${existing.status}, pid ${existing.pid})`, {
      hint: `restore under another id with --as container:<new-id>, or remove it (\`${runtime} delete -f ${id}\`)`,
    });
  }
  const bundle = req.bundle ?? t.bundle;
  const { spec, text: specText, rootfs } = await readBundleSpec(bundle);
  const logDir = join(store.root, 'containers', id);
  await mkdir(logDir, { recursive: true, mode: 0o700 });
  const stdoutLog = join(logDir, 'stdout.log');
  const stderrLog = join(logDir, 'stderr.log');
  const workDir = join(store.root, 'logs', `restore-${snapshot}-${Date.now()}`);
  await mkdir(workDir, { recursive: true, mode: 0o700 });
  const logPath = join(workDir, 'restore.log');
  const criuStarted = Date.now();
  let pid: number;
  if (runtime === 'runc') {
    pid = await restoreWithRunc({ root, dir, workDir, bundle, id, stdio: t.stdio, stdoutLog, stderrLog, options: manifest.options, logPath });
  } else {
    pid = await restoreWithCriu(criu, { root, dir, workDir, bundle, rootfs, spec, specText, id, target: t, stdoutLog, stderrLog, options: manifest.options, logPath });
  }
  const criuMs = Date.now() - criuStarted;
  return {
    id, runtime, pid, snapshot,
    stats: await readRestoreStats(workDir).catch(() => undefined),
    timings: { totalMs: Date.now() - started, verifyMs, criuMs },
    logPath, stdout: stdoutLog, stderr: stderrLog,
  };
}

interface RestoreContext {
  root: string; dir: string; workDir: string; bundle: string; id: string; stdoutLog: string; stderrLog: string; logPath: string;
  options: SnapshotManifest['options'];
}

/**
 * The shell redirections that give the restored container's stdio: /dev/null where the
 * container had /dev/null, otherwise a pipe drained by `cat` into the log file (a pipe, not the
 * file itself, so that the restored container can be checkpointed again).
 */
function stdioRedirections(stdio: string[]): string {
  return stdio.map((d, fd) => {
    if (fd === 0) return '</dev/null'; // a stdin pipe has no writer left to reconnect to
    if (d.startsWith('pipe:')) return `${fd}> >(exec cat >>"$FERRY_LOG${fd}")`;
    return `${fd}>/dev/null`;
  }).join(' ');
}

async function restoreWithRunc(c: RestoreContext & { stdio: string[] }): Promise<number> {
  const runtimeLog = join(c.workDir, 'runc.log');
  const args = ['--root', c.root, '--log', runtimeLog, 'restore', '--detach', '--image-path', c.dir, '--work-path', c.workDir, '--bundle', c.bundle];
  if (c.options.tcpEstablished) args.push('--tcp-established');
  if (c.options.extUnixSk) args.push('--ext-unix-sk');
  if (c.options.fileLocks) args.push('--file-locks');
  args.push(c.id);
  // runc hands its own stdio to the restored container (for pipes: by inode, `--inherit-fd`),
  // so runc runs under a shell that makes those pipes; the `cat`s outlive runc.
  const script = `"$@" ${stdioRedirections(c.stdio)}`;
  const code = await new Promise<number>((ok, bad) => {
    const child = spawn('bash', ['-c', script, 'ferry-restore', runtimeBinary('runc'), ...args], {
      env: { ...runtimeEnv(), FERRY_LOG1: c.stdoutLog, FERRY_LOG2: c.stderrLog }, stdio: 'ignore',
    });
    child.once('error', bad);
    child.once('exit', (code) => ok(code ?? 1));
  });
  if (code !== 0) {
    const said = await readFile(runtimeLog, 'utf8').catch(() => '');
    const msg = said.split('\n').filter(Boolean).map((l) => { try { return String((JSON.parse(l) as { msg?: string }).msg ?? l); } catch { return l; } }).at(-1);
    throw await restoreError(c.id, c.logPath, msg);
  }
  const state = await containerState('runc', c.root, c.id);
  if (!state || state.status !== 'running') {
    throw new FerryError('ERR_CONTAINER_RESTORE', `runc restored container ${c.id}, but it is ${state?.status ?? 'gone'}`, { detail: `full log: ${c.logPath}` });
  }
  return state.pid;
}

async function restoreWithCriu(criu: CriuClient, c: RestoreContext & { rootfs: string; spec: OciSpec; specText: string; target: ContainerTarget }): Promise<number> {
  // CRIU wants the root to be a mount point (runc bind-mounts the rootfs the same way).
  const mnt = join(c.workDir, 'root');
  await mkdir(mnt, { recursive: true });
  await run('mount', ['--bind', c.rootfs, mnt]);
  // Bind mounts come from the restore's bundle (a clone may bind other host directories).
  const binds = new Map((c.spec.mounts ?? []).filter((m) => isBindMount(m) && m.source).map((m) => [m.destination, m.source ?? '']));
  const external = await cgroupMountsFor(c.target.externalMounts.map((m) => ({ key: m.key, source: binds.get(m.key) ?? m.source })), c.id);
  const pipes = await stdioPipes(c.target.stdio, c.stdoutLog, c.stderrLog);
  try {
    const inheritFds = pipes.fds.map((p) => ({ key: p.key, fd: p.fd }));
    let restored: number;
    try {
      const r = await criu.restore({
        imagesDir: c.dir,
        workDir: c.workDir,
        logFile: 'restore.log',
        root: mnt,
        external: external.map((m) => `mnt[${m.key}]:${m.source}`),
        manageCgroupsMode: 'soft',
        cgroupRoots: [{ path: `/${c.id}` }],
        ...(inheritFds.length ? { inheritFds } : {}),
        ...(c.options.tcpEstablished ? { tcpEstablished: true } : { networkLock: 'skip' as const }),
        ...(c.options.extUnixSk ? { extUnixSk: true } : {}),
        ...(c.options.fileLocks ? { fileLocks: true } : {}),
      }, {
        // The empty network namespace comes with loopback down; bring it up as crun would.
        'post-restore': async ({ pid }) => {
          if (pid && c.target.namespaces.includes('network')) await run('nsenter', [`--net=/proc/${pid}/ns/net`, 'ip', 'link', 'set', 'lo', 'up']);
        },
      });
      restored = r.pid;
    } catch (err) {
      if (err instanceof CriuOperationError) throw await restoreError(c.id, c.logPath, undefined, err);
      throw err;
    }
    await adoptIntoCrun(c.root, c.id, { pid: restored, bundle: c.bundle, rootfs: c.rootfs, specText: c.specText, cgroupPath: `/${c.id}`, stdio: c.target.stdio });
    return restored;
  } finally {
    pipes.close();
    await run('umount', ['-l', mnt]).catch(() => undefined);
    await rm(mnt, { recursive: true, force: true }).catch(() => undefined);
  }
}

/**
 * Under cgroup v1, crun bind-mounts the container's own cgroup of every hierarchy into it
 * (/sys/fs/cgroup/<ctrl>/<id>); restored under a new id, those mounts must come from the new
 * id's cgroups, which must exist before CRIU mounts them (cpuset ones with the parent's cpus
 * and mems, or no task could join them).
 */
async function cgroupMountsFor(mounts: ContainerTarget['externalMounts'], id: string): Promise<ContainerTarget['externalMounts']> {
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
async function stdioPipes(stdio: string[], stdoutLog: string, stderrLog: string): Promise<{ fds: { key: string; fd: number }[]; close(): void }> {
  const wanted = stdio.map((d, fd) => ({ d, fd })).filter((x) => x.fd > 0 && x.d.startsWith('pipe:'));
  if (!wanted.length) return { fds: [], close() { /* none */ } };
  const opens = wanted.map((w) => `exec ${w.fd + 10}> >(exec cat >>"$FERRY_LOG${w.fd}")`).join('; ');
  const holder = spawn('bash', ['-c', `${opens}; echo ready; read -r _`], {
    env: { ...process.env, FERRY_LOG1: stdoutLog, FERRY_LOG2: stderrLog }, stdio: ['pipe', 'pipe', 'ignore'],
  });
  const fds: { key: string; fd: number }[] = [];
  try {
    await new Promise<void>((ok, bad) => {
      holder.once('error', bad);
      holder.once('exit', () => bad(new FerryError('ERR_CONTAINER_RESTORE', 'the helper that makes the stdio pipes exited early')));
      holder.stdout?.once('data', () => ok());
    });
    for (const w of wanted) fds.push({ key: w.d, fd: openSync(`/proc/${holder.pid}/fd/${w.fd + 10}`, fsc.O_WRONLY) });
  } finally {
    holder.stdin?.end();
  }
  return { fds, close() { for (const f of fds) closeSync(f.fd); } };
}

async function restoreError(id: string, logPath: string, runtimeSaid: string | undefined, cause?: CriuOperationError): Promise<FerryError> {
  const log = await summarizeLogFile(logPath);
  const first = log.firstError ?? cause?.firstError ?? runtimeSaid ?? 'no reason given';
  const hint = hintFor(first, log.excerpt.map((l) => l.text).join('\n'));
  const detail = [
    log.excerpt.length ? `CRIU log around the first error${log.firstErrorAt ? ` (${log.firstErrorAt})` : ''}:\n${formatLogLines(log.excerpt)}` : undefined,
    runtimeSaid ? `runtime said: ${runtimeSaid}` : undefined,
    `full log: ${logPath}`,
  ].filter(Boolean).join('\n');
  return new FerryError('ERR_CONTAINER_RESTORE', `cannot restore container ${id}: ${first}`, {
    detail, ...(hint ? { hint } : {}), ...(cause ? { cause } : {}),
  });
}
