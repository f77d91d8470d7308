import { randomBytes } from 'node:crypto';
import { errorJson, FerryError } from '../util/errors.js';

/**
 * A host-wide operation (an evacuation, the restore after one) runs for as long as its jobs take
 * — longer than an HTTP request should wait — so the agent starts it in the background and
 * answers its id; callers poll its view. One at a time per host: two evacuations racing for the
 * same workloads would only fail each other's checkpoints.
 */
export type HostOperationKind = 'evacuate' | 'restore';

export interface HostOperationView {
  id: string;
  kind: HostOperationKind;
  state: 'running' | 'succeeded' | 'failed';
  startedAt: string;
  endedAt?: string;
  /** What the CLI's --json prints. */
  result?: Record<string, unknown>;
  error?: { code: string; message: string; hint?: string };
}

export const HOST_OPERATION_ID = /^h-[0-9a-f]{16}$/;

export class HostOperations {
  private readonly all = new Map<string, HostOperationView>();
  private running: string | undefined;

  start(kind: HostOperationKind, fn: () => Promise<Record<string, unknown>>): HostOperationView {
    if (this.running !== undefined) {
      const r = this.all.get(this.running);
      throw new FerryError('ERR_ALREADY_RUNNING', `a host ${r?.kind ?? 'operation'} (${this.running}) is running on this host`, { hint: `wait for it: GET /v1/host/operations/${this.running}` });
    }
    const op: HostOperationView = { id: `h-${randomBytes(8).toString('hex')}`, kind, state: 'running', startedAt: new Date().toISOString() };
    this.all.set(op.id, op);
    this.running = op.id;
    // Finished operations are history: the newest 50 are kept.
    for (const id of [...this.all.keys()].slice(0, Math.max(0, this.all.size - 50))) if (id !== op.id) this.all.delete(id);
    void (async () => {
      try {
        op.result = await fn();
        op.state = 'succeeded';
      } catch (err) {
        const e = errorJson(err) as { code: string; message: string; hint?: string };
        op.error = { code: e.code, message: e.message, ...(e.hint !== undefined ? { hint: e.hint } : {}) };
        op.state = 'failed';
      } finally {
        op.endedAt = new Date().toISOString();
        this.running = undefined;
      }
    })();
    return structuredClone(op);
  }

  get(id: string): HostOperationView {
    const op = this.all.get(id);
    if (!op) throw new FerryError('ERR_NO_EVACUATION', `no host operation '${id.slice(0, 80)}' on this agent`, { hint: 'operations are kept in memory: the newest 50, until the agent restarts' });
    return structuredClone(op);
  }

  /** Resolves once nothing runs (agent shutdown waits for its jobs anyway; this is for tests). */
  async idle(): Promise<void> {
    while (this.running !== undefined) await new Promise((r) => setTimeout(r, 20));
  }
}
