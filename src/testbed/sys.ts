/**
 * Runs the system tools the testbed is made with (ip, tc, nsenter), each with a watchdog, and
 * turns a failure into a FerryError that names the command and what it said.
 */
import { execFile } from 'node:child_process';
import { FerryError } from '../util/errors.js';

/** No ip/tc call takes more than a fraction of a second; a stuck one is ended. */
const TOOL_TIMEOUT_MS = 10_000;

export interface ToolResult { code: number; stdout: string; stderr: string }

/** Runs a tool; never throws for a non-zero exit (the caller decides). */
export function runTool(file: string, args: readonly string[], timeoutMs = TOOL_TIMEOUT_MS): Promise<ToolResult> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (!err) return resolve({ code: 0, stdout, stderr });
      const e = err as NodeJS.ErrnoException & { code?: unknown; killed?: boolean };
      const why = typeof e.code === 'string' ? `${file}: ${e.code}` : e.killed ? `timed out after ${timeoutMs} ms` : '';
      resolve({ code: typeof e.code === 'number' ? e.code : 127, stdout, stderr: stderr || why });
    });
  });
}

/** Runs a tool and throws ERR_TESTBED_SETUP when it fails; returns its stdout. */
export async function mustRun(file: string, args: readonly string[], what: string, hint?: string): Promise<string> {
  const r = await runTool(file, args);
  if (r.code !== 0) {
    throw new FerryError('ERR_TESTBED_SETUP', `testbed: ${what} failed: \`${file} ${args.join(' ')}\` exited ${r.code}: ${r.stderr.trim() || '(no message)'}`, {
      hint: hint ?? 'the testbed needs root, iproute2 (ip, tc) and util-linux (nsenter); `ferry testbed down` removes what was made',
    });
  }
  return r.stdout;
}

/** `ip -n NS ARGS…` (or the root namespace without one). */
export function ip(netns: string | undefined, args: readonly string[], what: string): Promise<string> {
  return mustRun('ip', netns === undefined ? args : ['-n', netns, ...args], what);
}

/** `tc -n NS ARGS…`. */
export function tc(netns: string, args: readonly string[], what: string, hint?: string): Promise<string> {
  return mustRun('tc', ['-n', netns, ...args], what, hint);
}

/** Parses a tool's JSON output (`ip -j`, `tc -j`); empty output is an empty list. */
export function parseJsonList(text: string, what: string): unknown[] {
  if (text.trim() === '') return [];
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) ? v : [];
  } catch (err) {
    throw new FerryError('ERR_TESTBED_SETUP', `testbed: cannot read the JSON of ${what}: ${(err as Error).message}`, { hint: 'iproute2 with JSON output (-j) is needed (Debian 10 or newer)' });
  }
}
