import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync } from 'node:fs';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { SeqpacketChannel, seqpacketPair } from '../native/index.js';
import { RequestSchema, ResponseSchema, type Request } from './gen/criu-rpc_pb.js';
import { CriuTransportError } from './errors.js';
import type { ConnectionEnd, CriuConnection, CriuTransport, ReceivedResponse } from './transport.js';

const OUTPUT_LIMIT = 64 * 1024;
/** How long CRIU may take to exit after the socket is closed before it is killed. */
const EXIT_GRACE_MS = 5000;

/** The real transport: `criu swrk 3`, one CRIU process per operation, over a SEQPACKET socketpair. */
export class SwrkTransport implements CriuTransport {
  readonly description: string;

  constructor(
    readonly binary: string,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.description = `${binary} swrk`;
  }

  async open(extraFds: readonly number[]): Promise<CriuConnection> {
    const { ferryFd, peerFd } = seqpacketPair();
    const started = Date.now();
    let child: ChildProcess;
    try {
      // CRIU's end goes in at fd 3 (blocking, as CRIU needs); extra fds at 4, 5, …
      child = spawn(this.binary, ['swrk', '3'], {
        stdio: ['ignore', 'pipe', 'pipe', peerFd, ...extraFds],
        env: this.env,
        // Its own process group: a terminal's Ctrl-C reaches ferry, which decides what CRIU is
        // told (a dump interrupted before its commit point resumes the tree), never CRIU directly.
        detached: true,
      });
    } finally {
      closeSync(peerFd);
    }
    const channel = new SeqpacketChannel(ferryFd);
    try {
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', reject);
      });
    } catch (err) {
      channel.close();
      throw new CriuTransportError(
        `could not start CRIU (${this.binary}): ${(err as Error).message}`,
        { durationMs: Date.now() - started },
        { cause: err, hint: 'install CRIU >= 4.2 (ferry\'s setup builds it), or point FERRY_CRIU at a criu binary' },
      );
    }
    return new SwrkConnection(child, channel, started);
  }
}

class SwrkConnection implements CriuConnection {
  private stdout = '';
  private stderr = '';
  private readonly exited: Promise<{ code: number | null; signal: string | null }>;

  constructor(
    private readonly child: ChildProcess,
    private readonly channel: SeqpacketChannel,
    private readonly started: number,
  ) {
    const keep = (which: 'stdout' | 'stderr') => (chunk: Buffer) => {
      if (this[which].length < OUTPUT_LIMIT) this[which] += chunk.toString('utf8');
    };
    child.stdout?.on('data', keep('stdout'));
    child.stderr?.on('data', keep('stderr'));
    this.exited = new Promise((resolve) => {
      child.once('close', (code, signal) => resolve({ code, signal }));
    });
  }

  async send(request: Request): Promise<void> {
    let bytes: Uint8Array;
    try {
      bytes = toBinary(RequestSchema, request);
    } catch (err) {
      throw new CriuTransportError(`could not encode a CRIU request: ${(err as Error).message}`, {}, { cause: err });
    }
    try {
      await this.channel.send(bytes);
    } catch (err) {
      throw await this.brokenError(`could not send the request to CRIU`, err);
    }
  }

  async receive(): Promise<ReceivedResponse> {
    let msg;
    try {
      msg = await this.channel.receive();
    } catch (err) {
      throw await this.brokenError('could not read CRIU\'s answer', err);
    }
    if (msg === null) throw await this.brokenError('CRIU closed the connection without answering');
    try {
      return { response: fromBinary(ResponseSchema, msg.data), fds: msg.fds };
    } catch (err) {
      for (const fd of msg.fds) closeSync(fd);
      throw new CriuTransportError(`CRIU sent a message that is not a valid response: ${(err as Error).message}`, {}, { cause: err });
    }
  }

  async close(): Promise<ConnectionEnd> {
    this.channel.close();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), EXIT_GRACE_MS);
    const { code, signal } = await this.exited;
    clearTimeout(timer);
    return { exitCode: code, signal, stdout: this.stdout, stderr: this.stderr };
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }

  /** The socket broke: wait briefly for CRIU's exit status so the error can say how it died. */
  private async brokenError(what: string, cause?: unknown): Promise<CriuTransportError> {
    const end = await Promise.race([
      this.exited,
      new Promise<undefined>((r) => setTimeout(() => r(undefined), 2000).unref()),
    ]);
    const how = end === undefined
      ? 'CRIU is still running'
      : end.signal ? `CRIU was killed by ${end.signal}` : `CRIU exited with code ${end.code}`;
    return new CriuTransportError(
      `${what} (${how})`,
      { exitCode: end?.code ?? null, signal: end?.signal ?? null, stderr: this.stderr, durationMs: Date.now() - this.started },
      {
        ...(cause !== undefined ? { cause } : {}),
        hint: 'CRIU died mid-operation; its log in the work directory usually says why. A CRIU older than 4.2 on a new kernel crashes like this; ferry\'s host check (doctor) tells.',
      },
    );
  }
}
