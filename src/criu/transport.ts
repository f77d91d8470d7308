import type { Request, Response } from './gen/criu-rpc_pb.js';

/**
 * How ferry reaches a CRIU process. One connection serves one operation (CRIU's swrk mode
 * serves one request and exits). The request loop in client.ts is the same over every
 * transport: the real one (swrk.ts) and the replay of recorded exchanges (replay.ts).
 */
export interface CriuTransport {
  /** Starts CRIU for one operation. `extraFds` (ferry's fds) appear in CRIU as 4, 5, … */
  open(extraFds: readonly number[]): Promise<CriuConnection>;
  /** A short description for logs and errors, e.g. the binary path. */
  readonly description: string;
}

export interface ReceivedResponse {
  response: Response;
  /** Descriptors CRIU passed with the message (SCM_RIGHTS); the receiver owns them. */
  fds: number[];
}

export interface ConnectionEnd {
  exitCode: number | null;
  signal: string | null;
  /** What CRIU wrote on stdout and stderr (bounded). */
  stdout: string;
  stderr: string;
}

export interface CriuConnection {
  send(request: Request): Promise<void>;
  /** Resolves with the next response; rejects with a CriuTransportError if CRIU is gone. */
  receive(): Promise<ReceivedResponse>;
  /** Closes the socket and waits for the CRIU process to end (killing it if it lingers). */
  close(): Promise<ConnectionEnd>;
  /** Ends CRIU now (the watchdog's last resort: the target died, or CRIU stopped making progress). */
  kill(): void;
}
