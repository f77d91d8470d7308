import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import { FerryError } from '../util/errors.js';

/**
 * Where a network command acts: the network namespace of the calling process, or the named one
 * (`/run/netns/NAME`, as `ip netns add` makes them), or one given by an absolute path (e.g.
 * `/proc/PID/ns/net`, a running workload's).
 */
export interface NetnsOption {
  netns?: string;
}

export interface NetCommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Every ip/iptables call is quick; one that is not has hung (a lock, a stuck netlink socket). */
export const NET_COMMAND_TIMEOUT_MS = 10_000;

/** The Debian package that carries each tool, for the hint when it is missing. */
const PACKAGE: Readonly<Record<string, string>> = { ip: 'iproute2', iptables: 'iptables', arping: 'iputils-arping', nsenter: 'util-linux' };

const NETNS_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function netnsPath(name: string): string {
  if (name.startsWith('/')) return name;
  if (!NETNS_RE.test(name)) {
    throw new FerryError('ERR_NO_NETNS', `'${name}' is not a network namespace name`, { hint: 'give the name `ip netns list` shows (letters, digits, dot, dash, underscore)' });
  }
  return `/run/netns/${name}`;
}

/**
 * Runs `cmd args…` in the chosen network namespace, with a watchdog: a command still running
 * after `timeoutMs` is killed (SIGKILL) and reported as ERR_NET_TIMEOUT. A named namespace is
 * entered with `nsenter --net=…` only: `ip netns exec` would also give the command a fresh
 * mount namespace, which CRIU later trips over. Resolves with the exit status (non-zero is the
 * caller's to judge); a missing tool is ERR_NET_COMMAND with the package to install.
 */
export async function netCommand(cmd: string, args: readonly string[], opts: NetnsOption & { timeoutMs?: number } = {}): Promise<NetCommandResult> {
  const timeoutMs = opts.timeoutMs ?? NET_COMMAND_TIMEOUT_MS;
  let file = cmd;
  let argv = [...args];
  if (opts.netns !== undefined) {
    const path = netnsPath(opts.netns);
    await access(path).catch(() => {
      throw new FerryError('ERR_NO_NETNS', `no network namespace '${opts.netns ?? ''}' (${path} does not exist)`, { hint: '`ip netns list` shows the named network namespaces' });
    });
    file = 'nsenter';
    argv = [`--net=${path}`, '--', cmd, ...args];
  }
  const shown = [cmd, ...args].join(' ');
  return new Promise((resolve, reject) => {
    execFile(file, argv, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 4 << 20, env: { ...process.env, LC_ALL: 'C' } }, (err, stdout, stderr) => {
      if (!err) {
        resolve({ code: 0, stdout, stderr });
        return;
      }
      const e = err as Error & { killed?: boolean; signal?: string | null; code?: string | number | null };
      if (e.code === 'ENOENT') {
        reject(missing(file));
        return;
      }
      if (e.killed || e.signal === 'SIGKILL') {
        reject(new FerryError('ERR_NET_TIMEOUT', `\`${shown}\` did not finish within ${timeoutMs} ms and was killed`, {
          hint: 'another program may hold the xtables lock (/run/xtables.lock) or the network stack is stuck; retry, and look at `ps` for a hanging ip/iptables',
          ...(stderr ? { detail: stderr.trim() } : {}),
        }));
        return;
      }
      // nsenter reports a command it could not execute with status 127 (126: not executable).
      if (opts.netns !== undefined && (e.code === 127 || e.code === 126) && /failed to execute/.test(stderr)) {
        reject(missing(cmd));
        return;
      }
      resolve({ code: typeof e.code === 'number' ? e.code : 1, stdout, stderr });
    });
  });
}

function missing(tool: string): FerryError {
  const pkg = PACKAGE[tool];
  return new FerryError('ERR_NET_COMMAND', `${tool} is not installed (or not on PATH)`, {
    hint: pkg ? `install it: apt-get install ${pkg} (scripts/setup.sh does)` : `install ${tool}`,
  });
}

/** Runs the command and throws ERR_NET_COMMAND (with its stderr) when it exits non-zero. */
export async function netCommandOk(cmd: string, args: readonly string[], what: string, hint: string, opts: NetnsOption = {}): Promise<string> {
  const r = await netCommand(cmd, args, opts);
  if (r.code !== 0) {
    throw new FerryError('ERR_NET_COMMAND', `${what}: \`${[cmd, ...args].join(' ')}\` exited with status ${r.code}${firstLine(r.stderr)}`, {
      hint,
      ...(r.stderr.trim() ? { detail: r.stderr.trim() } : {}),
    });
  }
  return r.stdout;
}

function firstLine(s: string): string {
  const l = s.trim().split('\n')[0];
  return l ? `: ${l}` : '';
}
