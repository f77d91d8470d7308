import { closeSync, constants as fsConstants, openSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { FerryError } from '../util/errors.js';
import { cacheBinaryFact, cachedBinaryFact, resolveCriuBinary } from './binary.js';
import { criuChannels, type CriuEndEvent, type CriuNotifyEvent, type CriuStartEvent } from './channels.js';
import { CriuOperationError, CriuTransportError, errnoName } from './errors.js';
import {
  FeaturesSchema,
  OptionsSchema,
  RequestSchema,
  RequestType,
  type Request,
  type Response,
} from './gen/criu-rpc_pb.js';
import { hintFor } from './hints.js';
import { summarizeLogFile } from './log.js';
import { isNotifyScript, NOTIFY_FAILURE_EFFECT, type NotifyHandlers, type NotifyReply } from './notify.js';
import { toRpcOptions, type CriuOptions } from './options.js';
import { SwrkTransport } from './swrk.js';
import type { CriuConnection, CriuTransport } from './transport.js';

export interface CriuVersion {
  major: number;
  minor: number;
  sublevel: number;
  /** e.g. "4.2.1" */
  text: string;
  gitid: string | undefined;
  name: string | undefined;
}

export interface CriuFeatures {
  /** Kernel memory dirty tracking (soft-dirty): pre-dump and incremental dumps. */
  memTrack: boolean;
  /** userfaultfd with non-cooperative events: post-copy (lazy pages). */
  lazyPages: boolean;
  /** pidfd_open + pidfd_getfd: pid-reuse detection across pre-dumps. */
  pidfdStore: boolean;
}

/** Common outcome of every operation that ran CRIU on images. */
export interface OperationOutcome {
  durationMs: number;
  /** Absolute path of this run's CRIU log. */
  logPath: string;
  /** The notify scripts CRIU sent, in order. */
  notifications: string[];
}

export interface DumpOutcome extends OperationOutcome {
  /** True only inside a process that dumped itself and was then restored. */
  restored: boolean;
}

export interface RestoreOutcome extends OperationOutcome {
  /** Real pid of the restored root task. */
  pid: number;
}

export type DumpOptions = CriuOptions & { pid: number };

/**
 * How an operation may be ended from outside: when `kill` aborts, CRIU is killed at once and
 * the operation rejects with the abort's reason (the watchdog's: the target died, CRIU stalled).
 */
export interface OperationControl {
  kill?: AbortSignal;
}

export interface CriuClientOptions {
  /** Defaults to the swrk transport over the resolved CRIU binary. */
  transport?: CriuTransport;
}

/** Minimum CRIU versions, named by purpose. */
export const CRIU_MIN = {
  /** Images dir path option works; sockets on new kernels dump; pagemap field 5. */
  ferry: [4, 2, 0],
} as const satisfies Record<string, readonly [number, number, number]>;

let nextOperationId = 1;

/**
 * The CRIU client: every conversation ferry has with CRIU goes through `call()`, one request
 * loop — send; then NOTIFY → handler → ack, repeated; then the final response. The verbs are
 * thin wrappers. Version and feature answers are cached per client instance.
 */
export class CriuClient {
  readonly transport: CriuTransport;
  /** The CRIU binary behind the default transport (whose answers may be cached on disk). */
  private readonly binaryPath: string | undefined;
  private versionCache: Promise<CriuVersion> | undefined;
  private featuresCache: Promise<CriuFeatures> | undefined;

  constructor(options: CriuClientOptions = {}) {
    if (options.transport) {
      this.transport = options.transport;
    } else {
      const bin = resolveCriuBinary();
      if (!bin) {
        throw new FerryError('ERR_CRIU_MISSING', 'CRIU is not installed (no criu binary found)', {
          hint: 'install CRIU >= 4.2 (ferry\'s setup builds it into .deps/), or set FERRY_CRIU to a criu >= 4.2 binary',
        });
      }
      this.transport = new SwrkTransport(bin.path);
      this.binaryPath = bin.path;
    }
  }

  /**
   * CRIU's version (VERSION request), asked once per client — and, for the default transport,
   * remembered on disk per CRIU binary (see cachedBinaryFact), which spares a short command
   * one CRIU start.
   */
  version(): Promise<CriuVersion> {
    if (this.versionCache === undefined && this.binaryPath !== undefined) {
      const cached = asCriuVersion(cachedBinaryFact(this.binaryPath, 'version'));
      if (cached) this.versionCache = Promise.resolve(cached);
    }
    this.versionCache ??= this.call(RequestType.VERSION, undefined).then(({ response }) => {
      const v = response.version;
      if (!v) throw new CriuTransportError('CRIU answered VERSION without a version', {});
      const sublevel = v.sublevel ?? 0;
      return {
        major: v.majorNumber,
        minor: v.minorNumber,
        sublevel,
        text: `${v.majorNumber}.${v.minorNumber}.${sublevel}`,
        gitid: v.gitid || undefined,
        name: v.name || undefined,
      };
    }).then((v) => {
      if (this.binaryPath !== undefined) cacheBinaryFact(this.binaryPath, 'version', v);
      return v;
    });
    this.versionCache.catch(() => { this.versionCache = undefined; });
    return this.versionCache;
  }

  /** Refuses with a clear error unless CRIU is at least `min`. */
  async requireVersion(min: readonly [number, number, number], purpose: string): Promise<CriuVersion> {
    const v = await this.version();
    const have = [v.major, v.minor, v.sublevel];
    for (let i = 0; i < 3; i++) {
      const a = have[i] ?? 0;
      const b = min[i] ?? 0;
      if (a > b) break;
      if (a < b) {
        throw new FerryError('ERR_CRIU_TOO_OLD', `CRIU ${v.text} is too old for ${purpose} (needs ${min.join('.')})`, {
          hint: 'install CRIU >= 4.2 (ferry\'s setup builds it from Debian\'s source into .deps/), or set FERRY_CRIU to one',
        });
      }
    }
    return v;
  }

  /** Kernel features CRIU can use here (FEATURE_CHECK), asked once per client. */
  features(): Promise<CriuFeatures> {
    this.featuresCache ??= this.call(RequestType.FEATURE_CHECK, undefined, {
      features: create(FeaturesSchema, { memTrack: true, lazyPages: true, pidfdStore: true }),
    }).then(({ response }) => ({
      memTrack: response.features?.memTrack ?? false,
      lazyPages: response.features?.lazyPages ?? false,
      pidfdStore: response.features?.pidfdStore ?? false,
    }));
    this.featuresCache.catch(() => { this.featuresCache = undefined; });
    return this.featuresCache;
  }

  /** CRIU's basic kernel check (`criu check`, category 1). Resolves true when it passes. */
  async check(): Promise<{ ok: boolean; logPath: string; firstError: string | undefined }> {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-check-'));
    try {
      await this.run(RequestType.CHECK, { imagesDir: dir }, {});
      return { ok: true, logPath: join(dir, 'check.log'), firstError: undefined };
    } catch (err) {
      if (err instanceof CriuOperationError) return { ok: false, logPath: err.logPath ?? '', firstError: err.firstError ?? err.criuMessage };
      throw err;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** Checkpoints the tree rooted at `options.pid` into `options.imagesDir`. */
  async dump(options: DumpOptions, handlers: NotifyHandlers = {}, control: OperationControl = {}): Promise<DumpOutcome> {
    if (!Number.isInteger(options.pid) || options.pid <= 0) {
      throw new FerryError('ERR_BAD_OPTION', `dump needs the pid of a process, got ${String(options.pid)}`);
    }
    const r = await this.run(RequestType.DUMP, options, handlers, control);
    return { ...r.outcome, restored: r.response.dump?.restored ?? false };
  }

  /** Restores the tree in `options.imagesDir`; CRIU detaches it and reports its root pid. */
  async restore(options: CriuOptions, handlers: NotifyHandlers = {}, control: OperationControl = {}): Promise<RestoreOutcome> {
    const r = await this.run(RequestType.RESTORE, options, handlers, control);
    const pid = r.response.restore?.pid;
    if (!pid) throw new CriuTransportError('CRIU reported a successful restore without a pid', {});
    return { ...r.outcome, pid };
  }

  /** One pre-dump (needs kernel memory tracking; refused up front where there is none). */
  async preDump(options: DumpOptions, handlers: NotifyHandlers = {}): Promise<OperationOutcome> {
    const f = await this.features();
    if (!f.memTrack) {
      throw new FerryError('ERR_CRIU_FEATURE', 'pre-dump is unavailable: this kernel has no soft-dirty memory tracking', {
        hint: 'use a full dump (ferry finds unchanged pages by content instead), or run on a kernel built with CONFIG_MEM_SOFT_DIRTY',
      });
    }
    return (await this.run(RequestType.SINGLE_PRE_DUMP, { ...options, trackMem: true }, handlers)).outcome;
  }

  /** Writes this host's CPU description into `imagesDir` (cpuinfo.img). */
  async cpuinfoDump(imagesDir: string): Promise<OperationOutcome> {
    return (await this.run(RequestType.CPUINFO_DUMP, { imagesDir }, {})).outcome;
  }

  /** Compares this host's CPU with the cpuinfo.img in `imagesDir`; rejects on mismatch. */
  async cpuinfoCheck(imagesDir: string): Promise<OperationOutcome> {
    return (await this.run(RequestType.CPUINFO_CHECK, { imagesDir }, {})).outcome;
  }

  /** Runs a request that works on an images directory: opens the dirs, maps the options, calls. */
  private async run(
    type: RequestType,
    options: CriuOptions,
    handlers: NotifyHandlers,
    control: OperationControl = {},
  ): Promise<{ response: Response; outcome: OperationOutcome }> {
    const name = RequestType[type];
    const imagesDir = resolve(options.imagesDir);
    const workDir = resolve(options.workDir ?? options.imagesDir);
    const logFile = options.logFile ?? `${name.toLowerCase().replace(/_/g, '-')}.log`;
    const logPath = join(workDir, logFile);
    const opened: number[] = [];
    const openDir = (dir: string, what: string): number => {
      try {
        const fd = openSync(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
        opened.push(fd);
        return fd;
      } catch (err) {
        throw new FerryError('ERR_BAD_DIRECTORY', `cannot open the ${what} ${dir}: ${(err as Error).message}`, {
          cause: err, hint: `create it, or pass a directory ferry can read`,
        });
      }
    };
    try {
      const imagesDirFd = openDir(imagesDir, 'images directory');
      const workDirFd = options.workDir !== undefined ? openDir(workDir, 'work directory') : undefined;
      const wantsNotify = Object.keys(handlers).length > 0 || options.notifyScripts === true;
      const mapped = toRpcOptions(
        { ...options, ...(wantsNotify ? { notifyScripts: true } : {}) },
        { imagesDirFd, ...(workDirFd !== undefined ? { workDirFd } : {}) },
        logFile,
      );
      const started = Date.now();
      try {
        const { response, notifications } = await this.call(type, mapped.opts, {}, handlers, mapped.extraFds, imagesDir, control);
        return { response, outcome: { durationMs: Date.now() - started, logPath, notifications } };
      } catch (err) {
        if (err instanceof CriuFailure) {
          const log = await summarizeLogFile(logPath);
          const r = err.response;
          const errno = errnoName(r.crErrno);
          const hint = hintFor(log.firstError, r.crErrmsg) ?? hintFor(log.excerpt.map((l) => l.text).join('\n'));
          throw CriuOperationError.from(
            {
              request: name,
              requestOptions: { ...options },
              errno,
              criuMessage: r.crErrmsg || undefined,
              logPath,
              durationMs: Date.now() - started,
            },
            log,
            { ...(err.cause !== undefined ? { cause: err.cause } : {}), ...(hint !== undefined ? { hint } : {}) },
          );
        }
        throw err;
      }
    } finally {
      for (const fd of opened) closeSync(fd);
    }
  }

  /**
   * The request loop. Resolves with CRIU's final response when it reports success; throws
   * CriuFailure (turned into a CriuOperationError by `run`) when it reports failure, and
   * CriuTransportError when the conversation breaks.
   */
  private async call(
    type: RequestType,
    opts: Request['opts'],
    extra: Partial<Pick<Request, 'features' | 'pid' | 'keepOpen'>> = {},
    handlers: NotifyHandlers = {},
    extraFds: readonly number[] = [],
    imagesDir?: string,
    control: OperationControl = {},
  ): Promise<{ response: Response; notifications: string[] }> {
    const id = nextOperationId++;
    const name = RequestType[type];
    const started = Date.now();
    const notifications: string[] = [];
    criuChannels.start.publish({ id, request: name, imagesDir } satisfies CriuStartEvent);
    let conn: CriuConnection | undefined;
    let handlerError: unknown;
    const kill = control.kill;
    const onKill = () => conn?.kill();
    try {
      conn = await this.transport.open(extraFds);
      if (kill?.aborted) conn.kill();
      kill?.addEventListener('abort', onKill, { once: true });
      const request = create(RequestSchema, { type, ...extra });
      if (opts) request.opts = opts;
      await conn.send(request);
      for (;;) {
        const { response, fds } = await conn.receive();
        if (response.type !== RequestType.NOTIFY) {
          if (response.type !== type && response.type !== RequestType.EMPTY) {
            throw new CriuTransportError(`CRIU answered ${name} with ${RequestType[response.type] ?? response.type}`, {});
          }
          if (!response.success) throw new CriuFailure(response, handlerError);
          if (handlerError !== undefined) {
            // CRIU carried on although a handler failed (scripts whose failure it ignores).
            throw new FerryError('ERR_NOTIFY_HANDLER', `a notify handler failed during ${name}`, { cause: handlerError });
          }
          criuChannels.end.publish({ id, request: name, success: true, durationMs: Date.now() - started } satisfies CriuEndEvent);
          return { response, notifications };
        }
        const script = response.notify?.script ?? '';
        notifications.push(script);
        criuChannels.notify.publish({ id, request: name, script, pid: response.notify?.pid } satisfies CriuNotifyEvent);
        let ok = true;
        let reply: NotifyReply | void = undefined;
        if (!isNotifyScript(script)) {
          ok = false;
          handlerError ??= new FerryError('ERR_CRIU_UNKNOWN_NOTIFY', `CRIU sent a notification ferry does not know: '${script}'`, {
            hint: 'this CRIU is newer than ferry understands; ferry refused the step rather than guess',
          });
          for (const fd of fds) closeSync(fd);
        } else {
          const handler = handlers[script];
          if (handler) {
            try {
              reply = await handler({ script, pid: response.notify?.pid || undefined, fds });
            } catch (err) {
              ok = false;
              handlerError ??= new FerryError('ERR_NOTIFY_HANDLER', `the ${script} handler failed, so CRIU was told to stop (${NOTIFY_FAILURE_EFFECT[script]})`, { cause: err });
            }
          } else {
            for (const fd of fds) closeSync(fd);
          }
        }
        const ack = create(RequestSchema, { type: RequestType.NOTIFY, notifySuccess: ok });
        if (reply && reply.external?.length) {
          ack.opts = create(OptionsSchema, { imagesDirFd: -1, external: reply.external });
        }
        await conn.send(ack);
      }
    } catch (caught) {
      // Killed by the watchdog: its reason (the target died, CRIU stalled) is the error.
      const err = kill?.aborted && kill.reason instanceof Error ? kill.reason : caught;
      criuChannels.end.publish({ id, request: name, success: false, durationMs: Date.now() - started, error: err } satisfies CriuEndEvent);
      throw err;
    } finally {
      kill?.removeEventListener('abort', onKill);
      if (conn) await conn.close();
    }
  }
}

/** A CriuVersion read back from the disk cache, or undefined if it is not one. */
function asCriuVersion(v: unknown): CriuVersion | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const { major, minor, sublevel, text, gitid, name } = v as Record<string, unknown>;
  if (typeof major !== 'number' || typeof minor !== 'number' || typeof sublevel !== 'number' || typeof text !== 'string') return undefined;
  const str = (s: unknown): string | undefined => (typeof s === 'string' && s ? s : undefined);
  return { major, minor, sublevel, text, gitid: str(gitid), name: str(name) };
}

/** Internal: CRIU's final answer said `success: false`. */
class CriuFailure extends Error {
  constructor(
    readonly response: Response,
    override readonly cause: unknown,
  ) {
    super('CRIU reported failure');
  }
}
