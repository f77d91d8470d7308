import type { CriuOptions } from '../criu/options.js';
import type { RecordedOptions } from '../store/manifest.js';

/**
 * The CRIU options a user chooses at checkpoint, as the manifest records them. Most must be
 * given to CRIU again at restore (a snapshot taken with --tcp-established can only be restored
 * with it); ferry repeats them itself. This module is the one place they become CRIU options
 * and runtime flags, for dump and for restore.
 */

/** Options the restore side may add that the snapshot does not record. */
export interface RestoreOnlyOptions {
  /** Restore established TCP connections as closed (`--tcp-close`): the peers are gone. */
  tcpClose?: boolean;
  /** Post-copy: anonymous memory comes later, through userfaultfd (`--lazy-pages`). */
  lazyPages?: boolean;
}

export type { RecordedOptions };

/** Only the set fields: CRIU's options distinguish "unset" from "false". */
function common(o: RecordedOptions): Partial<CriuOptions> {
  return {
    ...(o.tcpEstablished ? { tcpEstablished: true } : {}),
    ...(o.extUnixSk ? { extUnixSk: true } : {}),
    ...(o.fileLocks ? { fileLocks: true } : {}),
    ...(o.shellJob ? { shellJob: true } : {}),
    ...(o.linkRemap ? { linkRemap: true } : {}),
    ...(o.external?.length ? { external: [...o.external] } : {}),
  };
}

/** CRIU options for a dump with these recorded options. */
export function dumpCriuOptions(o: RecordedOptions): Partial<CriuOptions> {
  return {
    ...common(o),
    ...(o.skipInFlight ? { tcpSkipInFlight: true } : {}),
    ...(o.ghostLimit !== undefined ? { ghostLimit: o.ghostLimit } : {}),
    ...(o.forceIrmap ? { forceIrmap: true } : {}),
  };
}

/** CRIU options for a restore of a snapshot taken with these options. */
export function restoreCriuOptions(o: RecordedOptions, extra: RestoreOnlyOptions = {}): Partial<CriuOptions> {
  return { ...common(o), ...(extra.tcpClose ? { tcpClose: true } : {}), ...(extra.lazyPages ? { lazyPages: true } : {}) };
}

/** Recorded options runc (1.1) has no flag for: a runc checkpoint or restore with them is refused. */
export function runcUnsupported(o: RecordedOptions, extra: RestoreOnlyOptions = {}): string[] {
  return [
    ...(o.skipInFlight ? ['--skip-in-flight'] : []),
    ...(o.ghostLimit !== undefined ? ['--ghost-limit'] : []),
    ...(o.forceIrmap ? ['--force-irmap'] : []),
    ...(o.linkRemap ? ['--link-remap'] : []),
    ...(o.external?.length ? ['--external'] : []),
    ...(extra.tcpClose ? ['--tcp-close'] : []),
  ];
}

/** runc's flags for the same options (`runc checkpoint` / `runc restore`); see runcUnsupported. */
export function runcFlags(o: RecordedOptions): string[] {
  const f: string[] = [];
  if (o.tcpEstablished) f.push('--tcp-established');
  if (o.extUnixSk) f.push('--ext-unix-sk');
  if (o.fileLocks) f.push('--file-locks');
  if (o.shellJob) f.push('--shell-job');
  return f;
}

/** The options as recorded: only what was asked for, nothing that means "default". */
export function recordOptions(o: Partial<RecordedOptions>): RecordedOptions {
  return {
    tcpEstablished: o.tcpEstablished === true,
    extUnixSk: o.extUnixSk === true,
    fileLocks: o.fileLocks === true,
    shellJob: o.shellJob === true,
    ...(o.skipInFlight ? { skipInFlight: true } : {}),
    ...(o.ghostLimit !== undefined ? { ghostLimit: o.ghostLimit } : {}),
    ...(o.forceIrmap ? { forceIrmap: true } : {}),
    ...(o.linkRemap ? { linkRemap: true } : {}),
    ...(o.external?.length ? { external: [...o.external] } : {}),
  };
}
