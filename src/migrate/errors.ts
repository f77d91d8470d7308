import { FerryError, type ErrorCode, type FerryErrorOptions } from '../util/errors.js';

/** Where the workload is after a failed migration: said in every migration error. */
export type WorkloadWhere = string;

/**
 * A migration's failure: the cause's code, the phase it happened in, and where the workload is
 * now ("running on source", "running on destination", or the snapshot it can be restored from).
 */
export class MigrationError extends FerryError {
  readonly phase: string;
  readonly workload: WorkloadWhere;

  constructor(code: ErrorCode, message: string, options: FerryErrorOptions & { phase: string; workload: WorkloadWhere }) {
    super(code, message, options);
    this.name = 'MigrationError';
    this.phase = options.phase;
    this.workload = options.workload;
  }

  override jsonFields(): Record<string, unknown> {
    return { phase: this.phase, workload: this.workload };
  }
}
