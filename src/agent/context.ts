import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Engine } from '../engine/engine.js';
import type { Jobs } from '../engine/jobs.js';
import type { IncomingMigrations } from '../migrate/incoming.js';
import type { IncomingReplicas } from '../migrate/replicas.js';
import type { Schedules } from '../scenarios/schedules.js';

/** What every route reads: set once by createAgentApp. */
export interface AgentDeps {
  engine: Engine;
  jobs: Jobs;
  log: Logger;
  metrics: Registry;
  version: string;
  /** CRIU's version text, or null when CRIU cannot be asked (health still answers). */
  criuVersion: () => Promise<string | null>;
  /** The destination's side of migrations (absent: this agent takes none). */
  migrations?: IncomingMigrations | undefined;
  /** Replicas and incremental migrations' rounds (absent: this agent takes none). */
  replicas?: IncomingReplicas | undefined;
  /** Periodic snapshots (absent: this agent runs none). */
  schedules?: Schedules | undefined;
}
