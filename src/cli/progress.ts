import { engineChannels, type PhaseEvent, type TransferEvent } from '../engine/channels.js';

/** How each engine phase reads on the progress line. */
const PHASE: Record<string, string> = {
  resolve: 'checking the target',
  criu: 'CRIU at work',
  seal: 'checksumming and committing',
  verify: 'verifying checksums',
  preflight: 'checking this host',
  freeze: 'freezing',
  transfer: 'sending the images',
  restore: 'restoring on the destination',
  handoff: 'handing off',
  commit: 'committing',
  hold: 'held for the commit',
};

export interface ProgressLine {
  /**
   * A state that outranks the phase while it lasts (e.g. "queued (position 2 of 5)" while an
   * agent's job waits); undefined clears it. Off a terminal (and without --json) each new note
   * is written as a line of its own, so logs show a wait too.
   */
  note(text: string | undefined): void;
  stop(): void;
}

/**
 * A one-line progress display on stderr for long operations (only on a terminal, never with
 * --json): elapsed time and the engine phase in progress, from the engine's phase channel.
 */
export function startProgress(what: string, json: boolean): () => void {
  const line = progressLine(what, json);
  return () => line.stop();
}

/** startProgress, with notes (see ProgressLine). */
export function progressLine(what: string, json: boolean): ProgressLine {
  if (json) return { note: () => undefined, stop: () => undefined };
  if (!process.stderr.isTTY) {
    let last: string | undefined;
    return {
      note(text) {
        if (text !== undefined && text !== last) process.stderr.write(`${what}: ${text}\n`);
        last = text;
      },
      stop: () => undefined,
    };
  }
  const started = Date.now();
  let phase = 'starting';
  let note: string | undefined;
  const onPhase = (m: unknown) => {
    const e = m as PhaseEvent;
    if (e.state === 'start') phase = PHASE[e.phase] ?? e.phase;
  };
  // A transfer shows its bytes and rate.
  let sendStart: { at: number; bytes: number } | undefined;
  const onTransfer = (m: unknown) => {
    const e = m as TransferEvent;
    sendStart ??= { at: Date.now(), bytes: e.bytes };
    const s = (Date.now() - sendStart.at) / 1000;
    const rate = s > 0 ? `, ${((e.bytes - sendStart.bytes) / 1e6 / s).toFixed(0)} MB/s` : '';
    phase = `sending the images: ${(e.bytes / 2 ** 20).toFixed(1)} of ~${(e.totalBytes / 2 ** 20).toFixed(0)} MiB${rate}`;
  };
  engineChannels.phase.subscribe(onPhase);
  engineChannels.transfer.subscribe(onTransfer);
  const draw = () => process.stderr.write(`\r\x1b[2K${what}: ${note ?? phase} … ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const timer = setInterval(draw, 100);
  return {
    note(text) { note = text; },
    stop() {
      clearInterval(timer);
      engineChannels.phase.unsubscribe(onPhase);
      engineChannels.transfer.unsubscribe(onTransfer);
      process.stderr.write('\r\x1b[2K');
    },
  };
}
