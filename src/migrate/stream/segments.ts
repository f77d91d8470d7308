/**
 * The stream strategy's transfer: wire.ts's format unchanged (frames, XXH3 per chunk, zstd, a
 * hash per wire file), but its "files" are *segments* of image files, sent while CRIU still
 * writes them. A segment is named `FILE@OFFSET`: bytes OFFSET… of image file FILE. The segments
 * of a file come in order and without gaps; a file's last segment comes once the dump is complete
 * (it may be empty). The last wire file is the index, INDEX_NAME: JSON `{ files: { FILE: { size,
 * hash } } }` — every image file with its size and its hash in the manifest's form, computed by
 * the sender over what it sent — which the destination checks against what it wrote, end to end.
 *
 * The body's Content-Type tells the destination's images route which receiver it needs.
 */
import { z } from 'zod';

export const STREAM_CONTENT_TYPE = 'application/vnd.ferry.images-stream';
/** The index: the last wire file of a stream transfer. */
export const INDEX_NAME = '.ferry-stream-index';

export function segmentName(file: string, offset: number): string {
  return `${file}@${offset}`;
}

/** The image file and offset a segment's wire name stands for, or undefined when it is not one. */
export function parseSegment(name: string): { file: string; offset: number } | undefined {
  const m = /^(.+)@(0|[1-9]\d{0,15})$/.exec(name);
  if (!m) return undefined;
  const offset = Number(m[2]);
  if (!Number.isSafeInteger(offset)) return undefined;
  return { file: m[1]!, offset };
}

const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
export const StreamIndexSchema = z.strictObject({
  files: z.record(z.string().min(1).max(255), z.strictObject({ size: count, hash: z.string().regex(/^[0-9a-f]{32}$/) })),
});
export type StreamIndex = z.infer<typeof StreamIndexSchema>;
