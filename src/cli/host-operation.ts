import type { HostOperationKind, HostOperationView } from '../scenarios/host-operations.js';
import { isErrorCode } from '../util/error-codes.js';
import { FerryError } from '../util/errors.js';
import type { CommandContext } from './command.js';
import { agentClient } from './remote.js';

/**
 * A host operation (`ferry host evacuate|restore`) through this host's agent: started there (it
 * runs in the background, its workloads as jobs) and polled until it ends. The agent's answers
 * are awaited each with a time limit; `limitMs` bounds the whole wait (the operation goes on on
 * the agent if this command gives up — or is interrupted — and says so).
 */
export async function remoteHostOperation(ctx: CommandContext, kind: HostOperationKind, body: Record<string, unknown>, limitMs: number): Promise<Record<string, unknown>> {
  const client = agentClient(ctx);
  const { operation } = await client.request<{ operation: HostOperationView }>('POST', `/v1/host/${kind}`, body);
  const deadline = Date.now() + limitMs;
  let op = operation;
  let signal: NodeJS.Signals | undefined;
  const on = (s: NodeJS.Signals) => () => { signal = s; };
  const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((s) => [s, on(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  try {
    while (op.state === 'running') {
      if (signal !== undefined || Date.now() > deadline) {
        throw new FerryError(signal !== undefined ? 'ERR_INTERRUPTED' : 'ERR_AGENT_UNREACHABLE', `stopped waiting for host ${kind} ${op.id} (${signal ?? `no end after ${Math.round(limitMs / 1000)} s`}); it goes on on the agent`, {
          hint: `follow it: GET /v1/host/operations/${op.id} on the agent`,
        });
      }
      await new Promise((r) => setTimeout(r, 250));
      ({ operation: op } = await client.request<{ operation: HostOperationView }>('GET', `/v1/host/operations/${op.id}`, undefined, { timeoutMs: 10_000 }));
    }
  } finally {
    for (const [s, h] of handlers) process.off(s, h);
  }
  if (op.state === 'failed' || !op.result) {
    const e = op.error;
    throw new FerryError(e && isErrorCode(e.code) ? e.code : 'ERR_INTERNAL', e?.message ?? `host ${kind} ${op.id} failed`, e?.hint !== undefined ? { hint: e.hint } : {});
  }
  return op.result;
}
