import { open } from 'node:fs/promises';
import { PassThrough, type Transform } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { DecompressStream } from 'zstd-napi';

/**
 * The decompressor a file needs, by its magic bytes: gzip (1f 8b), zstd (28 b5 2f fd), or none.
 * Checkpoint archives come in all three (Podman's --export: zstd by default, gzip on request;
 * the kubelet's: plain tar), and so do OCI layers.
 */
export async function decompressorFor(file: string): Promise<Transform> {
  const fh = await open(file, 'r');
  const head = Buffer.alloc(4);
  try { await fh.read(head, 0, 4, 0); } finally { await fh.close(); }
  if (head[0] === 0x1f && head[1] === 0x8b) return createGunzip();
  if (head.readUInt32LE(0) === 0xfd2fb528) return new DecompressStream();
  return new PassThrough();
}
