#!/usr/bin/env node
// Throughput of migration's image transfer (src/migrate/wire.ts) over loopback, by hand (not in
// `make test`): node scripts/bench-wire.mjs [SIZE_MIB=512] [DIR=/dev/shm]
//
//   plain   a raw HTTP PUT of the same bytes into a file (no framing, no hashing): the floor
//   wire    sendImages → a real `ferry agent` (its own process) → a sealed snapshot; raw and zstd
//   hashing the XXH3 work both sides do (chunk hash + the manifest's 4 KiB block tree), alone
//
// Two images: "mixed" (half zero pages, a quarter random, a quarter repetitive — like a heap) and
// "random" (incompressible, compression's worst case). Run after tsc (it imports dist/).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { hash128 } from '../dist/native/index.js';
import { sendImages } from '../dist/migrate/send-images.js';
import { FileDigest, MAX_CHUNK } from '../dist/migrate/wire.js';

const MIB = 1 << 20;
const sizeMiB = Number(process.argv[2] ?? 512);
const base = process.argv[3] ?? '/dev/shm';
const root = new URL('..', import.meta.url).pathname;
const work = await mkdtemp(join(base, 'ferry-bench-wire-'));
const out = (s) => process.stdout.write(`${s}\n`);

async function makeImage(dir, kind) {
  await mkdir(dir, { recursive: true });
  const fh = await open(join(dir, 'pages-1.img'), 'w');
  const rnd = randomBytes(MIB);
  const rep = Buffer.alloc(MIB);
  for (let i = 0; i < MIB; i++) rep[i] = (i % 4096) < 64 ? i & 0xff : (i * 7) % 13;
  for (let i = 0; i < sizeMiB; i++) {
    let b = rnd;
    if (kind === 'mixed') b = i % 4 < 2 ? Buffer.alloc(MIB) : i % 4 === 2 ? randomBytes(MIB) : rep;
    else b = randomBytes(MIB);
    await fh.write(b);
  }
  await fh.close();
  await writeFile(join(dir, 'core-1.img'), randomBytes(4096));
}

function agentProcess(store, tokenFile) {
  const child = spawn(join(root, 'bin/ferry'), ['--store', store, 'agent', '--listen', '127.0.0.1:0', '--token-file', tokenFile, '--log-file', join(work, 'agent.log'), '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let s = '';
    child.stdout.on('data', (d) => { s += d; try { resolve({ child, url: JSON.parse(s).listening }); } catch { /* more */ } });
    child.once('exit', (c) => reject(new Error(`agent exited ${c}`)));
  });
}

/** A plain HTTP sink in its own process: PUT body → file. */
function plainSink(file) {
  const code = `const http=require('http'),fs=require('fs');const s=http.createServer((q,r)=>{q.pipe(fs.createWriteStream(${JSON.stringify(file)})).on('finish',()=>{r.end('ok')})});s.listen(0,'127.0.0.1',()=>console.log(s.address().port));`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve) => child.stdout.once('data', (d) => resolve({ child, port: Number(String(d).trim()) })));
}

async function plain(dir) {
  const dest = join(work, 'plain.out');
  const { child, port } = await plainSink(dest);
  const t0 = performance.now();
  await new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'PUT', agent: false }, (res) => { res.resume(); res.on('end', resolve); });
    req.on('error', reject);
    pipeline(createReadStream(join(dir, 'pages-1.img'), { highWaterMark: MAX_CHUNK }), req).catch(reject);
  });
  const ms = performance.now() - t0;
  child.kill();
  await rm(dest, { force: true });
  return ms;
}

async function hashing(dir) {
  // What each side adds per byte: XXH3-128 of each 1 MiB chunk, and the 4 KiB block tree.
  const t0 = performance.now();
  const d = new FileDigest(sizeMiB * MIB);
  for await (const c of createReadStream(join(dir, 'pages-1.img'), { highWaterMark: MAX_CHUNK })) { hash128(c); d.update(c); }
  d.digest();
  const withHash = performance.now() - t0;
  const t1 = performance.now();
  for await (const _c of createReadStream(join(dir, 'pages-1.img'), { highWaterMark: MAX_CHUNK })) { /* read only */ }
  const readOnly = performance.now() - t1;
  return { withHash, readOnly };
}

const mbs = (ms) => ((sizeMiB * MIB) / 1e6 / (ms / 1000)).toFixed(0);
const token = randomBytes(16).toString('hex');
await writeFile(join(work, 'token'), token);
out(`# ${sizeMiB} MiB per run, files in ${base}, loopback, destination agent in its own process`);
try {
  for (const kind of ['mixed', 'random']) {
    const dir = join(work, `img-${kind}`);
    await makeImage(dir, kind);
    const h = await hashing(dir);
    out(`${kind}: hashing alone (one side: chunk XXH3 + 4 KiB tree) ${(h.withHash - h.readOnly).toFixed(0)} ms over reading (${h.readOnly.toFixed(0)} ms) = ${mbs(h.withHash - h.readOnly)} MB/s of hashing`);
    for (let rep = 0; rep < 2; rep++) {
      const p = await plain(dir);
      out(`${kind}: plain HTTP pipe      ${p.toFixed(0).padStart(6)} ms  ${mbs(p).padStart(5)} MB/s`);
      const store = join(work, `store-${kind}-${rep}`);
      const { child, url } = await agentProcess(store, join(work, 'token'));
      try {
        for (const compress of [false, true]) {
          const meta = { target: { kind: 'process', pid: 1, workload: undefined, command: ['x'], ownPidNamespace: true }, options: { tcpEstablished: false, extUnixSk: false, fileLocks: false, shellJob: false }, criuVersion: '4.2', host: { hostname: 'b', kernel: 'k', arch: 'x64', cpuFlags: [] } };
          const t0 = performance.now();
          const r = await sendImages({ dir, meta, url, token, migrationId: `m-${randomBytes(8).toString('hex')}`, compress, destination: { snapshot: `s-${compress ? 'z' : 'raw'}` } });
          const ms = performance.now() - t0;
          out(`${kind}: wire ${compress ? 'zstd' : 'raw '}           ${ms.toFixed(0).padStart(6)} ms  ${mbs(ms).padStart(5)} MB/s  wire ${(r.wireBytes / MIB).toFixed(0)} MiB (${(100 * r.wireBytes / r.bytes).toFixed(0)} %)  destination ${r.destination.ms} ms`);
        }
      } finally {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
        await rm(store, { recursive: true, force: true });
      }
    }
    await rm(dir, { recursive: true, force: true });
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
