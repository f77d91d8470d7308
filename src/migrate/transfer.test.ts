/**
 * Image transfers end to end on loopback, without CRIU: a real agent app (token, body limit) on a
 * socket with a temp store, sendImages from a synthetic image directory, and a proxy in between
 * that can flip a byte, cut the connection or stop forwarding. Every failure must leave nothing
 * in the destination's store and give the sender a clear error. (Needs root only to mount the
 * tiny tmpfs of the "full store" case.)
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createAdaptorServer } from '@hono/node-server';
import { createAgentApp } from '../agent/app.js';
import { inspectImages } from '../criu/images/inspect.js';
import { PE_PRESENT } from '../criu/images/pagemap.js';
import { LimitAdmission } from '../engine/admission.js';
import { Jobs } from '../engine/jobs.js';
import { storeListing } from '../engine/listing.js';
import { checksumDir, verifyChecksums } from '../store/checksums.js';
import { Store } from '../store/store.js';
import { verifyForRestore } from '../store/verify.js';
import { FakeEngine } from '../testing/fake-engine.js';
import { writeDump } from '../testing/synthetic-dump.js';
import { isFerryError } from '../util/errors.js';
import { receiveImages } from './receive-images.js';
import { sendImages, type SendImagesOptions } from './send-images.js';
import { encodeBegin, encodeHeader, encodeData, type SnapshotMeta } from './wire.js';

const TOKEN = 'wire-test-token';
const MIB = 1 << 20;

/** A TCP proxy to `port` whose client→server bytes go through `tamper` (flip one byte, cut, stall). */
async function proxy(port: number, tamper: { flipAt?: number; cutAt?: number; stallAt?: number }): Promise<{ url: string; close: () => void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    sockets.add(client); sockets.add(upstream);
    let seen = 0;
    client.on('data', (chunk) => {
      const from = seen;
      seen += chunk.length;
      let out = chunk;
      if (tamper.flipAt !== undefined && tamper.flipAt >= from && tamper.flipAt < seen) {
        out = Buffer.from(chunk);
        out[tamper.flipAt - from]! ^= 0x40;
      }
      if (tamper.cutAt !== undefined && seen >= tamper.cutAt) {
        upstream.write(out.subarray(0, tamper.cutAt - from), () => { client.destroy(); upstream.destroy(); });
        return;
      }
      if (tamper.stallAt !== undefined && seen >= tamper.stallAt) { client.pause(); return; }
      if (!upstream.write(out)) { client.pause(); upstream.once('drain', () => client.resume()); }
    });
    upstream.on('data', (c) => client.write(c));
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address() as net.AddressInfo;
  return { url: `http://127.0.0.1:${a.port}`, close: () => { for (const s of sockets) s.destroy(); server.close(); } };
}

/** Nothing of any transfer in the store: no snapshot, no damaged one, no leftover, no temp dir, no intent. */
async function assertEmpty(store: Store): Promise<void> {
  // The agent removes what it received once its side of the failure has played out.
  const deadline = Date.now() + 5000;
  for (;;) {
    const l = await storeListing(store);
    const tmp = (await readdir(store.tierDir('disk')).catch(() => [] as string[])).filter((n) => n.startsWith('.'));
    const intents = await readdir(join(store.root, 'intents')).catch(() => [] as string[]);
    if (l.snapshots.length + l.damaged.length + l.leftovers.length + tmp.length + intents.length === 0) return;
    if (Date.now() > deadline) assert.fail(`the store is not empty: ${JSON.stringify({ snapshots: l.snapshots.map((s) => s.id), damaged: l.damaged, leftovers: l.leftovers, tmp, intents })}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('migrate: image transfer between agents (loopback, synthetic images)', () => {
  let work = '';
  let images = '';
  let meta: SnapshotMeta;
  let store: Store;
  let server: Server;
  let url = '';
  let agent: ReturnType<typeof createAgentApp>;
  let jobs: Jobs;
  let n = 0;
  const nextId = () => `m-${(++n).toString(16).padStart(16, '0')}`;
  const send = (over: Partial<SendImagesOptions> = {}) => sendImages({ dir: images, meta, url, token: TOKEN, migrationId: nextId(), compress: false, ...over });

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'ferry-transfer-'));
    images = join(work, 'images');
    await mkdir(images);
    await writeDump(images, PE_PRESENT);
    // A pages image of 24 MiB: zeros (compressible) then random bytes; and a log.
    await writeFile(join(images, 'pages-9.img'), Buffer.concat([Buffer.alloc(8 * MIB), randomBytes(16 * MIB)]));
    await writeFile(join(images, 'dump.log'), 'criu says hello\n');
    meta = {
      name: 'web', target: { kind: 'process', pid: 42, workload: 'web', command: ['/bin/prog'], ownPidNamespace: true },
      options: { tcpEstablished: false, extUnixSk: false, fileLocks: false, shellJob: false }, criuVersion: '4.2',
      host: { hostname: 'h1', kernel: '6.1', arch: 'x64', cpuFlags: ['sse2'] }, criuMs: 12, files: await checksumDir(images),
    };
    const engine = new FakeEngine(join(work, 'store'));
    store = engine.store;
    jobs = new Jobs({ engine, admission: new LimitAdmission(1) });
    agent = createAgentApp({ engine, jobs, token: TOKEN });
    server = createAdaptorServer({ fetch: agent.app.fetch }) as Server;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    server.close();
    await jobs.close();
    agent.dispose();
    await rm(work, { recursive: true, force: true });
  });

  it('sends an image directory (24 MiB, past the 64 KiB body limit) and the destination has a listed snapshot that passes verification', async () => {
    for (const compress of [false, true]) {
      let calls = 0;
      const r = await send({ compress, onProgress: () => { calls++; }, destination: { snapshot: `recv-${compress ? 'z' : 'raw'}` } });
      assert.equal(r.snapshot, `recv-${compress ? 'z' : 'raw'}`);
      assert.equal(r.files, (await readdir(images)).length);
      assert.equal(r.bytes, r.destination.bytes);
      assert.ok(calls > 10);
      if (compress) assert.ok(r.wireBytes < r.bytes * 0.8, `compressed: ${r.wireBytes} of ${r.bytes}`);
      else assert.ok(r.wireBytes > r.bytes);
      const s = await store.get(r.snapshot);
      assert.deepEqual(s.manifest.files, meta.files, 'the manifest holds the source\'s checksums');
      assert.deepEqual([s.manifest.name, s.manifest.target, s.manifest.criu.version, s.manifest.host.hostname, s.manifest.tier], [`recv-${compress ? 'z' : 'raw'}`, meta.target, '4.2', 'h1', 'disk']);
      await verifyChecksums(s.dir, s.manifest.files, s.manifest.id, s.manifest.algorithm);
      const v = verifyForRestore([s]);
      await Promise.all([v.small, v.pages]);
      const listing = await storeListing(store);
      assert.ok(listing.snapshots.some((x) => x.id === r.snapshot));
      assert.deepEqual([listing.damaged, listing.leftovers], [[], []]);
      const about = await inspectImages(s.dir);
      assert.equal(about.processes[0]?.pid, 42);
      assert.equal((await readdir(s.dir)).includes('dump.log'), true, 'the log travels, unchecksummed');
      await store.remove(r.snapshot);
    }
    await assertEmpty(store);
  });

  it('a byte flipped in flight: the destination refuses with ERR_TRANSFER_CORRUPT and keeps nothing', async () => {
    const p = await proxy(Number(new URL(url).port), { flipAt: 9 * MIB + 12345 });
    try {
      await assert.rejects(send({ url: p.url }), (err: unknown) => isFerryError(err, 'ERR_TRANSFER_CORRUPT') && /pages-9\.img.*fails its XXH3 check/.test(err.message));
    } finally { p.close(); }
    await assertEmpty(store);
  });

  it('the connection cut mid-transfer: the sender gets ERR_TRANSFER_FAILED, the destination keeps nothing', async () => {
    const p = await proxy(Number(new URL(url).port), { cutAt: 5 * MIB });
    try {
      await assert.rejects(send({ url: p.url }), (err: unknown) => isFerryError(err, 'ERR_TRANSFER_FAILED') && /connection to .* broke after/.test(err.message));
    } finally { p.close(); }
    await assertEmpty(store);
  });

  it('a transfer that stops moving: the sender\'s watchdog ends it (ERR_TRANSFER_STALLED), the destination keeps nothing', async () => {
    const p = await proxy(Number(new URL(url).port), { stallAt: 3 * MIB });
    const t0 = Date.now();
    try {
      await assert.rejects(send({ url: p.url, stallMs: 600 }), (err: unknown) => isFerryError(err, 'ERR_TRANSFER_STALLED') && /no progress for 1 s/.test(err.message));
    } finally { p.close(); }
    assert.ok(Date.now() - t0 < 5000);
    await assertEmpty(store);
  });

  it('the caller aborts: ERR_TRANSFER_ABORTED at once, the destination keeps nothing', async () => {
    const ac = new AbortController();
    const sending = send({ signal: ac.signal, onProgress: (pr) => { if (pr.wireBytes > 4 * MIB) ac.abort(); } });
    await assert.rejects(sending, (err: unknown) => isFerryError(err, 'ERR_TRANSFER_ABORTED'));
    await assertEmpty(store);
  });

  it('a wrong token: 401 ERR_UNAUTHORIZED, nothing written', async () => {
    await assert.rejects(send({ token: 'nope' }), (err: unknown) => isFerryError(err, 'ERR_UNAUTHORIZED'));
    await assertEmpty(store);
  });

  it('the destination\'s refusals come back with their codes: a name taken, a bad request, an unreachable agent', async () => {
    const r = await send({ destination: { snapshot: 'taken' } });
    await assert.rejects(send({ destination: { snapshot: 'taken' } }), (err: unknown) => isFerryError(err, 'ERR_SNAPSHOT_EXISTS'));
    await store.remove(r.snapshot);
    const bad = await agent.app.request('/v1/migrations/m-0000000000000001/images', { method: 'PUT', body: '{}', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' } });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: { message: string } }).error.message, /must be application\/vnd\.ferry\.images/);
    const badId = await agent.app.request('/v1/migrations/x..y/images', { method: 'PUT', body: 'x', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/vnd.ferry.images' } });
    assert.equal(badId.status, 400);
    await assert.rejects(send({ url: 'http://127.0.0.1:1' }), (err: unknown) => isFerryError(err, 'ERR_AGENT_UNREACHABLE'));
    await assertEmpty(store);
  });

  it('the stream names another migration than the URL: refused, nothing kept', async () => {
    const body = Buffer.concat([encodeHeader({ version: 1, migrationId: 'm-00000000000000ff', meta })]);
    const r = await agent.app.request('/v1/migrations/m-0000000000000abc/images', { method: 'PUT', body, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/vnd.ferry.images' } });
    assert.equal(r.status, 400);
    assert.match(((await r.json()) as { error: { message: string } }).error.message, /belongs to migration m-00000000000000ff/);
    await assertEmpty(store);
  });

  it('a receiver that hears nothing for its idle time stops (ERR_TRANSFER_STALLED) and keeps nothing', async () => {
    const head = encodeHeader({ version: 1, migrationId: 'm-0000000000000def', meta: { ...meta, files: {} } });
    const stream = (async function* () {
      yield Buffer.concat([head, encodeBegin('a.img', 10), ...encodeData(randomBytes(5))]);
      await new Promise(() => { /* never */ });
    })();
    await assert.rejects(receiveImages(store, stream, { migrationId: 'm-0000000000000def', idleMs: 300 }), (err: unknown) => isFerryError(err, 'ERR_TRANSFER_STALLED'));
    await assertEmpty(store);
  });
});

describe('migrate: a destination without room', { skip: process.getuid?.() !== 0 ? 'mounting a tmpfs needs root' : false }, () => {
  let mnt = '';
  before(async () => {
    mnt = await mkdtemp(join(tmpdir(), 'ferry-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mnt]);
  });
  after(async () => {
    execFileSync('umount', [mnt]);
    await rm(mnt, { recursive: true, force: true });
  });

  const meta: SnapshotMeta = {
    target: { kind: 'process', pid: 42, workload: undefined, command: ['x'], ownPidNamespace: true },
    options: { tcpEstablished: false, extUnixSk: false, fileLocks: false, shellJob: false }, criuVersion: '4.2',
    host: { hostname: 'h1', kernel: '6.1', arch: 'x64', cpuFlags: [] },
  };

  it('a declared size the tier cannot hold: ERR_STORE_FULL before anything is written', async () => {
    const store = new Store({ root: join(mnt, 'store-a') });
    let pulled = 0;
    const stream = (function* () {
      yield encodeHeader({ version: 1, migrationId: 'm-0000000000000001', totalBytes: 64 * MIB, fileCount: 1, meta });
      pulled++;
      yield encodeBegin('pages-1.img', 64 * MIB);
    })();
    await assert.rejects(receiveImages(store, stream, { migrationId: 'm-0000000000000001' }), (err: unknown) => isFerryError(err, 'ERR_STORE_FULL') && /disk tier has .* free; the images coming need 64\.0 MiB/.test(err.message));
    assert.equal(pulled, 0, 'refused on the header, before the first file');
    await assertEmpty(store);
    // The memory tier (its tmpfs is this small one too) is refused the same way.
    const mem = new Store({ root: join(mnt, 'store-b'), memoryDir: join(mnt, 'mem-b') });
    const again = (function* () { yield encodeHeader({ version: 1, migrationId: 'm-0000000000000002', totalBytes: 64 * MIB, fileCount: 1, meta }); })();
    await assert.rejects(receiveImages(mem, again, { migrationId: 'm-0000000000000002', tier: 'memory' }), (err: unknown) => isFerryError(err) && ['ERR_STORE_FULL', 'ERR_HOST_MEMORY'].includes(err.code));
    assert.deepEqual(await readdir(join(mnt, 'mem-b')).catch(() => []), []);
  });

  it('a stream that declares no size and fills the disk: ERR_STORE_FULL (ENOSPC), nothing kept', async () => {
    const store = new Store({ root: join(mnt, 'store-c') });
    const chunk = randomBytes(MIB);
    const stream = (function* () {
      yield encodeHeader({ version: 1, migrationId: 'm-0000000000000003', meta });
      yield encodeBegin('pages-1.img', 64 * MIB);
      for (let i = 0; i < 64; i++) yield Buffer.concat(encodeData(chunk));
    })();
    await assert.rejects(receiveImages(store, stream, { migrationId: 'm-0000000000000003' }), (err: unknown) => isFerryError(err, 'ERR_STORE_FULL') && /ran out of space while receiving pages-1\.img/.test(err.message));
    await assertEmpty(store);
  });
});
