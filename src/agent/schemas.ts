import { z } from 'zod';
import { SNAPSHOT_ID_PATTERN } from '../store/manifest.js';
import type { CheckpointRequest, RestoreRequest } from '../engine/engine.js';

/**
 * The agent's request bodies and ids, one zod schema each: validation and the OpenAPI document
 * (openapi.ts) come from the same definitions. Bodies mirror the CLI's flags in camelCase; sizes
 * are bytes. Objects are strict: an unknown field is refused, not ignored.
 */

/** Snapshot ids (the store's pattern: no '/', never '..'). */
export const SnapshotId = z.string().regex(SNAPSHOT_ID_PATTERN).refine((s) => !s.includes('..'), 'must not contain ..');
export const JobId = z.string().regex(/^j-[0-9a-f]{16}$/);

const Path = z.string().min(1).max(4096).regex(/^\/[^\0]*$/, 'must be an absolute path');
const Bytes = z.number().int().min(0).max(2 ** 50);
const Priority = z.number().int().min(-1000).max(1000).optional()
  .describe('higher is admitted first, in the job queue and for a freeze slot (default 0)');

export const CheckpointBody = z.strictObject({
  target: z.union([
    z.string().regex(/^[A-Za-z0-9][A-Za-z0-9:._-]{0,255}$/, 'a pid, a workload name or container:ID'),
    z.number().int().min(1).max(2 ** 22),
  ]).describe('a pid, a `ferry run` workload name, or container:ID'),
  name: SnapshotId.optional(),
  leaveRunning: z.boolean().optional(),
  tier: z.enum(['memory', 'disk']).optional(),
  tcpEstablished: z.boolean().optional(),
  extUnixSk: z.boolean().optional(),
  fileLocks: z.boolean().optional(),
  shellJob: z.boolean().optional(),
  skipInFlight: z.boolean().optional(),
  ghostLimit: Bytes.optional(),
  forceIrmap: z.boolean().optional(),
  linkRemap: z.boolean().optional(),
  external: z.array(z.string().min(1).max(4096)).max(64).optional(),
  memoryBudget: Bytes.optional().describe("the memory tier's budget in bytes (the CLI's --memory-budget)"),
  spillToDisk: z.boolean().optional(),
  dedup: z.union([z.enum(['newest-flat', 'forward']), z.literal(false)]).optional(),
  maxDepth: z.number().int().min(0).max(1000).optional(),
  runtime: z.enum(['runc', 'crun']).optional(),
  runtimeRoot: Path.optional(),
  priority: Priority,
});
export type CheckpointBody = z.infer<typeof CheckpointBody>;

export const RestoreBody = z.strictObject({
  snapshot: SnapshotId,
  as: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9:._-]{0,255}$/).optional(),
  clone: z.boolean().optional(),
  tcpClose: z.boolean().optional(),
  bundle: Path.optional(),
  runtime: z.enum(['runc', 'crun']).optional(),
  runtimeRoot: Path.optional(),
  priority: Priority,
});
export type RestoreBody = z.infer<typeof RestoreBody>;

/** The engine's request for a checkpoint body (what `ferry checkpoint` builds from its flags). */
export function checkpointRequest(b: CheckpointBody): CheckpointRequest {
  const { memoryBudget, spillToDisk, tier, priority: _, ...rest } = b;
  const req: CheckpointRequest = { tier: tier ?? 'disk', target: rest.target, memoryBudget: {
    ...(memoryBudget !== undefined ? { memoryBudgetBytes: memoryBudget } : {}),
    ...(spillToDisk !== undefined ? { spillToDisk } : {}),
  } };
  for (const [k, v] of Object.entries(rest)) if (v !== undefined) (req as unknown as Record<string, unknown>)[k] = v;
  return req;
}

export function restoreRequest(b: RestoreBody): RestoreRequest {
  const req: RestoreRequest = { snapshot: b.snapshot };
  const { priority: _, ...rest } = b;
  for (const [k, v] of Object.entries(rest)) if (v !== undefined) (req as unknown as Record<string, unknown>)[k] = v;
  return req;
}
