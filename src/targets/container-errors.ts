import type { CriuOperationError } from '../criu/errors.js';
import { hintFor } from '../criu/hints.js';
import { excerptBlock, summarizeLogFile } from '../criu/log.js';
import { FerryError } from '../util/errors.js';
import { containerState, firstLine, type Runtime } from './container.js';

/**
 * A failed container checkpoint or restore as one clear error: what CRIU could not handle (the
 * resource, by fd and name where the log says), what would help, the log excerpt, and — for a
 * checkpoint — whether the container still runs.
 */

const STDIO_NAMES = ['stdin', 'stdout', 'stderr'];

export async function checkpointError(
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
    excerptBlock(log),
    runtimeStderr.trim() ? `${runtime} said: ${firstLine(runtimeStderr.split('\n').reverse().join('\n'))}` : undefined,
    `full log: ${logPath}`,
    running ? `container ${id} is still running (pid ${still.pid})` : `container ${id} is ${still?.status ?? 'gone'}`,
  ].filter(Boolean).join('\n');
  const why = resource ?? first ?? firstLine(runtimeStderr);
  return new FerryError('ERR_CONTAINER_CHECKPOINT', `cannot checkpoint container ${id}: ${why}`, {
    detail, ...(hint ? { hint } : {}), ...(cause ? { cause } : {}),
  });
}

export async function restoreError(id: string, logPath: string, runtimeSaid: string | undefined, cause?: CriuOperationError): Promise<FerryError> {
  const log = await summarizeLogFile(logPath);
  const first = log.firstError ?? cause?.firstError ?? runtimeSaid ?? 'no reason given';
  const hint = hintFor(first, log.excerpt.map((l) => l.text).join('\n'));
  const detail = [
    excerptBlock(log),
    runtimeSaid ? `runtime said: ${runtimeSaid}` : undefined,
    `full log: ${logPath}`,
  ].filter(Boolean).join('\n');
  return new FerryError('ERR_CONTAINER_RESTORE', `cannot restore container ${id}: ${first}`, {
    detail, ...(hint ? { hint } : {}), ...(cause ? { cause } : {}),
  });
}
