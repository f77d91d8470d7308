// Export/import at the unit level: round trips of hand-made snapshots (flat and chained), and
// every rejection on hand-built malicious archives (tar-stream + zstd-napi, as an attacker would).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import tar from 'tar-stream';
import { compress, decompress } from 'zstd-napi';
import { withTempDir } from '../testing/processes.js';
import { isFerryError } from '../util/errors.js';
import { ARCHIVE_HEADER, ARCHIVE_TRAILER, importArchive, type ArchiveHeader, type TrailerMember } from './archive.js';
import { Store } from './store.js';
import { exportedBytes, makeHandSnapshot } from './testing-snapshots.js';

/** A snapshot made by hand: a few "image" files, a log, a manifest with real checksums. */
const makeSnapshot = (store: Store, id: string, parent?: string, seed = 1): Promise<void> =>
  makeHandSnapshot(store, id, { parent, seed, pagesBytes: 256 << 10, createdAt: new Date(Date.now() + seed).toISOString() });

const exported = exportedBytes;

interface Member { name: string; type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'fifo'; body?: Buffer; linkname?: string }

/** Packs members into a tar (plus a correct trailer unless told not to), zstd-compressed. */
async function craft(members: Member[], opts: { trailer?: boolean } = {}): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => { chunks.push(c as Buffer); });
  const done = new Promise<void>((r) => { pack.on('end', () => r()); });
  const listed: TrailerMember[] = [];
  const add = (m: Member) => new Promise<void>((resolve, reject) => {
    const type = m.type ?? 'file';
    const body = m.body ?? Buffer.alloc(0);
    pack.entry({ name: m.name, type, size: type === 'file' ? body.length : 0, ...(m.linkname ? { linkname: m.linkname } : {}), ...(type === 'character-device' ? { devmajor: 1, devminor: 3 } : {}) },
      type === 'file' ? body : Buffer.alloc(0), (err) => (err ? reject(err) : resolve()));
    const t = type === 'file' || type === 'directory' || type === 'symlink' ? type : 'file';
    const summed = type === 'file' && (/\.json$|\.log$/.test(m.name));
    listed.push({ name: m.name, type: t, size: type === 'file' ? body.length : 0, ...(summed ? { sha256: createHash('sha256').update(body).digest('hex') } : {}) });
  });
  for (const m of members) await add(m);
  if (opts.trailer !== false) await add({ name: ARCHIVE_TRAILER, body: Buffer.from(JSON.stringify({ members: listed.slice() })) });
  pack.finalize();
  await done;
  return compress(Buffer.concat(chunks));
}

/** The members of an honest export, decoded, for tampering. */
async function members(archive: Buffer): Promise<Member[]> {
  const out: Member[] = [];
  const extract = tar.extract();
  Readable.from([decompress(archive)]).pipe(extract);
  for await (const e of extract) {
    const chunks: Buffer[] = [];
    for await (const c of e) chunks.push(c as Buffer);
    out.push({ name: e.header.name, type: e.header.type as NonNullable<Member['type']>, body: Buffer.concat(chunks), ...(e.header.linkname ? { linkname: e.header.linkname } : {}) });
  }
  return out.filter((m) => m.name !== ARCHIVE_TRAILER);
}

const header = (chain: { id: string; parent: string | null }[]): Member => {
  const h: ArchiveHeader = { format: 'ferry-archive', version: 1, snapshot: chain[chain.length - 1]!.id, createdAt: new Date().toISOString(), chain: chain.map((c) => ({ ...c, bytes: 1 })) };
  return { name: ARCHIVE_HEADER, body: Buffer.from(JSON.stringify(h)) };
};

async function withStores(fn: (src: Store, dst: Store) => Promise<void>): Promise<void> {
  await withTempDir('archive', async (dir) => {
    await fn(new Store({ root: join(dir, 'src'), memoryDir: join(dir, 'src-mem') }), new Store({ root: join(dir, 'dst'), memoryDir: join(dir, 'dst-mem') }));
  });
}

/** Nothing listed, nothing left behind in either tier. */
async function assertClean(store: Store, before: string[] = []): Promise<void> {
  assert.deepEqual((await store.list()).map((s) => s.manifest.id).sort(), before.sort());
  for (const tier of ['disk', 'memory'] as const) {
    const names = await readdir(store.tierDir(tier)).catch(() => []);
    assert.deepEqual(names.filter((n) => n.startsWith('.')), [], `no temp dirs left in the ${tier} tier`);
  }
}

async function rejects(store: Store, archive: Buffer, code: string, pattern: RegExp, before: string[] = []): Promise<void> {
  await assert.rejects(importArchive(store, Readable.from([archive]), { source: 'test.ferry' }), (e) => {
    assert.ok(isFerryError(e), String(e));
    assert.equal(e.code, code, e.message);
    assert.match(e.message, pattern);
    assert.match(e.message, /^archive test\.ferry rejected: |already has/);
    return true;
  });
  await assertClean(store, before);
}

describe('snapshot archives', () => {
  it('export → import: the same files, listed, tier recorded; the id clash is refused, --as imports a copy', async () => {
    await withStores(async (src, dst) => {
      await makeSnapshot(src, 'snap-a');
      const archive = await exported(src, 'snap-a');
      const r = await importArchive(dst, Readable.from([archive]));
      assert.deepEqual([r.snapshot, r.imported, r.present, r.tier], ['snap-a', ['snap-a'], [], 'disk']);
      for (const f of ['pages-1.img', 'pagemap-1.img', 'dump.log', 'manifest.json']) {
        assert.deepEqual(await readFile(join(dst.tierDir('disk'), 'snap-a', f)), await readFile(join(src.tierDir('disk'), 'snap-a', f)), f);
      }
      await rejects(dst, archive, 'ERR_SNAPSHOT_EXISTS', /already has a snapshot 'snap-a'/, ['snap-a']);
      const copy = await importArchive(dst, Readable.from([archive]), { as: 'snap-b', tier: 'memory' });
      assert.equal(copy.snapshot, 'snap-b');
      const b = await dst.get('snap-b');
      assert.deepEqual([b.manifest.id, b.manifest.tier, b.dir], ['snap-b', 'memory', join(dst.memoryDir, 'snap-b')]);
      await assertClean(dst, ['snap-a', 'snap-b']);
    });
  });

  it('a chain travels whole (oldest first); ancestors already present are kept, not duplicated', async () => {
    await withStores(async (src, dst) => {
      await makeSnapshot(src, 'base', undefined, 1);
      await makeSnapshot(src, 'mid', 'base', 2);
      await makeSnapshot(src, 'tip', 'mid', 3);
      const archive = await exported(src, 'tip');
      const names = (await members(archive)).map((m) => m.name);
      assert.deepEqual(names.filter((n) => n.endsWith('/')), ['base/', 'mid/', 'tip/'], 'oldest first');
      assert.ok(names.includes('tip/parent') && names.includes('mid/parent') && !names.includes('base/parent'));

      // Into a store that already has the base: only mid and tip are new.
      await makeSnapshot(dst, 'base', undefined, 1);
      const r = await importArchive(dst, Readable.from([archive]));
      assert.deepEqual([r.imported, r.present], [['mid', 'tip'], ['base']]);
      assert.equal(await readlink(join(dst.tierDir('disk'), 'tip', 'parent')), '../mid');
      assert.ok((await lstat(join(dst.tierDir('disk'), 'tip', 'parent'))).isSymbolicLink());
      assert.equal((await dst.get('tip')).manifest.parent, 'mid');
      await assertClean(dst, ['base', 'mid', 'tip']);
    });
  });

  it('an ancestor in the store with other contents is a conflict, and nothing is imported', async () => {
    await withStores(async (src, dst) => {
      await makeSnapshot(src, 'base', undefined, 1);
      await makeSnapshot(src, 'tip', 'base', 2);
      await makeSnapshot(dst, 'base', undefined, 9);
      await rejects(dst, await exported(src, 'tip'), 'ERR_SNAPSHOT_CONFLICT', /other contents/, ['base']);
    });
  });

  describe('rejections (nothing is listed, no temp dir remains)', () => {
    const one = [{ id: 'snap-a', parent: null }];
    const cases: [string, () => Promise<Buffer>, string, RegExp][] = [
      ['an absolute path', () => craft([header(one), { name: '/etc/passwd', body: Buffer.from('x') }]), 'ERR_ARCHIVE_INVALID', /absolute path/],
      ['a .. component', () => craft([header(one), { name: 'snap-a/../../escape', body: Buffer.from('x') }]), 'ERR_ARCHIVE_INVALID', /'\.\.' component/],
      ['a hard link', () => craft([header(one), { name: 'snap-a/', type: 'directory' }, { name: 'snap-a/x', type: 'link', linkname: '/etc/shadow' }]), 'ERR_ARCHIVE_INVALID', /hard link/],
      ['a device file', () => craft([header(one), { name: 'snap-a/', type: 'directory' }, { name: 'snap-a/null', type: 'character-device' }]), 'ERR_ARCHIVE_INVALID', /device file/],
      ['a fifo', () => craft([header(one), { name: 'snap-a/', type: 'directory' }, { name: 'snap-a/p', type: 'fifo' }]), 'ERR_ARCHIVE_INVALID', /a fifo/],
      ['a symlink that escapes', () => craft([header(one), { name: 'snap-a/', type: 'directory' }, { name: 'snap-a/evil', type: 'symlink', linkname: '/etc' }]), 'ERR_ARCHIVE_INVALID', /only link allowed/],
      ['a parent link on a snapshot without parent', () => craft([header(one), { name: 'snap-a/', type: 'directory' }, { name: 'snap-a/parent', type: 'symlink', linkname: '../../../etc' }]), 'ERR_ARCHIVE_INVALID', /only link allowed/],
      ['a member outside the declared snapshots', () => craft([header(one), { name: 'other/manifest.json', body: Buffer.from('{}') }]), 'ERR_ARCHIVE_INVALID', /outside the snapshots/],
      ['a member nested below a snapshot', () => craft([header(one), { name: 'snap-a/sub/x', body: Buffer.from('x') }]), 'ERR_ARCHIVE_INVALID', /nested/],
      ['a duplicate member', () => craft([header(one), { name: 'snap-a/', type: 'directory' }, { name: 'snap-a', type: 'directory' }]), 'ERR_ARCHIVE_INVALID', /appears twice/],
      ['a very long name', () => craft([header(one), { name: `snap-a/${'x'.repeat(2000)}`, body: Buffer.from('x') }]), 'ERR_ARCHIVE_INVALID', /too long/],
      ['an oversize (5 MiB) pax header', () => craft([header(one), { name: `snap-a/${'y'.repeat(5 << 20)}`, body: Buffer.from('x') }]), 'ERR_ARCHIVE_INVALID', /larger than 4 MiB/],
      ['no header first', () => craft([{ name: 'snap-a/', type: 'directory' }]), 'ERR_ARCHIVE_INVALID', /does not start with ferry-archive\.json/],
      ['a header that is not ferry\'s', () => craft([{ name: ARCHIVE_HEADER, body: Buffer.from('{"format":"zip"}') }]), 'ERR_ARCHIVE_INVALID', /not a ferry archive header/],
      ['not zstd at all', () => Promise.resolve(Buffer.from('PK\x03\x04 this is a zip file, not a ferry archive')), 'ERR_ARCHIVE_CORRUPT', /damaged/],
      ['an empty input', () => Promise.resolve(Buffer.alloc(0)), 'ERR_ARCHIVE_TRUNCATED', /empty/],
    ];
    for (const [what, build, code, pattern] of cases) {
      it(what, async () => { await withStores(async (_src, dst) => rejects(dst, await build(), code, pattern)); });
    }

    it('members not matching the manifest: unlisted, wrong size, before the manifest', async () => {
      await withStores(async (src, dst) => {
        await makeSnapshot(src, 'snap-a');
        const honest = await members(await exported(src, 'snap-a'));
        const withExtra = [...honest.slice(0, 3), { name: 'snap-a/extra.img', body: Buffer.from('sneaky') }, ...honest.slice(3)];
        await rejects(dst, await craft(withExtra), 'ERR_ARCHIVE_INVALID', /extra\.img.* not listed in snap-a\/manifest\.json/);
        const grown = honest.map((m) => (m.name === 'snap-a/pages-1.img' ? { ...m, body: Buffer.concat([m.body ?? Buffer.alloc(0), Buffer.from('more')]) } : m));
        await rejects(dst, await craft(grown), 'ERR_ARCHIVE_INVALID', /pages-1\.img has \d+ bytes, its manifest says/);
        const early = [honest[0]!, honest[1]!, honest.find((m) => m.name === 'snap-a/pages-1.img')!, ...honest.slice(2).filter((m) => m.name !== 'snap-a/pages-1.img')];
        await rejects(dst, await craft(early), 'ERR_ARCHIVE_INVALID', /comes before snap-a\/manifest\.json/);
      });
    });

    it('one byte flipped inside an image member (trailer still consistent): caught by the image checksums', async () => {
      await withStores(async (src, dst) => {
        await makeSnapshot(src, 'snap-a');
        const tampered = (await members(await exported(src, 'snap-a'))).map((m) => {
          if (m.name !== 'snap-a/pages-1.img' || !m.body) return m;
          const body = Buffer.from(m.body);
          body[1000] = body[1000]! ^ 0x01;
          return { ...m, body };
        });
        await rejects(dst, await craft(tampered), 'ERR_ARCHIVE_CORRUPT', /pages-1\.img fails its checksum/);
      });
    });

    it('a changed manifest or log (not covered by image checksums): caught by the trailer\'s sha256', async () => {
      await withStores(async (src, dst) => {
        await makeSnapshot(src, 'snap-a');
        const archive = await exported(src, 'snap-a');
        const honest = await members(archive);
        const trailer = (await (async () => {
          const extract = tar.extract();
          Readable.from([decompress(archive)]).pipe(extract);
          for await (const e of extract) {
            const chunks: Buffer[] = [];
            for await (const c of e) chunks.push(c as Buffer);
            if (e.header.name === ARCHIVE_TRAILER) return Buffer.concat(chunks);
          }
          return Buffer.alloc(0);
        })());
        const log = honest.map((m) => (m.name === 'snap-a/dump.log' ? { ...m, body: Buffer.from((m.body ?? Buffer.alloc(0)).toString().toUpperCase()) } : m));
        await rejects(dst, await craft([...log, { name: ARCHIVE_TRAILER, body: trailer }], { trailer: false }), 'ERR_ARCHIVE_CORRUPT', /dump\.log differs/);
      });
    });

    it('truncated: mid-frame, and cut cleanly at a member boundary (no trailer)', async () => {
      await withStores(async (src, dst) => {
        await makeSnapshot(src, 'snap-a');
        const archive = await exported(src, 'snap-a');
        await rejects(dst, archive.subarray(0, Math.floor(archive.length / 2)), 'ERR_ARCHIVE_TRUNCATED', /cut off/);
        await rejects(dst, archive.subarray(0, archive.length - 3), 'ERR_ARCHIVE_TRUNCATED', /cut off/);
        const honest = await members(archive);
        await rejects(dst, await craft(honest, { trailer: false }), 'ERR_ARCHIVE_TRUNCATED', /ends before ferry-trailer\.json/);
      });
    });

    it('a byte flipped in the compressed stream: caught by zstd\'s frame checksum or the image checksums', async () => {
      await withStores(async (src, dst) => {
        await makeSnapshot(src, 'snap-a');
        const archive = Buffer.from(await exported(src, 'snap-a'));
        archive[Math.floor(archive.length * 0.6)]! ^= 0x10;
        await assert.rejects(importArchive(dst, Readable.from([archive]), { source: 'x' }), (e) => isFerryError(e) && /^ERR_ARCHIVE_(CORRUPT|INVALID|TRUNCATED)$/.test(e.code));
        await assertClean(dst);
      });
    });
  });
});
