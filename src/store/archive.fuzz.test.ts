/**
 * Property-based fuzzing of `ferry import` (fast-check) on hostile input: random bytes, an
 * honest export with bytes edited (compressed, or inside the tar and recompressed), and honest
 * exports whose members are renamed (../, absolute, nested), retyped (symlinks, hard links,
 * devices), edited, dropped, duplicated or reordered, with a trailer that matches or not.
 * Property: the import succeeds, or fails with a FerryError naming the archive; nothing is
 * written outside the target store; a failed import leaves nothing in the store; a successful
 * one holds only regular files and a parent link to its own parent. Each import runs under a
 * watchdog. Inputs per property: FERRY_FUZZ_RUNS (`make fuzz` runs 10,000).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cp, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import tar from 'tar-stream';
import { compress, decompress } from 'zstd-napi';
import { decodesOrNames, fuzzParams, mutated, withTimeout } from '../testing/fuzz.js';
import { withTempDir } from '../testing/processes.js';
import { isFerryError } from '../util/errors.js';
import { ARCHIVE_TRAILER, importArchive, type TrailerMember } from './archive.js';
import { Store } from './store.js';
import { exportedBytes, makeHandSnapshot } from './testing-snapshots.js';

type MemberType = 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'fifo';
interface Member { name: string; type: MemberType; body: Buffer; linkname?: string }

const SOURCE = 'fuzz.ferry';

/** A small snapshot made by hand, with real checksums. */
const makeSnapshot = (store: Store, id: string, parent: string | undefined, seed: number): Promise<void> =>
  makeHandSnapshot(store, id, { parent, seed, pagesBytes: 8192, createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, seed)).toISOString() });

const exported = exportedBytes;

async function membersOf(tarBytes: Buffer): Promise<Member[]> {
  const out: Member[] = [];
  const extract = tar.extract();
  Readable.from([tarBytes]).pipe(extract);
  for await (const e of extract) {
    const chunks: Buffer[] = [];
    for await (const c of e) chunks.push(c as Buffer);
    out.push({ name: e.header.name, type: e.header.type as MemberType, body: Buffer.concat(chunks), ...(e.header.linkname ? { linkname: e.header.linkname } : {}) });
  }
  return out;
}

/** Packs members into a tar, with a matching trailer when asked, zstd-compressed. */
async function pack(members: Member[], trailer: boolean): Promise<Buffer> {
  const p = tar.pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => { chunks.push(c as Buffer); });
  const done = new Promise<void>((r) => { p.on('end', () => r()); });
  const listed: TrailerMember[] = [];
  const add = (m: Member) => new Promise<void>((resolve, reject) => {
    const size = m.type === 'file' ? m.body.length : 0;
    p.entry({ name: m.name, type: m.type, size, ...(m.linkname !== undefined ? { linkname: m.linkname } : {}), ...(m.type === 'character-device' ? { devmajor: 1, devminor: 3 } : {}) },
      m.type === 'file' ? m.body : Buffer.alloc(0), (err) => (err ? reject(err) : resolve()));
    const t = m.type === 'directory' || m.type === 'symlink' ? m.type : 'file';
    listed.push({ name: m.name, type: t, size, ...(/\.json$|\.log$/.test(m.name) ? { sha256: createHash('sha256').update(m.body).digest('hex') } : {}) });
  });
  for (const m of members) await add(m);
  if (trailer) await add({ name: ARCHIVE_TRAILER, type: 'file', body: Buffer.from(JSON.stringify({ members: listed.slice() })) });
  p.finalize();
  await done;
  return compress(Buffer.concat(chunks));
}

const EVIL_NAMES = ['../escape', '../../escape', 'tip/../../escape', 'tip/../../../escape', '/tmp/ferry-fuzz-escape', 'tip/x/../../escape',
  './tip/x', 'tip//x', 'tip/.', 'tip/sub/x', 'tip/parent', 'base/parent', 'tip/manifest.json', 'base/', 'tip', 'other/x', 'tip/pages-1.img', 'tip/new.img', 'tip/a.log', '\\..\\escape', 'tip/\0x'];
const EVIL_LINKS = ['../base', '../../escape', '/', '/etc', '..', '.', '../tip', 'base', '../base/../..'];

type Edit =
  | { op: 'rename'; i: number; name: string }
  | { op: 'retype'; i: number; type: MemberType; linkname: string }
  | { op: 'body'; i: number; body: Uint8Array }
  | { op: 'drop'; i: number }
  | { op: 'dup'; i: number }
  | { op: 'swap'; i: number; j: number };

function editsOf(honest: Member[]): fc.Arbitrary<Edit[]> {
  const i = fc.nat({ max: honest.length - 1 });
  const edit: fc.Arbitrary<Edit> = fc.oneof(
    fc.record({ op: fc.constant('rename' as const), i, name: fc.oneof(fc.constantFrom(...EVIL_NAMES), fc.string({ maxLength: 12 })) }),
    fc.record({ op: fc.constant('retype' as const), i, type: fc.constantFrom<MemberType>('symlink', 'link', 'character-device', 'fifo', 'directory', 'file'), linkname: fc.constantFrom(...EVIL_LINKS) }),
    fc.record({ op: fc.constant('body' as const), i, body: fc.constantFrom(...honest.map((m) => m.body)).chain((b) => mutated(b, 3)) }),
    fc.record({ op: fc.constant('drop' as const), i }),
    fc.record({ op: fc.constant('dup' as const), i }),
    fc.record({ op: fc.constant('swap' as const), i, j: i }),
  );
  return fc.array(edit, { minLength: 1, maxLength: 3 });
}

function applyEdits(honest: Member[], edits: Edit[]): Member[] {
  const ms = honest.map((m) => ({ ...m }));
  for (const e of edits) {
    const k = e.i % Math.max(1, ms.length);
    const m = ms[k];
    if (!m) continue;
    switch (e.op) {
      case 'rename': m.name = e.name; break;
      case 'retype': m.type = e.type; if (e.type === 'symlink' || e.type === 'link') m.linkname = e.linkname; break;
      case 'body': m.body = Buffer.from(e.body); break;
      case 'drop': ms.splice(k, 1); break;
      case 'dup': ms.splice(k, 0, { ...m }); break;
      case 'swap': { const j = e.j % ms.length; [ms[k], ms[j]] = [ms[j]!, m]; break; }
    }
  }
  return ms;
}

describe('ferry import under fuzzing', () => {
  let root: string;
  let src: Store;
  let honestArchive: Buffer;
  let honestTar: Buffer;
  let honest: Member[];

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'ferry-fuzz-archive-'));
    src = new Store({ root: join(root, 'src'), memoryDir: join(root, 'src-mem') });
    await makeSnapshot(src, 'base', undefined, 1);
    await makeSnapshot(src, 'tip', 'base', 2);
    honestArchive = await exported(src, 'tip');
    honestTar = decompress(honestArchive);
    honest = (await membersOf(honestTar)).filter((m) => m.name !== ARCHIVE_TRAILER);
  });
  after(() => rm(root, { recursive: true, force: true }));

  /** Imports `bytes` into an empty store inside a sandbox, then checks everything the property says. */
  async function importChecked(bytes: Uint8Array, n: number, base: 'none' | 'same' | 'other' = 'none'): Promise<void> {
    const sandbox = join(root, `sandbox-${n}`);
    await mkdir(sandbox);
    const dst = new Store({ root: join(sandbox, 'store'), memoryDir: join(sandbox, 'mem') });
    // The store may already hold the archive's base: the same one (kept), or another (a conflict).
    if (base === 'same') await cp(join(src.tierDir('disk'), 'base'), join(dst.tierDir('disk'), 'base'), { recursive: true, verbatimSymlinks: true });
    if (base === 'other') await makeSnapshot(dst, 'base', undefined, 9);
    const before = base === 'none' ? [] : ['base'];
    const baseManifest = base === 'none' ? undefined : await readFile(join(dst.tierDir('disk'), 'base', 'manifest.json'));
    let ok = false;
    try {
      await decodesOrNames(async () => {
        await importArchive(dst, Readable.from([Buffer.from(bytes)]), { source: SOURCE });
        ok = true;
      }, SOURCE, { ms: 10_000 });
      // Nothing outside the target store: the sandbox holds only the store (and the memory tier's dir).
      assert.deepEqual((await readdir(sandbox)).filter((x) => x !== 'store' && x !== 'mem'), []);
      assert.deepEqual((await readdir(dst.root).catch(() => [])).filter((x) => x !== 'snapshots' && x !== 'workloads' && x !== 'store.json' && x !== 'intents'), []);
      assert.deepEqual(await readdir(root).then((xs) => xs.filter((x) => /escape/.test(x))), []);
      await assert.rejects(lstat('/tmp/ferry-fuzz-escape'));
      const names = await readdir(dst.tierDir('disk')).catch(() => []);
      assert.deepEqual(names.filter((x) => x.startsWith('.')), [], 'no temp dir left');
      if (baseManifest) assert.deepEqual(await readFile(join(dst.tierDir('disk'), 'base', 'manifest.json')), baseManifest, 'the base in the store is untouched');
      if (!ok) {
        assert.deepEqual(names, before, 'a failed import leaves nothing');
        assert.deepEqual(await readdir(dst.memoryDir).catch(() => []), [], 'nor in the memory tier');
        return;
      }
      // A successful import holds the declared snapshots: regular files, and a parent link to the parent.
      for (const s of await dst.list()) {
        for (const f of await readdir(s.dir)) {
          const st = await lstat(join(s.dir, f));
          if (f === 'parent') assert.equal(await readlink(join(s.dir, f)), `../${s.manifest.parent}`);
          else assert.ok(st.isFile(), `${s.manifest.id}/${f} is a regular file`);
        }
      }
    } finally {
      await rm(sandbox, { recursive: true, force: true });
    }
  }

  let n = 0;
  const property = <T>(input: fc.Arbitrary<T>, build: (t: T) => Uint8Array | Promise<Uint8Array> = (t) => t as Uint8Array) =>
    fc.assert(fc.asyncProperty(input, fc.constantFrom('none' as const, 'none' as const, 'same' as const, 'other' as const), async (t, base) =>
      importChecked(await withTimeout(Promise.resolve(build(t)), 10_000, 'packing'), n++, base)), fuzzParams(60));

  it('the honest archive imports (the baseline of every property), also next to its own base; another base is a conflict', async () => {
    await importChecked(honestArchive, n++);
    await importChecked(await pack(honest, true), n++);
    await importChecked(honestArchive, n++, 'same');
    await importChecked(honestArchive, n++, 'other');
  });

  it('regressions: zstd frame errors found by fuzzing are damaged archives, not unexplained ones', async () => {
    // A reserved frame-header bit, a dictionary id, a window larger than zstd allows: each was
    // ERR_ARCHIVE_INVALID with zstd's bare message ("rejected: Unsupported frame parameter").
    for (const hex of ['28b52ffd08000102030405060708090a', '28b52ffd01000102030405060708090a', '28b52ffd00ff0102030405060708090a']) {
      await withTempDir('fuzz-zstd', async (dir) => {
        const dst = new Store({ root: join(dir, 'store'), memoryDir: join(dir, 'mem') });
        await assert.rejects(importArchive(dst, Readable.from([Buffer.from(hex, 'hex')]), { source: SOURCE }), (e) => {
          assert.ok(isFerryError(e), String(e));
          assert.equal(e.code, 'ERR_ARCHIVE_CORRUPT', e.message);
          assert.match(e.message, /^archive fuzz\.ferry rejected: it is damaged \(/);
          return true;
        });
      });
    }
  });

  it('regression: a conflict with a snapshot already in the store names the archive', async () => {
    await withTempDir('fuzz-conflict', async (dir) => {
      const dst = new Store({ root: join(dir, 'store'), memoryDir: join(dir, 'mem') });
      await makeSnapshot(dst, 'base', undefined, 9);
      await assert.rejects(importArchive(dst, Readable.from([honestArchive]), { source: SOURCE }), (e) => {
        assert.ok(isFerryError(e), String(e));
        assert.equal(e.code, 'ERR_SNAPSHOT_CONFLICT');
        assert.match(e.message, /^archive fuzz\.ferry: the store already has a snapshot 'base' with other contents/);
        return true;
      });
    });
  });

  it('random bytes, and random bytes after a zstd frame header', async () => {
    await property(fc.oneof(fc.uint8Array({ maxLength: 512 }), fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), b]))));
  });

  it('an honest archive with its compressed bytes edited', async () => {
    await property(mutated(honestArchive, 4));
  });

  it('an honest archive with its tar bytes edited, recompressed', async () => {
    await property(mutated(honestTar, 4).map((t) => compress(Buffer.from(t))));
  });

  it('honest members renamed, retyped, edited, dropped, duplicated or reordered', async () => {
    await property(fc.tuple(editsOf(honest), fc.boolean()), ([edits, trailer]) => pack(applyEdits(honest, edits), trailer));
  });
});
