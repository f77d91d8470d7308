import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { delimiter, join, resolve } from 'node:path';
import { errnoCode } from '../util/errors.js';

/** What execvp would find for `file`, or why it cannot execute it. */
export type ExecResolution =
  | { ok: true; path: string }
  | { ok: false; errno: 'ENOENT' | 'EACCES'; path: string; why: string };

async function executable(path: string): Promise<ExecResolution> {
  try {
    const st = await stat(path);
    if (st.isDirectory()) return { ok: false, errno: 'EACCES', path, why: `${path} is a directory` };
    if (!st.isFile()) return { ok: false, errno: 'EACCES', path, why: `${path} is not a regular file` };
    await access(path, constants.X_OK);
    return { ok: true, path };
  } catch (err) {
    if (errnoCode(err) === 'EACCES') return { ok: false, errno: 'EACCES', path, why: `${path} is not executable (permission denied)` };
    return { ok: false, errno: 'ENOENT', path, why: `${path} does not exist` };
  }
}

/**
 * Resolves a command the way execvp does (a name with a slash is a path, relative to `cwd`;
 * otherwise the first executable match on PATH; EACCES when matches exist but none can run),
 * so `ferry run` can refuse before it starts anything. Whatever slips through (a bad
 * interpreter line, ENOEXEC) is caught after the start by watching the exec.
 */
export async function resolveExecutable(file: string, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Promise<ExecResolution> {
  if (file === '') return { ok: false, errno: 'ENOENT', path: file, why: 'the command is empty' };
  if (file.includes('/')) return executable(resolve(cwd, file));
  let denied: ExecResolution | undefined;
  for (const dir of (env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin').split(delimiter)) {
    const r = await executable(join(resolve(cwd, dir || '.'), file));
    if (r.ok) return r;
    if (r.errno === 'EACCES') denied ??= r;
  }
  return denied ?? { ok: false, errno: 'ENOENT', path: file, why: `${file} was not found on PATH` };
}
