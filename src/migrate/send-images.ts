/**
 * The source's side of an image transfer: the files of a dumped image directory, encoded as a
 * wire stream (wire.ts) and sent to the destination agent as the body of one authenticated HTTP
 * request, `PUT <url>/v1/migrations/<id>/images`. Files are read in 1 MiB pieces as the socket
 * takes them (backpressure all the way to the disk: a pages image of any size is never held
 * whole). A watchdog ends a transfer that makes no progress for `stallMs` (nothing taken by the
 * socket, no answer), the caller's AbortSignal ends it at once; either way the connection is
 * cut, which the destination takes as a truncated stream and removes what it received.
 *
 * The destination answers 201 with the snapshot it sealed, or its JSON error, which becomes a
 * FerryError with the destination's code (ERR_STORE_FULL, ERR_TRANSFER_CORRUPT, ...).
 */
import { createReadStream } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import http, { type ClientRequest, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { z } from 'zod';
import type { Tier } from '../store/manifest.js';
import { isErrorCode } from '../util/error-codes.js';
import { errnoCode, FerryError } from '../util/errors.js';
import { formatBytes } from '../util/format.js';
import type { ImageSendArgs, ImageSendResult } from './protocol.js';
import type { ReceiveImagesResult } from './receive-images.js';
import { badFileName, encodeImages, MAX_CHUNK, WIRE_CONTENT_TYPE, WIRE_VERSION, type SnapshotMeta, type WireFile, type WireHeader } from './wire.js';

export interface SendProgress {
  /** Raw bytes of the files read and sent so far. */
  bytes: number;
  /** Bytes of the stream handed to the socket so far. */
  wireBytes: number;
  /** Files completely read. */
  files: number;
  totalBytes: number;
}

export interface SendImagesOptions {
  /** The image directory (CRIU's images; a snapshot's directory works too: its manifest is not sent). */
  dir: string;
  /** Only these files of `dir` (default: every regular file but manifest.json). */
  files?: string[];
  meta: SnapshotMeta;
  /** The destination agent's base URL (http://ADDR:PORT). */
  url: string;
  /** The destination agent's token (none: no Authorization header). */
  token?: string | undefined;
  migrationId: string;
  /** Compress chunks with zstd where it pays. */
  compress?: boolean;
  /** Where the destination puts the snapshot (default: its disk tier, a new id). */
  destination?: { tier?: Tier; snapshot?: string };
  /** Another stream route of the agent (default `v1/migrations/<id>/images`) and its query (incremental transfers). */
  path?: string;
  query?: Record<string, string>;
  signal?: AbortSignal;
  /** No progress (bytes taken by the socket, or the answer) for this long ends it (default 30 s). */
  stallMs?: number;
  onProgress?: (p: SendProgress) => void;
}

export interface SendImagesResult {
  bytes: number;
  wireBytes: number;
  files: number;
  ms: number;
  /** The id of the snapshot the destination sealed. */
  snapshot: string;
  /** The destination's whole answer. */
  destination: ReceiveImagesResult;
}

export const DEFAULT_STALL_MS = 30_000;
const MAX_ANSWER_BYTES = 1 << 20;
/** After a broken write, how long to wait for the destination's answer (it may have refused, then closed). */
const ANSWER_GRACE_MS = 1000;

const Answer = z.looseObject({
  snapshot: z.string().min(1),
  tier: z.enum(['memory', 'disk']),
  bytes: z.number().int().nonnegative(),
  wireBytes: z.number().int().nonnegative(),
  files: z.number().int().nonnegative(),
  ms: z.number().nonnegative(),
});
const ErrorAnswer = z.object({ error: z.object({ code: z.string(), message: z.string(), hint: z.string().optional() }) });

/** The files to send: `files`, or every regular file of `dir` but the manifest; each checked. */
async function listFiles(dir: string, files: string[] | undefined): Promise<{ name: string; path: string; size: number }[]> {
  let names = files;
  if (!names) {
    const entries = await readdir(dir).catch((err: unknown) => {
      throw new FerryError('ERR_BAD_DIRECTORY', `cannot read the image directory ${dir}: ${errnoCode(err) ?? (err as Error).message}`, { cause: err });
    });
    names = entries.filter((n) => n !== 'manifest.json').sort();
  }
  const out: { name: string; path: string; size: number }[] = [];
  for (const name of names) {
    if (name === 'parent') {
      throw new FerryError('ERR_BAD_OPTION', `the images in ${dir} build on a parent snapshot (a 'parent' link): they cannot be sent alone`, { hint: 'send a flat dump (without dedup or pre-dump)' });
    }
    const why = badFileName(name);
    if (why !== undefined) throw new FerryError('ERR_BAD_OPTION', `cannot send ${JSON.stringify(name)}: its name ${why}`);
    const st = await lstat(join(dir, name)).catch((err: unknown) => {
      throw new FerryError('ERR_BAD_DIRECTORY', `cannot read ${join(dir, name)}: ${errnoCode(err) ?? (err as Error).message}`, { cause: err });
    });
    if (!st.isFile()) throw new FerryError('ERR_BAD_DIRECTORY', `${join(dir, name)} is not a regular file; an image directory holds only files`);
    out.push({ name, path: join(dir, name), size: st.size });
  }
  return out;
}

/** Errors of connecting: nothing was sent. */
function unreachable(err: unknown): boolean {
  return ['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN'].includes(errnoCode(err) ?? '');
}

function aborted(signal: AbortSignal): FerryError {
  const r: unknown = signal.reason;
  if (r instanceof FerryError) return r;
  return new FerryError('ERR_TRANSFER_ABORTED', `the image transfer was cancelled${r instanceof Error ? `: ${r.message}` : ''}`, { hint: 'the destination removes what it received' });
}

/** The destination's answer to a failed transfer, as a FerryError with its code. */
function answerError(status: number, body: string, target: string): FerryError {
  let parsed: unknown;
  try { parsed = JSON.parse(body); } catch { /* not JSON */ }
  const e = ErrorAnswer.safeParse(parsed);
  if (e.success) {
    const { code, message, hint } = e.data.error;
    if (isErrorCode(code)) return new FerryError(code, `the destination refused the images: ${message}`, hint !== undefined ? { hint } : {});
    return new FerryError('ERR_TRANSFER_FAILED', `the destination refused the images with an unknown code ${code}: ${message}`, hint !== undefined ? { hint } : {});
  }
  return new FerryError('ERR_TRANSFER_FAILED', `${target} answered HTTP ${status} with something that is not the agent's API: ${JSON.stringify(body.slice(0, 200))}`, {
    hint: 'check the URL points at a ferry agent',
  });
}

/** Sends the images of `o.dir` to the destination agent; see the file's comment. */
export async function sendImages(o: SendImagesOptions): Promise<SendImagesResult> {
  const started = Date.now();
  if (o.signal?.aborted) throw aborted(o.signal);
  const list = await listFiles(o.dir, o.files);
  const totalBytes = list.reduce((a, f) => a + f.size, 0);
  const header: WireHeader = { version: WIRE_VERSION, migrationId: o.migrationId, totalBytes, fileCount: list.length, meta: o.meta };
  const progress: SendProgress = { bytes: 0, wireBytes: 0, files: 0, totalBytes };
  const wireFiles: WireFile[] = list.map((f) => {
    const expected = o.meta.files?.[f.name]?.hash;
    return {
      name: f.name, size: f.size, ...(expected !== undefined ? { hash: expected } : {}),
      data: async function* () {
        for await (const piece of createReadStream(f.path, { highWaterMark: MAX_CHUNK })) {
          progress.bytes += (piece as Buffer).length;
          yield piece as Buffer;
        }
        progress.files++;
      },
    };
  });
  // Two frames buffered at most: memory stays ~2 MiB whatever the images' size.
  const source = Readable.from(encodeImages(header, wireFiles, { compress: o.compress ?? false }), { objectMode: true, highWaterMark: 2 });
  const describe = (): string => `${progress.files} of ${list.length} files, ${formatBytes(progress.bytes)} of ${formatBytes(totalBytes)}`;
  const r = await putImageStream(o, source, {
    describe,
    onFrame: (n) => { progress.wireBytes += n; o.onProgress?.({ ...progress }); },
    readError: (err) => new FerryError('ERR_TRANSFER_FAILED', `reading the images in ${o.dir} failed: ${errnoCode(err) ?? err.message}`, { cause: err }),
  });
  return { bytes: progress.bytes, wireBytes: progress.wireBytes, files: list.length, ms: Date.now() - started, snapshot: r.snapshot, destination: r };
}

/** Where and how a stream of frames is PUT (sendImages's options; a streaming migration's sender). */
export type PutStreamOptions = Pick<SendImagesOptions, 'url' | 'token' | 'migrationId' | 'destination' | 'signal' | 'stallMs' | 'path' | 'query'> & {
  /** The body's Content-Type (default the wire's). */
  contentType?: string;
};

export interface PutStreamHooks {
  /** What was sent so far, for the stall message ("3 of 9 files, 12 MiB of 1 GiB"). */
  describe: () => string;
  /** A frame of `bytes` bytes was taken by the socket. */
  onFrame?: (bytes: number) => void;
  /** The source's own failure (reading the images) as the transfer's error. */
  readError: (err: Error) => unknown;
}

/**
 * PUTs `source` (whole frames, objectMode) to the destination's images route and answers its
 * receipt: one authenticated request, backpressure from the socket to the source, a stall
 * watchdog (nothing taken by the socket and no answer for `stallMs`), the caller's abort; on
 * any failure the connection is cut (the destination removes what it received).
 */
export async function putImageStream(o: PutStreamOptions, source: Readable, hooks: PutStreamHooks): Promise<ReceiveImagesResult> {
  if (o.signal?.aborted) { source.destroy(); throw aborted(o.signal); }
  const stallMs = o.stallMs ?? DEFAULT_STALL_MS;
  let last = Date.now();
  let wireBytes = 0;
  let target: URL;
  try {
    target = new URL(o.path ?? `v1/migrations/${encodeURIComponent(o.migrationId)}/images`, o.url.endsWith('/') ? o.url : `${o.url}/`);
  } catch {
    source.destroy();
    throw new FerryError('ERR_BAD_OPTION', `not a URL: ${JSON.stringify(o.url)}`, { hint: 'give the destination agent as http://ADDR:PORT' });
  }
  if (o.destination?.tier) target.searchParams.set('tier', o.destination.tier);
  if (o.destination?.snapshot) target.searchParams.set('snapshot', o.destination.snapshot);
  for (const [k, v] of Object.entries(o.query ?? {})) target.searchParams.set(k, v);
  const where = target.origin;
  const request = target.protocol === 'https:' ? https.request : target.protocol === 'http:' ? http.request : undefined;
  if (!request) {
    source.destroy();
    throw new FerryError('ERR_BAD_OPTION', `unsupported URL scheme ${target.protocol}`, { hint: 'give the destination agent as http://ADDR:PORT' });
  }

  return await new Promise<ReceiveImagesResult>((resolve, reject) => {
    let settled = false;
    const req: ClientRequest = request(target, {
      method: 'PUT',
      agent: false,
      headers: { ...(o.token !== undefined ? { authorization: `Bearer ${o.token}` } : {}), 'content-type': o.contentType ?? WIRE_CONTENT_TYPE, 'transfer-encoding': 'chunked' },
    });
    let res: IncomingMessage | undefined;
    let grace: NodeJS.Timeout | undefined;
    const watchdog = setInterval(() => {
      if (Date.now() - last > stallMs) {
        finish(new FerryError('ERR_TRANSFER_STALLED', `the transfer to ${where} made no progress for ${Math.round(stallMs / 1000)} s (${hooks.describe()} sent${res ? '; waiting for the answer' : ''})`, {
          hint: 'the destination or the network stopped; the destination removes what it received',
        }));
      }
    }, Math.min(1000, Math.max(10, stallMs / 4)));
    const onAbort = () => finish(aborted(o.signal!));
    o.signal?.addEventListener('abort', onAbort, { once: true });

    function finish(err: unknown, value?: ReceiveImagesResult): void {
      if (settled) return;
      settled = true;
      clearInterval(watchdog);
      clearTimeout(grace);
      o.signal?.removeEventListener('abort', onAbort);
      if (err !== undefined || value === undefined) {
        source.destroy();
        req.destroy();
        reject(err instanceof Error ? err : new Error(String(err)));
      } else {
        resolve(value);
      }
    }

    const broken = (err: unknown): FerryError => {
      const code = errnoCode(err);
      if (unreachable(err)) {
        return new FerryError('ERR_AGENT_UNREACHABLE', `the destination agent ${where} cannot be reached: ${code}`, { cause: err, hint: 'check its address and that its agent runs' });
      }
      return new FerryError('ERR_TRANSFER_FAILED', `the connection to ${where} broke after ${formatBytes(wireBytes)} of the image stream (${hooks.describe()} sent): ${code ?? (err as Error).message}`, {
        cause: err, hint: 'the destination removes what it received; send again',
      });
    };

    req.on('error', (err) => {
      // An answer being read settles it (its end, its error, or the watchdog).
      if (settled || res) return;
      // The destination may have answered (a refusal) and closed before this side stopped
      // writing: prefer its answer if it comes.
      grace ??= setTimeout(() => finish(broken(err)), unreachable(err) ? 0 : ANSWER_GRACE_MS);
    });
    req.on('response', (r) => {
      res = r;
      last = Date.now();
      // An answer before the end of the body is a refusal: stop sending.
      if (!source.readableEnded) source.unpipe(req);
      const chunks: Buffer[] = [];
      let n = 0;
      r.on('data', (c: Buffer) => {
        last = Date.now();
        n += c.length;
        if (n > MAX_ANSWER_BYTES) { finish(new FerryError('ERR_TRANSFER_FAILED', `${where} answered more than ${MAX_ANSWER_BYTES} bytes`)); return; }
        chunks.push(c);
      });
      r.on('error', (err) => finish(broken(err)));
      r.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (r.statusCode !== 201) { finish(answerError(r.statusCode ?? 0, body, where)); return; }
        let parsed: unknown;
        try { parsed = JSON.parse(body); } catch { /* checked below */ }
        const a = Answer.safeParse(parsed);
        if (!a.success) { finish(answerError(201, body, where)); return; }
        finish(undefined, a.data);
      });
    });
    source.on('data', (frame: Buffer) => {
      wireBytes += frame.length;
      last = Date.now();
      hooks.onFrame?.(frame.length);
    });
    source.on('error', (err) => finish(err instanceof FerryError ? err : hooks.readError(err)));
    source.pipe(req);
  });
}

/** migrate.ts's ImageSender (its progress callback takes raw bytes). */
export function imageSender(a: ImageSendArgs): Promise<ImageSendResult> {
  const { onProgress, meta, ...rest } = a;
  return sendImages({ ...rest, meta: { ...meta }, ...(onProgress ? { onProgress: (p: SendProgress) => onProgress(p.bytes) } : {}) });
}
