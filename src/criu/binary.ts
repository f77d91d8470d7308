import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findOnPath } from '../util/path.js';

/** The project root (two levels above dist/criu or src/criu). */
export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Where the CRIU binary came from, for `ferry doctor` and error hints. */
export type CriuSource = 'env' | 'setup' | 'path';

export interface CriuBinary {
  path: string;
  source: CriuSource;
}

/**
 * Finds the CRIU binary ferry should use, in this order:
 *   1. $FERRY_CRIU (an explicit path),
 *   2. the one recorded by `scripts/setup.sh` in .deps/criu-path (a project-local build or the system one),
 *   3. `criu` on $PATH.
 * Returns undefined when none exists; callers turn that into an error with a remedy.
 */
export function resolveCriuBinary(env: NodeJS.ProcessEnv = process.env): CriuBinary | undefined {
  const fromEnv = env['FERRY_CRIU'];
  if (fromEnv) return { path: fromEnv, source: 'env' };
  const recorded = join(PROJECT_ROOT, '.deps', 'criu-path');
  if (existsSync(recorded)) {
    const p = readFileSync(recorded, 'utf8').trim();
    if (p && existsSync(p)) return { path: p, source: 'setup' };
  }
  const onPath = findOnPath('criu', env);
  return onPath ? { path: onPath, source: 'path' } : undefined;
}

/**
 * A small disk cache of facts about one CRIU binary (its VERSION answer), so that a short
 * command does not start CRIU once more only to ask what it already said. Entries are keyed by
 * the binary's identity — path, inode, size and mtime — so a rebuilt or replaced binary is
 * asked again. It lives in /run/ferry (tmpfs: emptied at boot, so a new kernel means fresh
 * answers; FERRY_CACHE_DIR moves it, FERRY_CACHE_DIR=off turns it off). It is only ever an
 * optimisation: every read or write failure means "not cached", never an error.
 */
export const DEFAULT_CACHE_DIR = '/run/ferry';
const CACHE_FILE = 'criu-binaries.json';
/** At most this many binaries are remembered (the oldest entries are dropped). */
const CACHE_ENTRIES = 16;

function cacheFile(env: NodeJS.ProcessEnv): string | undefined {
  const dir = env['FERRY_CACHE_DIR'] ?? DEFAULT_CACHE_DIR;
  return dir === '' || dir === 'off' ? undefined : join(dir, CACHE_FILE);
}

/** The identity of the file at `path` (undefined if it cannot be read). */
export function binaryIdentity(path: string): string | undefined {
  try {
    const st = statSync(path, { bigint: true });
    return `${resolve(path)}:${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`;
  } catch {
    return undefined;
  }
}

type CacheContents = Record<string, Record<string, unknown>>;

function readCache(file: string): CacheContents {
  try {
    const v: unknown = JSON.parse(readFileSync(file, 'utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? v as CacheContents : {};
  } catch {
    return {};
  }
}

/** The cached fact `key` about the binary at `path`, if its identity still matches. */
export function cachedBinaryFact(path: string, key: string, env: NodeJS.ProcessEnv = process.env): unknown {
  const file = cacheFile(env);
  const id = file && binaryIdentity(path);
  return id ? readCache(file)[id]?.[key] : undefined;
}

/** Remembers the fact `key` about the binary at `path` (best effort, atomic replace). */
export function cacheBinaryFact(path: string, key: string, value: unknown, env: NodeJS.ProcessEnv = process.env): void {
  const file = cacheFile(env);
  const id = file && binaryIdentity(path);
  if (!file || !id) return;
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    const all = readCache(file);
    const entry = { ...all[id], [key]: value };
    delete all[id];
    const kept = Object.entries(all).slice(-(CACHE_ENTRIES - 1));
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    writeFileSync(tmp, JSON.stringify(Object.fromEntries([...kept, [id, entry]])) + '\n', { mode: 0o600 });
    renameSync(tmp, file);
  } catch {
    // Not cached; the next run asks CRIU again.
    try { rmSync(tmp, { force: true }); } catch { /* there was no temporary file */ }
  }
}
