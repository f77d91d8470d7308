import type { Tier } from '../store/manifest.js';
import type { ConcreteStrategy, ImageSender, ServiceAddress, StrategyName } from './protocol.js';

export interface MigrateRequest {
  /** A pid, a `ferry run` workload name, or `container:ID`. */
  target: string | number;
  to: { url: string; token?: string | undefined; name?: string | undefined };
  /** How the workload moves (default `auto`: picked from what the hosts and the workload allow). */
  strategy?: StrategyName;
  tcpEstablished?: boolean;
  /** zstd on the wire (default: off — on a fast link compression costs more than it saves). */
  compress?: boolean;
  /** The destination's tier for the received images (default memory). */
  tier?: Tier;
  /** How long the destination holds its restored copy for commit or abort. */
  holdMs?: number;
  /** Keep the source's snapshot after a successful migration (default: removed). */
  keepSnapshot?: boolean;
  /** Post-copy: keep a leave-running snapshot of the source until the last page moved, restored here if the window fails. */
  snapshotFirst?: boolean;
  interrupt?: AbortSignal;
  /** The wire transfer (default: send-images.ts). */
  send?: ImageSender;
  /** The service address's removal on the source (net/service-address.ts). */
  releaseAddress?: (a: ServiceAddress) => Promise<void>;
  /** Re-adds it when the source copy is restored here after a failed commit. */
  reclaimAddress?: (a: ServiceAddress) => Promise<void>;
}

export interface MigrateResult {
  ok: true;
  strategy: ConcreteStrategy;
  /** Why this strategy: the user's choice, or what `auto` weighed. */
  chosen: { strategy: ConcreteStrategy; because: string; facts?: Record<string, unknown> };
  migration: string;
  /** From the freeze on the source to the destination's copy running. */
  downtimeMs: number;
  totalMs: number;
  bytesMoved: number;
  wireBytes: number;
  phases: Record<string, number>;
  source: { host: string; pid: number; snapshot: string | undefined };
  destination: { host: string; url: string; pid: number; name: string | undefined; snapshot: string | undefined };
  /** What the strategy adds (rounds, compression, the post-copy window, ...). */
  details?: Record<string, unknown>;
}
