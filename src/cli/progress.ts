import diagnostics_channel from 'node:diagnostics_channel';
import type { CriuNotifyEvent } from '../criu/channels.js';

const PHASE: Record<string, string> = {
  'pre-dump': 'freezing and dumping',
  'query-ext-files': 'dumping',
  'network-lock': 'network locked, dumping',
  'post-dump': 'images written',
  'pre-restore': 'restoring',
  'post-restore': 'restored, resuming',
  'post-resume': 'resumed',
};

/**
 * A one-line progress display on stderr for long operations (only on a terminal, never
 * with --json): elapsed time and the phase CRIU last reported through its notifications.
 */
export function startProgress(what: string, json: boolean): () => void {
  if (json || !process.stderr.isTTY) return () => undefined;
  const started = Date.now();
  let phase = 'starting';
  const onNotify = (m: unknown) => { phase = PHASE[(m as CriuNotifyEvent).script] ?? phase; };
  diagnostics_channel.subscribe('ferry:criu:notify', onNotify);
  const draw = () => process.stderr.write(`\r\x1b[2K${what}: ${phase} … ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const timer = setInterval(draw, 100);
  return () => {
    clearInterval(timer);
    diagnostics_channel.unsubscribe('ferry:criu:notify', onNotify);
    process.stderr.write('\r\x1b[2K');
  };
}
