import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { delimiter } from 'node:path';

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
  for (const dir of (env['PATH'] ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, 'criu');
    if (existsSync(p)) return { path: p, source: 'path' };
  }
  return undefined;
}
