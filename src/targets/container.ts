import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readlink, rename, writeFile } from 'node:fs/promises';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { resolveCriuBinary } from '../criu/binary.js';
import { FerryError, errnoCode } from '../util/errors.js';
import { findOnPath } from '../util/path.js';
import { processStartTime } from './process.js';

/**
 * OCI containers as checkpoint targets: `container:<id>` of runc or crun. What is read here:
 * the runtime's own view (`<runtime> state <id>`), the bundle's config.json, and the
 * container's stdio as the kernel shows it. Nothing here talks to CRIU.
 */

export const RUNTIMES = ['runc', 'crun'] as const;
export type Runtime = (typeof RUNTIMES)[number];

/** The state directories runc and crun use by default (as root). */
export const DEFAULT_RUNTIME_ROOT: Readonly<Record<Runtime, string>> = { runc: '/run/runc', crun: '/run/crun' };

/**
 * The runtime's state directory on this host: $FERRY_RUNC_ROOT / $FERRY_CRUN_ROOT, else the
 * runtime's own default. (Hosts sharing one machine — the testbed — each have their own, so a
 * container restored on one does not collide with its original on another.)
 */
export function runtimeRoot(rt: Runtime): string {
  return process.env[rt === 'runc' ? 'FERRY_RUNC_ROOT' : 'FERRY_CRUN_ROOT'] || DEFAULT_RUNTIME_ROOT[rt];
}

const TARGET_PREFIX = 'container:';
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** The id in `container:<id>`, or undefined when `target` is not a container target. */
export function parseContainerTarget(target: string): string | undefined {
  if (!target.startsWith(TARGET_PREFIX)) return undefined;
  const id = target.slice(TARGET_PREFIX.length);
  if (!ID_RE.test(id)) {
    throw new FerryError('ERR_USAGE', `'${target}' is not a valid container target`, {
      hint: 'write container:<id>, the id as `runc list` or `crun list` shows it (letters, digits, _ . -)',
    });
  }
  return id;
}

export function isRuntime(s: string): s is Runtime {
  return (RUNTIMES as readonly string[]).includes(s);
}

/** The runtime's binary on PATH; a clear error when it is missing. */
export function runtimeBinary(runtime: Runtime, env: NodeJS.ProcessEnv = process.env): string {
  const found = findOnPath(runtime, env);
  if (found) return found;
  throw new FerryError('ERR_RUNTIME_MISSING', `${runtime} is not installed (not on PATH)`, { hint: `install ${runtime} (ferry's setup installs it from Debian)` });
}

/**
 * The environment for running a runtime: ferry's CRIU first on PATH, because runc execs
 * `criu` from PATH (and would otherwise pick Debian's 3.17, which does not start on new kernels).
 */
export function runtimeEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const criu = resolveCriuBinary(env);
  if (!criu) return { ...env };
  return { ...env, PATH: [dirname(criu.path), env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin'].join(delimiter) };
}

export interface RunResult { code: number; stdout: string; stderr: string }

/** Runs the runtime with its global --root; never throws for a non-zero exit (callers decide). */
export function runRuntime(runtime: Runtime, root: string, args: string[], timeoutMs = 60_000): Promise<RunResult> {
  const bin = runtimeBinary(runtime);
  return new Promise((ok) => {
    execFile(bin, ['--root', root, ...args], { env: runtimeEnv(), timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      ok({ code, stdout, stderr });
    });
  });
}

/** What `<runtime> state <id>` says. */
export interface ContainerState {
  id: string;
  pid: number;
  status: string;
  bundle: string;
  rootfs: string;
  created: string;
}

/** The runtime's state of a container, or undefined when the runtime does not know the id. */
export async function containerState(runtime: Runtime, root: string, id: string): Promise<ContainerState | undefined> {
  const r = await runRuntime(runtime, root, ['state', id], 15_000);
  if (r.code !== 0) {
    if (/does not exist|not found|No such file/i.test(r.stderr)) return undefined;
    throw new FerryError('ERR_RUNTIME', `\`${runtime} state ${id}\` failed: ${firstLine(r.stderr)}`, { hint: `check \`${runtime} --root ${root} list\`` });
  }
  let s: Partial<Record<'id' | 'status' | 'bundle' | 'rootfs' | 'created', string> & { pid: number }>;
  try {
    s = JSON.parse(r.stdout) as typeof s;
  } catch {
    throw new FerryError('ERR_RUNTIME', `\`${runtime} state ${id}\` printed something that is not JSON`, { detail: r.stdout.slice(0, 400) });
  }
  return {
    id: s.id ?? id,
    pid: Number(s.pid ?? 0),
    status: s.status ?? 'unknown',
    bundle: s.bundle ?? '',
    rootfs: s.rootfs ?? '',
    created: s.created ?? '',
  };
}

export interface ResolvedContainer { runtime: Runtime; root: string; state: ContainerState }

/**
 * Finds a container by id: in the given runtime, or (without one) in runc's and then crun's
 * state directory. Refuses an unknown id, naming where it looked.
 */
export async function findContainer(id: string, runtime?: Runtime, root?: string): Promise<ResolvedContainer> {
  const candidates: Runtime[] = runtime ? [runtime] : [...RUNTIMES];
  for (const rt of candidates) {
    const r = root ?? runtimeRoot(rt);
    if (!runtime && !existsSync(r)) continue;
    const state = await containerState(rt, r, id);
    if (state) return { runtime: rt, root: r, state };
  }
  const where = candidates.map((rt) => `${rt} (${root ?? runtimeRoot(rt)})`).join(', ');
  throw new FerryError('ERR_NO_CONTAINER', `no container '${id}' in ${where}`, {
    hint: `list containers with \`runc list\` / \`crun list\`; pass --runtime and --runtime-root if it lives elsewhere`,
  });
}

/** The parts of an OCI runtime spec (config.json) ferry uses. */
export interface OciMount { destination: string; type?: string; source?: string; options?: string[] }
export interface OciSpec {
  process?: { args?: string[]; terminal?: boolean };
  root?: { path: string; readonly?: boolean };
  mounts?: OciMount[];
  linux?: { namespaces?: { type: string; path?: string }[]; cgroupsPath?: string };
  [key: string]: unknown;
}

export async function readBundleSpec(bundle: string): Promise<{ spec: OciSpec; text: string; rootfs: string }> {
  const path = join(bundle, 'config.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new FerryError('ERR_NO_BUNDLE', `cannot read the bundle's config.json: ${path} (${errnoCode(err) ?? (err as Error).message})`, {
      cause: err, hint: 'pass --bundle DIR, a directory holding the container\'s config.json (and its rootfs)',
    });
  }
  let spec: OciSpec;
  try {
    spec = JSON.parse(text) as OciSpec;
  } catch (err) {
    throw new FerryError('ERR_NO_BUNDLE', `${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  const rootPath = spec.root?.path ?? 'rootfs';
  return { spec, text, rootfs: isAbsolute(rootPath) ? rootPath : resolve(bundle, rootPath) };
}

/** True for bind mounts: CRIU must treat them as external (their source is outside the container). */
export function isBindMount(m: OciMount): boolean {
  return m.type === 'bind' || (m.options ?? []).some((o) => o === 'bind' || o === 'rbind');
}

/** Namespace types the container gets fresh (no `path`), as the spec names them. */
export function ownNamespaces(spec: OciSpec): string[] {
  return (spec.linux?.namespaces ?? []).filter((n) => !n.path).map((n) => n.type);
}

/** The container init's fds 0-2 as the kernel names them (`/dev/null`, `pipe:[123]`, a path, `socket:[9]`). */
export async function stdioDescriptors(pid: number): Promise<string[]> {
  const out: string[] = [];
  for (const fd of [0, 1, 2]) out.push(await readlink(`/proc/${pid}/fd/${fd}`).catch(() => ''));
  return out;
}

/** The freezer cgroup of a process under cgroup v1 (an absolute path), when there is one. */
export async function freezerCgroup(pid: number): Promise<string | undefined> {
  const text = await readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const [, ctrls, path] = line.split(':');
    if (ctrls?.split(',').includes('freezer') && path !== undefined) {
      const p = join('/sys/fs/cgroup/freezer', path);
      if (existsSync(join(p, 'freezer.state'))) return p;
    }
  }
  return undefined;
}

/**
 * Registers a restored process tree with crun as container `id`, the way `crun restore`
 * records a restored container: a state directory with the spec and a status file. After this,
 * `crun state/exec/kill/delete <id>` work on it.
 */
export async function adoptIntoCrun(root: string, id: string, c: {
  pid: number; bundle: string; rootfs: string; specText: string; cgroupPath: string; stdio: string[];
}): Promise<void> {
  const dir = join(root, id);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(join(dir, 'config.json'), c.specText, { mode: 0o700 });
  const status = {
    pid: c.pid,
    'process-start-time': await processStartTime(c.pid),
    'cgroup-path': c.cgroupPath,
    scope: '',
    rootfs: c.rootfs,
    'systemd-cgroup': false,
    bundle: c.bundle,
    created: new Date().toISOString(),
    owner: 'root',
    detached: true,
    external_descriptors: JSON.stringify(c.stdio),
  };
  await writeFile(join(dir, 'status.tmp'), JSON.stringify(status, null, 4) + '\n', { mode: 0o700 });
  await rename(join(dir, 'status.tmp'), join(dir, 'status'));
}

export function firstLine(s: string): string {
  return s.split('\n').map((l) => l.trim()).find((l) => l.length > 0) ?? '(no output)';
}
