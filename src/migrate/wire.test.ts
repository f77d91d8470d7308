import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { checksumDir, hashFile } from '../store/checksums.js';
import { fuzzParams, mutated, withTimeout } from '../testing/fuzz.js';
import { isFerryError } from '../util/errors.js';
import {
  decodeImages, encodeBegin, encodeData, encodeEnd, encodeFinal, encodeHeader, encodeImages, FileDigest, MAX_CHUNK, WIRE_MAGIC,
  type SnapshotMeta, type WireEvent, type WireHeader,
} from './wire.js';

const META: SnapshotMeta = {
  name: 'snap1',
  target: { kind: 'process', pid: 4242, workload: 'w', command: ['sleep', '1'], ownPidNamespace: true },
  options: { tcpEstablished: false, extUnixSk: false, fileLocks: false, shellJob: false },
  criuVersion: '4.2',
  host: { hostname: 'h1', kernel: '6.1', arch: 'x64', cpuFlags: ['sse2'] },
};
const ID = 'm-0123456789abcdef';

function header(over: Partial<WireHeader> = {}): WireHeader {
  return { version: 1, migrationId: ID, meta: META, ...over };
}

type Files = Record<string, Buffer>;

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** The encoded stream of `files`, as one buffer. */
async function encoded(files: Files, o: { compress?: boolean; hdr?: Partial<WireHeader> } = {}): Promise<Buffer> {
  const list = Object.entries(files).map(([name, data]) => ({ name, size: data.length, data: function* () { yield data; } }));
  return Buffer.concat(await collect(encodeImages(header(o.hdr), list, { compress: o.compress ?? false })));
}

/** Splits `b` into pieces at the given cut points (the decoder must take any chunking). */
function* pieces(b: Buffer, cuts: number[]): Generator<Buffer> {
  let at = 0;
  for (const c of [...new Set(cuts.map((x) => x % (b.length + 1)))].sort((x, y) => x - y)) {
    if (c > at) { yield b.subarray(at, c); at = c; }
  }
  if (at < b.length) yield b.subarray(at);
}

/** Decodes into files (name → bytes), plus the events' kinds. */
async function decoded(src: Iterable<Buffer> | AsyncIterable<Buffer>): Promise<{ files: Files; hashes: Record<string, string>; events: WireEvent[] }> {
  const files: Record<string, Buffer[]> = {};
  const hashes: Record<string, string> = {};
  const events: WireEvent[] = [];
  const source = (async function* () { yield* src; })();
  for await (const e of decodeImages(source)) {
    events.push(e.type === 'data' ? { ...e, data: Buffer.alloc(0) } : e);
    if (e.type === 'begin') files[e.name] = [];
    if (e.type === 'data') files[e.name]!.push(Buffer.from(e.data));
    if (e.type === 'end') hashes[e.name] = e.hash;
  }
  return { files: Object.fromEntries(Object.entries(files).map(([k, v]) => [k, Buffer.concat(v)])), hashes, events };
}

async function refusal(src: Buffer | Buffer[]): Promise<{ code: string; message: string }> {
  try {
    await decoded(Array.isArray(src) ? src : [src]);
  } catch (err) {
    assert.ok(isFerryError(err), `not a FerryError: ${String(err)}`);
    return { code: err.code, message: err.message };
  }
  assert.fail('the stream was accepted');
}

/** Data: random, zeros, or a repeated pattern (compressible), of `size` bytes. */
const content = (size: number, kind: number, seed: number): Buffer => {
  if (kind === 0) return randomBytes(size);
  if (kind === 1) return Buffer.alloc(size);
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 7 + seed) % 13;
  return b;
};

describe('migrate/wire: frames', () => {
  it('FileDigest gives the manifest hash (checksums.ts) for sizes around block and chunk boundaries, in any chunking', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-wire-'));
    try {
      for (const size of [0, 1, 4095, 4096, 4097, 8192 + 5, MAX_CHUNK, MAX_CHUNK + 4096 + 3]) {
        const data = randomBytes(size);
        await writeFile(join(dir, 'f'), data);
        const want = (await hashFile(join(dir, 'f'))).hash;
        for (const step of [1000, 4096, 65536, MAX_CHUNK]) {
          const d = new FileDigest(size);
          for (let at = 0; at < size; at += step) d.update(data.subarray(at, at + step));
          assert.equal(d.digest(), want, `size ${size} step ${step}`);
        }
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('round trip: files come out as they went in, with the hashes the store computes; compression only where it pays', async () => {
    const files: Files = { 'pages-1.img': Buffer.concat([Buffer.alloc(3 * MAX_CHUNK), randomBytes(MAX_CHUNK + 17)]), 'core-1.img': randomBytes(300), 'empty.img': Buffer.alloc(0) };
    for (const compress of [false, true]) {
      const wire = await encoded(files, { compress });
      assert.ok(wire.subarray(0, 8).equals(WIRE_MAGIC));
      const out = await decoded([wire]);
      assert.deepEqual(Object.keys(out.files), Object.keys(files));
      for (const [n, b] of Object.entries(files)) assert.ok(out.files[n]!.equals(b), n);
      const dir = await mkdtemp(join(tmpdir(), 'ferry-wire-'));
      try {
        for (const [n, b] of Object.entries(files)) await writeFile(join(dir, n), b);
        const sums = await checksumDir(dir);
        for (const n of Object.keys(files)) assert.equal(out.hashes[n], sums[n]!.hash, n);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
      const raw = Object.values(files).reduce((a, b) => a + b.length, 0);
      if (compress) assert.ok(wire.length < raw / 2, `compressed ${wire.length} of ${raw}`);
      else assert.ok(wire.length > raw, 'uncompressed carries the data plus frames');
      const final = out.events.at(-1);
      assert.deepEqual(final, { type: 'final', files: 3, bytes: raw, wireBytes: wire.length });
    }
  });

  it('refuses, naming why: magic, unknown frame, order, names, sizes, limits, counts, trailing data', async () => {
    const hdr = encodeHeader(header());
    const chunk = (b: Buffer) => Buffer.concat(encodeData(b));
    const d = randomBytes(10);
    const hash = new FileDigest(); hash.update(d);
    const file = [encodeBegin('a.img', 10), chunk(d), encodeEnd(10, hash.digest())];
    const ok = Buffer.concat([hdr, ...file, encodeFinal(1, 10)]);
    assert.equal((await decoded([ok])).files['a.img']?.length, 10);

    const cases: [string, Buffer, string, RegExp][] = [
      ['bad magic', Buffer.concat([Buffer.from('GARBAGE!'), ok.subarray(8)]), 'ERR_TRANSFER_INVALID', /magic/],
      ['unknown type', Buffer.concat([hdr, Buffer.from([9, 0, 0, 0, 0, 0, 0, 0])]), 'ERR_TRANSFER_INVALID', /unknown frame type 9/],
      ['reserved bytes', Buffer.concat([hdr, Buffer.from([2, 0, 0, 1, 0, 0, 0, 0])]), 'ERR_TRANSFER_INVALID', /reserved/],
      ['huge frame', Buffer.concat([hdr, Buffer.from([3, 0, 0, 0, 0xff, 0xff, 0xff, 0xff])]), 'ERR_TRANSFER_INVALID', /at most/],
      ['no header', Buffer.concat([WIRE_MAGIC, ...file]), 'ERR_TRANSFER_INVALID', /not its header/],
      ['two headers', Buffer.concat([hdr, hdr.subarray(8)]), 'ERR_TRANSFER_INVALID', /second header/],
      ['data outside a file', Buffer.concat([hdr, chunk(d)]), 'ERR_TRANSFER_INVALID', /outside a file/],
      ['slash', Buffer.concat([hdr, encodeBegin('../x', 1)]), 'ERR_TRANSFER_INVALID', /contains '\/'/],
      ['dot-dot', Buffer.concat([hdr, encodeBegin('..', 1)]), 'ERR_TRANSFER_INVALID', /empty, \. or \.\./],
      ['NUL', Buffer.concat([hdr, encodeBegin('a\0b', 1)]), 'ERR_TRANSFER_INVALID', /NUL/],
      ['long name', Buffer.concat([hdr, encodeBegin('x'.repeat(256), 1)]), 'ERR_TRANSFER_INVALID', /a begin frame of 280 bytes \(at most 279\)/],
      ['manifest', Buffer.concat([hdr, encodeBegin('manifest.json', 1)]), 'ERR_TRANSFER_INVALID', /reserved/],
      ['twice', Buffer.concat([hdr, ...file, ...file]), 'ERR_TRANSFER_INVALID', /twice/],
      ['too much data', Buffer.concat([hdr, encodeBegin('a.img', 5), chunk(d)]), 'ERR_TRANSFER_INVALID', /more than its 5 bytes/],
      ['short file', Buffer.concat([hdr, encodeBegin('a.img', 20), chunk(d), encodeEnd(20, hash.digest())]), 'ERR_TRANSFER_INVALID', /after 10 of its 20/],
      ['begin inside a file', Buffer.concat([hdr, encodeBegin('a.img', 10), encodeBegin('b.img', 1)]), 'ERR_TRANSFER_INVALID', /before a\.img ended/],
      ['final counts', Buffer.concat([hdr, ...file, encodeFinal(2, 10)]), 'ERR_TRANSFER_INVALID', /counts 2 files/],
      ['declared total', Buffer.concat([encodeHeader(header({ totalBytes: 5 })), encodeBegin('a.img', 10)]), 'ERR_TRANSFER_INVALID', /past the 5 bytes/],
      ['declared count', Buffer.concat([encodeHeader(header({ fileCount: 2 })), ...file, encodeFinal(1, 10)]), 'ERR_TRANSFER_INVALID', /declared 2/],
      ['listed file missing', Buffer.concat([encodeHeader(header({ meta: { ...META, files: { 'b.img': { size: 1, hash: '0'.repeat(32) } } } })), ...file, encodeFinal(1, 10)]), 'ERR_TRANSFER_INVALID', /never came: b\.img/],
      ['listed size differs', Buffer.concat([encodeHeader(header({ meta: { ...META, files: { 'a.img': { size: 11, hash: '0'.repeat(32) } } } })), encodeBegin('a.img', 10)]), 'ERR_TRANSFER_INVALID', /listed 11/],
      ['listed hash differs', Buffer.concat([encodeHeader(header({ meta: { ...META, files: { 'a.img': { size: 10, hash: '0'.repeat(32) } } } })), ...file]), 'ERR_TRANSFER_CORRUPT', /recorded hash/],
      ['after final', Buffer.concat([ok, Buffer.from([0])]), 'ERR_TRANSFER_INVALID', /follows the final/],
      ['wrong version', Buffer.concat([encodeHeader({ ...header(), version: 2 } as unknown as WireHeader)]), 'ERR_TRANSFER_INVALID', /wire version 2/],
      ['bad migration id', Buffer.concat([encodeHeader(header({ migrationId: '../x' }))]), 'ERR_TRANSFER_INVALID', /migrationId/],
      ['empty', Buffer.alloc(0), 'ERR_TRANSFER_TRUNCATED', /before its header/],
      ['cut in a file', Buffer.concat([hdr, encodeBegin('a.img', 10)]), 'ERR_TRANSFER_TRUNCATED', /inside a\.img \(0 of 10 bytes\)/],
      ['no final', Buffer.concat([hdr, ...file]), 'ERR_TRANSFER_TRUNCATED', /after 1 files/],
    ];
    for (const [what, bytes, code, re] of cases) {
      const r = await refusal(bytes);
      assert.equal(r.code, code, `${what}: ${r.message}`);
      assert.match(r.message, re, what);
    }
    // A bit flipped in a chunk, in a compressed chunk, in a name: corruption, named.
    const flipped = Buffer.from(ok);
    flipped[hdr.length + file[0]!.length + 8 + 20 + 3]! ^= 1;
    assert.match((await refusal(flipped)).message, /chunk 0 of a\.img \(bytes 0–10\) fails its XXH3 check/);
    const zeros = Buffer.alloc(MAX_CHUNK);
    const z = await encoded({ 'z.img': zeros }, { compress: true });
    const zf = Buffer.from(z);
    zf[z.length - 150]! ^= 0x10;
    assert.equal((await refusal(zf)).code, 'ERR_TRANSFER_CORRUPT');
    const named = Buffer.from(ok);
    named[hdr.length + 8 + 8]! ^= 2; // 'a' → 'c'
    assert.match((await refusal(named)).message, /begin frame fails its XXH3 check/);
  });

  it('a source that breaks is a truncation, with the cause kept', async () => {
    const wire = await encoded({ 'a.img': randomBytes(5000) });
    const src = (function* () { yield wire.subarray(0, 3000); throw new Error('ECONNRESET'); })();
    await assert.rejects(collect(decodeImages(src)), (err: unknown) => isFerryError(err, 'ERR_TRANSFER_TRUNCATED') && /broke after 3000 bytes, inside a\.img: ECONNRESET/.test(err.message));
  });

  it('a file that changes while it is sent is refused by the encoder', async () => {
    const f = (size: number, real: number) => [{ name: 'a.img', size, data: function* () { yield randomBytes(real); } }];
    await assert.rejects(collect(encodeImages(header(), f(10, 12))), /grew while it was sent/);
    await assert.rejects(collect(encodeImages(header(), f(10, 8))), /shrank while it was sent/);
    await assert.rejects(collect(encodeImages(header(), [{ name: 'a/b', size: 0, data: function* () { /* none */ } }])), /contains '\/'/);
  });
});

describe('migrate/wire: properties', () => {
  const fileSet = fc.uniqueArray(
    fc.record({ name: fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,20}$/).filter((n) => n !== 'parent' && n !== '..'), size: fc.oneof(fc.integer({ min: 0, max: 9000 }), fc.integer({ min: MAX_CHUNK - 5, max: MAX_CHUNK * 2 + 5 })), kind: fc.integer({ min: 0, max: 2 }), seed: fc.nat(255) }),
    { selector: (f) => f.name, maxLength: 5 },
  ).map((list) => Object.fromEntries(list.map((f) => [f.name, content(f.size, f.kind, f.seed)])));

  it('round trip of random files, compressed or not, in any chunking of the stream', async () => {
    await fc.assert(fc.asyncProperty(fileSet, fc.boolean(), fc.array(fc.nat(), { maxLength: 20 }), async (files, compress, cuts) => {
      const wire = await encoded(files, { compress });
      const out = await withTimeout(decoded(pieces(wire, cuts)), 10_000, 'decode');
      assert.deepEqual(Object.keys(out.files).sort(), Object.keys(files).sort());
      for (const [n, b] of Object.entries(files)) assert.ok(out.files[n]?.equals(b), n);
    }), fuzzParams(40));
  });

  it('edited or cut streams never decode to anything but the original: refused with a FerryError, never a crash or a hang', async () => {
    const seeds = await Promise.all([
      encoded({ 'pages-1.img': content(3 * 4096 + 5, 2, 1), 'core.img': randomBytes(100) }),
      encoded({ 'pages-1.img': Buffer.concat([Buffer.alloc(20_000), randomBytes(3000)]), 'x.img': Buffer.alloc(0) }, { compress: true }),
    ]);
    const original = await decoded([seeds[0]]);
    const originalZ = await decoded([seeds[1]]);
    await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 1 }).chain((i) => fc.tuple(fc.constant(i), mutated(seeds[i]!))), fc.array(fc.nat(), { maxLength: 6 }), async ([i, bytes], cuts) => {
      const want = i === 0 ? original : originalZ;
      try {
        const got = await withTimeout(decoded(pieces(Buffer.from(bytes), cuts)), 5000, 'decode');
        // Accepted: then it is the original (e.g. an edit that changed nothing).
        assert.deepEqual(Object.keys(got.files), Object.keys(want.files));
        for (const [n, b] of Object.entries(want.files)) assert.ok(got.files[n]!.equals(b), n);
      } catch (err) {
        assert.ok(isFerryError(err) && /^ERR_TRANSFER_(INVALID|CORRUPT|TRUNCATED)$/.test(err.code), `not a transfer error: ${err instanceof Error ? err.stack : String(err)}`);
      }
    }), fuzzParams(300));
  });

  it('every strict prefix of a stream is a truncation', async () => {
    const wire = await encoded({ 'a.img': content(10_000, 2, 3), 'b.img': Buffer.alloc(5) }, { compress: true });
    for (let n = 0; n < wire.length; n += n < 200 ? 1 : 97) {
      const r = await refusal(wire.subarray(0, n));
      assert.equal(r.code, 'ERR_TRANSFER_TRUNCATED', `prefix ${n}: ${r.message}`);
    }
  });
});
