import { engineChannels, type PhaseEvent } from '../engine/channels.js';

/** How each engine phase reads on the progress line. */
const PHASE: Record<string, string> = {
  resolve: 'checking the target',
  criu: 'CRIU at work',
  seal: 'checksumming and committing',
  verify: 'verifying checksums',
  preflight: 'checking this host',
};

/**
 * A one-line progress display on stderr for long operations (only on a terminal, never with
 * --json): elapsed time and the engine phase in progress, from the engine's phase channel.
 */
export function startProgress(what: string, json: boolean): () => void {
  if (json || !process.stderr.isTTY) return () => undefined;
  const started = Date.now();
  let phase = 'starting';
  const onPhase = (m: unknown) => {
    const e = m as PhaseEvent;
    if (e.state === 'start') phase = PHASE[e.phase] ?? e.phase;
  };
  engineChannels.phase.subscribe(onPhase);
  const draw = () => process.stderr.write(`\r\x1b[2K${what}: ${phase} … ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const timer = setInterval(draw, 100);
  return () => {
    clearInterval(timer);
    engineChannels.phase.unsubscribe(onPhase);
    process.stderr.write('\r\x1b[2K');
  };
}
