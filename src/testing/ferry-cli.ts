/**
 * Runs the real `bin/ferry` for end-to-end tests, and checks the two shapes every command's
 * outcome must have: success (exit 0), or one clear refusal (exit 1, `ferry: error:` first,
 * a hint, no stack trace).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../criu/binary.js';

export const FERRY = join(PROJECT_ROOT, 'bin', 'ferry');

export interface Ran { code: number; stdout: string; stderr: string }

export function ferryCli(store: string, args: string[], env: Record<string, string> = {}): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(FERRY, ['--store', store, ...args], { cwd: PROJECT_ROOT, env: { ...process.env, ...env }, timeout: 180_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

export async function ferryOk(store: string, args: string[], env?: Record<string, string>): Promise<string> {
  const r = await ferryCli(store, args, env);
  assert.equal(r.code, 0, `ferry ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

export async function ferryRefused(store: string, args: string[], pattern: RegExp, env?: Record<string, string>): Promise<Ran> {
  const r = await ferryCli(store, args, env);
  assert.equal(r.code, 1, `ferry ${args.join(' ')} should fail:\n${r.stdout}${r.stderr}`);
  assert.match(r.stderr.split('\n')[0] ?? '', /^ferry: error: /);
  assert.match(r.stderr, pattern);
  assert.match(r.stderr, /\nhint: /);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  return r;
}
