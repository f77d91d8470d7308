import type { OperationRecorder } from '../telemetry/operation.js';
import { engineChannels, type CriticalEvent, type EngineOperation, type PhaseEvent } from './channels.js';

/**
 * An engine operation's phases, timed in one place: each phase publishes its start and end on
 * the engine's phase channel and adds its duration to the operation's telemetry.
 */
export class Phases {
  constructor(readonly operation: EngineOperation, readonly rec: OperationRecorder) {}

  async run<T>(phase: string, fn: () => Promise<T>): Promise<T> {
    this.publish({ id: this.rec.id, operation: this.operation, phase, state: 'start' });
    const t0 = Date.now();
    try {
      return await this.rec.time(phase, fn);
    } finally {
      this.publish({ id: this.rec.id, operation: this.operation, phase, state: 'end', ms: Date.now() - t0 });
    }
  }

  /** Announces a point reached without a duration (e.g. "images written"). */
  mark(phase: string): void {
    this.publish({ id: this.rec.id, operation: this.operation, phase, state: 'start' });
  }

  critical(entered: boolean, what: string): void {
    if (engineChannels.critical.hasSubscribers) {
      engineChannels.critical.publish({ id: this.rec.id, operation: this.operation, entered, what } satisfies CriticalEvent);
    }
  }

  private publish(e: PhaseEvent): void {
    if (engineChannels.phase.hasSubscribers) engineChannels.phase.publish(e);
  }
}
