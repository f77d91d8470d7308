import { readFile, writeFile } from 'node:fs/promises';
import { fromJson, toJson, type JsonValue } from '@bufbuild/protobuf';
import { RequestSchema, ResponseSchema, type Request } from './gen/criu-rpc_pb.js';
import { CriuTransportError } from './errors.js';
import type { ConnectionEnd, CriuConnection, CriuTransport, ReceivedResponse } from './transport.js';

/**
 * Recorded CRIU conversations, and a transport that plays them back. Recordings are made
 * from real runs (RecordingTransport) and committed as fixtures, so the request loop is
 * tested without root or CRIU — in addition to the real round trips, never instead.
 */

export type RecordedMessage =
  | { dir: 'send'; request: JsonValue }
  | { dir: 'recv'; response: JsonValue; fdCount?: number }
  /** CRIU closed the socket here without answering. */
  | { dir: 'eof' };

export interface RecordedConnection {
  messages: RecordedMessage[];
  end: ConnectionEnd;
}

export interface Recording {
  /** What was recorded, by whom, with which CRIU. */
  about: string;
  connections: RecordedConnection[];
}

/** Fields that hold fd numbers or paths of the recording machine; they differ run to run. */
const VOLATILE_OPTION_FIELDS = ['imagesDirFd', 'workDirFd', 'pid', 'root', 'parentImg'];

/** Canonical JSON (field order as protobuf-es writes it), with machine-specific fields masked. */
function normalizeRequest(recorded: JsonValue): JsonValue {
  const json = toJson(RequestSchema, fromJson(RequestSchema, recorded));
  if (json === null || typeof json !== 'object' || Array.isArray(json)) return json;
  const copy: Record<string, JsonValue> = { ...json };
  const opts = copy['opts'];
  if (opts && typeof opts === 'object' && !Array.isArray(opts)) {
    const o: Record<string, JsonValue> = { ...opts };
    for (const f of VOLATILE_OPTION_FIELDS) if (f in o) o[f] = '<volatile>';
    copy['opts'] = o;
  }
  return copy;
}

/** Wraps a transport and records every message of every connection it opens. */
export class RecordingTransport implements CriuTransport {
  readonly connections: RecordedConnection[] = [];
  readonly description: string;

  constructor(private readonly inner: CriuTransport) {
    this.description = `recording ${inner.description}`;
  }

  async open(extraFds: readonly number[]): Promise<CriuConnection> {
    const conn = await this.inner.open(extraFds);
    const rec: RecordedConnection = { messages: [], end: { exitCode: null, signal: null, stdout: '', stderr: '' } };
    this.connections.push(rec);
    return {
      send: async (request) => {
        rec.messages.push({ dir: 'send', request: toJson(RequestSchema, request) });
        await conn.send(request);
      },
      receive: async () => {
        try {
          const got = await conn.receive();
          rec.messages.push({ dir: 'recv', response: toJson(ResponseSchema, got.response), ...(got.fds.length ? { fdCount: got.fds.length } : {}) });
          return got;
        } catch (err) {
          rec.messages.push({ dir: 'eof' });
          throw err;
        }
      },
      close: async () => {
        rec.end = await conn.close();
        return rec.end;
      },
      kill: () => conn.kill(),
    };
  }

  async save(path: string, about: string): Promise<void> {
    const recording: Recording = { about, connections: this.connections };
    await writeFile(path, JSON.stringify(recording, null, 2) + '\n');
  }
}

/**
 * Plays a recording back: each `open` takes the next recorded connection; each request
 * ferry sends must match the recorded one (fd numbers and machine paths aside), and each
 * receive returns the recorded response. Any divergence is a CriuTransportError naming it.
 */
export class ReplayTransport implements CriuTransport {
  readonly description = 'replay';
  private next = 0;

  constructor(private readonly recording: Recording) {}

  static async load(path: string): Promise<ReplayTransport> {
    return new ReplayTransport(JSON.parse(await readFile(path, 'utf8')) as Recording);
  }

  /** Connections not yet played; a test asserts this is 0 at the end. */
  get remaining(): number {
    return this.recording.connections.length - this.next;
  }

  open(_extraFds: readonly number[]): Promise<CriuConnection> {
    const rec = this.recording.connections[this.next++];
    if (!rec) return Promise.reject(new CriuTransportError('replay: no more recorded CRIU connections', {}));
    return Promise.resolve(new ReplayConnection(rec));
  }
}

class ReplayConnection implements CriuConnection {
  private pos = 0;
  private killed = false;

  constructor(private readonly rec: RecordedConnection) {}

  private take(): RecordedMessage | undefined {
    return this.rec.messages[this.pos++];
  }

  send(request: Request): Promise<void> {
    const expected = this.take();
    const actual = normalizeRequest(toJson(RequestSchema, request));
    if (!expected || expected.dir !== 'send') {
      return Promise.reject(new CriuTransportError(`replay: ferry sent ${JSON.stringify(actual)} where the recording has ${expected ? expected.dir : 'nothing more'}`, {}));
    }
    const want = normalizeRequest(expected.request);
    if (JSON.stringify(want) !== JSON.stringify(actual)) {
      return Promise.reject(new CriuTransportError(`replay: request differs from the recording:\n  recorded ${JSON.stringify(want)}\n  sent     ${JSON.stringify(actual)}`, {}));
    }
    return Promise.resolve();
  }

  receive(): Promise<ReceivedResponse> {
    if (this.killed) return Promise.reject(new CriuTransportError('CRIU was killed (replayed)', { exitCode: null, signal: 'SIGKILL' }));
    const m = this.take();
    if (!m || m.dir === 'eof') {
      return Promise.reject(new CriuTransportError('CRIU closed the connection without answering (replayed)', {
        exitCode: this.rec.end.exitCode, signal: this.rec.end.signal, stderr: this.rec.end.stderr,
      }));
    }
    if (m.dir !== 'recv') return Promise.reject(new CriuTransportError('replay: ferry waits for an answer where the recording has a request', {}));
    return Promise.resolve({ response: fromJson(ResponseSchema, m.response), fds: [] });
  }

  close(): Promise<ConnectionEnd> {
    return Promise.resolve(this.rec.end);
  }

  /** A replayed CRIU has no process to end; the next receive fails as a killed CRIU's would. */
  kill(): void {
    this.killed = true;
  }
}
