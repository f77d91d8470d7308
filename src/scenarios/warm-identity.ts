import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { resolveExecutable } from '../targets/exec-path.js';
import { FerryError } from '../util/errors.js';

/**
 * What a warm snapshot stands for: everything that decides the state a program boots into and
 * that ferry can see from outside — the executable's content, the arguments, the environment,
 * the working directory and the input files the user names (`--input FILE`). A warm restore is
 * allowed only while all of them are what they were when the snapshot was taken.
 *
 * Only digests are kept for the arguments and the environment (they may hold secrets; the
 * store is root's, but a digest is enough to compare). Environment variables are digested one by
 * one so that a cold boot can say which variable changed.
 */
export interface RunIdentity {
  executable: FileIdentity;
  argsDigest: string;
  argCount: number;
  /** Per variable: sha256 of `NAME=value`, by name. */
  env: Record<string, string>;
  cwd: string;
  inputs: FileIdentity[];
}

/**
 * A file by content. `stat` is what the file looked like when `sha256` was computed: an input
 * whose device, inode, size, mtime and ctime are all unchanged is not read again (ctime cannot be
 * set from user space, so any write or rename moves it), which keeps a warm start of a program
 * with a large dataset from re-hashing the dataset every time.
 */
export interface FileIdentity {
  path: string;
  size: number;
  sha256: string;
  stat: string;
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

function statKey(st: { dev: bigint; ino: bigint; size: bigint; mtimeNs: bigint; ctimeNs: bigint }): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/** sha256 of a file's content, streamed (a dataset may be large). */
function hashFile(path: string): Promise<string> {
  return new Promise((ok, bad) => {
    const h = createHash('sha256');
    createReadStream(path, { highWaterMark: 1 << 20 })
      .on('data', (chunk) => h.update(chunk))
      .once('error', bad)
      .once('end', () => ok(h.digest('hex')));
  });
}

/** A file's identity; `known` (the one recorded before) spares the read when its stat is unchanged. */
export async function fileIdentity(path: string, what: string, known?: FileIdentity): Promise<FileIdentity> {
  const st = await stat(path, { bigint: true }).catch((err: unknown) => {
    throw new FerryError('ERR_USAGE', `${what} ${path} cannot be read: ${(err as Error).message}`, { hint: 'name an existing file' });
  });
  if (!st.isFile()) throw new FerryError('ERR_USAGE', `${what} ${path} is not a regular file`, { hint: 'name a regular file (a directory is not hashed)' });
  const key = statKey(st);
  if (known && known.path === path && known.stat === key) return known;
  return { path, size: Number(st.size), sha256: await hashFile(path), stat: key };
}

/**
 * Variables left out of the comparison: `_` (the shell sets it to the path of whatever command it
 * ran last, so `time ferry …` and `ferry …` would differ) and ferry's own settings (FERRY_STORE,
 * FERRY_MEMORY_TIER, …), which configure ferry, not the program.
 */
export function ignoredVariable(name: string): boolean {
  return name === '_' || name.startsWith('FERRY_');
}

export interface RunSpec {
  command: string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  inputs: string[];
}

/** Computes a run's identity, re-using the digests of `known` for files whose stat is unchanged. */
export async function runIdentity(spec: RunSpec, known?: RunIdentity): Promise<RunIdentity> {
  const exe = await resolveExecutable(spec.command[0] ?? '', spec.env, spec.cwd);
  // Refused here, before anything starts (as `run` refuses it).
  if (!exe.ok) throw new FerryError('ERR_RUN_EXEC', `cannot run ${spec.command[0] ?? ''}: ${exe.why} [${exe.errno}]`, { hint: 'give an absolute path, e.g. ferry run -- /usr/bin/CMD' });
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(spec.env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (v !== undefined && !ignoredVariable(k)) env[k] = sha256(`${k}=${v}`);
  }
  const inputs: FileIdentity[] = [];
  for (const p of spec.inputs) {
    const path = resolve(spec.cwd, p);
    inputs.push(await fileIdentity(path, '--input', known?.inputs.find((i) => i.path === path)));
  }
  return {
    executable: await fileIdentity(exe.path, 'the executable', known?.executable),
    argsDigest: sha256(JSON.stringify(spec.command)),
    argCount: spec.command.length,
    env,
    cwd: spec.cwd,
    inputs,
  };
}

/** Why `now` is not the identity a snapshot was taken with: one line per difference (empty: the same). */
export function identityChanges(then: RunIdentity, now: RunIdentity): string[] {
  const out: string[] = [];
  if (then.executable.path !== now.executable.path) out.push(`the executable changed (${then.executable.path} → ${now.executable.path})`);
  else if (then.executable.sha256 !== now.executable.sha256) out.push(`the executable ${now.executable.path} changed (its content)`);
  if (then.argsDigest !== now.argsDigest) out.push('the arguments changed');
  const names = [...new Set([...Object.keys(then.env), ...Object.keys(now.env)])].sort();
  const envDiff = names.flatMap((n) => {
    const a = then.env[n];
    const b = now.env[n];
    if (a === b) return [];
    return [`${n} (${a === undefined ? 'added' : b === undefined ? 'removed' : 'changed'})`];
  });
  if (envDiff.length) out.push(`the environment changed: ${envDiff.slice(0, 8).join(', ')}${envDiff.length > 8 ? `, and ${envDiff.length - 8} more` : ''}`);
  if (then.cwd !== now.cwd) out.push(`the working directory changed (${then.cwd} → ${now.cwd})`);
  const before = new Map(then.inputs.map((i) => [i.path, i]));
  const after = new Map(now.inputs.map((i) => [i.path, i]));
  for (const [p, i] of after) {
    const b = before.get(p);
    if (!b) out.push(`input ${p} is new`);
    else if (b.sha256 !== i.sha256) out.push(`input ${p} changed (its content)`);
  }
  for (const p of before.keys()) if (!after.has(p)) out.push(`input ${p} is no longer given`);
  return out;
}
