#!/usr/bin/env node
// service: a small Node.js HTTP service with in-memory state, for checkpoint/restore tests.
//
//   node service.js STATUS_DIR PORT
//
// It listens on 127.0.0.1:PORT and keeps:
//   count    incremented by every GET /count, which answers {"count": N}
//   data     a Map of the last 1000 ticks, "k<t mod 1000>" -> {t, digest: sha256(t) prefix}; a
//            timer adds one tick every 20 ms
//   sum      the sum of all ticks (must be t(t+1)/2)
// GET /verify checks the invariants and answers 200 {"ok":true,"summary":...} or
// 500 {"ok":false,"reason":...}. On SIGUSR1 it checks the same invariants, then requests
// GET /count from itself over TCP (the listening socket must still serve after a restore), and
// writes STATUS_DIR/verdict. Status protocol: see wlstatus.py (ready, verdict, progress; every
// file written to a temporary name, closed and renamed).
//
// Run it with UV_USE_IO_URING=0: CRIU cannot checkpoint io_uring instances.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import process from 'node:process';
import { setInterval, setTimeout } from 'node:timers';

const [statusDir, portArg] = process.argv.slice(2);
if (!statusDir || !portArg) {
  process.stderr.write('usage: node service.js STATUS_DIR PORT\n');
  process.exit(2);
}
const port = Number(portArg);
const WINDOW = 1000;
/** Random per start: a restored process keeps it, a restarted one does not. */
const incarnation = crypto.randomBytes(8).toString('hex');

/** @param {string} name @param {string} text */
function writeStatus(name, text) {
  const tmp = path.join(statusDir, `.${name}.tmp`);
  fs.writeFileSync(tmp, `${text}\n`); // opens, writes, closes
  fs.renameSync(tmp, path.join(statusDir, name));
}

/** @param {number} t */
const digest = (t) => crypto.createHash('sha256').update(String(t)).digest('hex').slice(0, 16);

let count = 0;
let tick = 0;
let sum = 0;
/** @type {Map<string, {t: number, digest: string}>} */
const data = new Map();
let lastVerifiedTick = 0;
let lastVerifiedCount = 0;

function step() {
  tick += 1;
  data.set(`k${tick % WINDOW}`, { t: tick, digest: digest(tick) });
  sum += tick;
}

/** Returns a summary, or throws with the broken invariant. */
function checkInvariants() {
  if (data.size !== Math.min(tick, WINDOW)) throw new Error(`data has ${data.size} entries, expected ${Math.min(tick, WINDOW)}`);
  for (const [key, v] of data) {
    if (key !== `k${v.t % WINDOW}` || v.t <= tick - WINDOW || v.t > tick || v.digest !== digest(v.t)) {
      throw new Error(`data entry ${key} = ${JSON.stringify(v)} is wrong at tick ${tick}`);
    }
  }
  if (sum !== (tick * (tick + 1)) / 2) throw new Error(`sum ${sum} != ${(tick * (tick + 1)) / 2}`);
  return `ticks=${tick} entries=${data.size} count=${count}`;
}

const server = http.createServer((req, res) => {
  /** @param {number} code @param {object} body */
  const reply = (code, body) => {
    res.writeHead(code, { 'content-type': 'application/json', connection: 'close' });
    res.end(JSON.stringify(body));
  };
  if (req.method === 'GET' && req.url === '/count') {
    count += 1;
    reply(200, { count });
  } else if (req.method === 'GET' && req.url === '/verify') {
    try {
      reply(200, { ok: true, summary: checkInvariants() });
    } catch (err) {
      reply(500, { ok: false, reason: errorText(err) });
    }
  } else {
    reply(404, { ok: false, reason: 'not found' });
  }
});

/** @param {unknown} err */
function errorText(err) {
  return err instanceof Error ? err.message : String(err);
}

/** GET /count from this very server; resolves with the count it answers. @returns {Promise<number>} */
function selfRequest() {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/count', agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => {
        try {
          /** @type {unknown} */
          const parsed = JSON.parse(body);
          const got = typeof parsed === 'object' && parsed !== null && 'count' in parsed ? Number(parsed.count) : NaN;
          resolve(got);
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', reject);
  });
}

let verifying = false;
async function verify() {
  if (verifying) return;
  verifying = true;
  try {
    if (tick < lastVerifiedTick) throw new Error(`tick ${tick} is behind ${lastVerifiedTick} of the previous verification`);
    // The timers run: a tick past the previous verification comes within 2 s.
    for (const until = Date.now() + 2000; tick <= lastVerifiedTick;) {
      if (Date.now() > until) throw new Error(`ticks stopped at ${tick}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    checkInvariants();
    const before = count;
    const got = await selfRequest().catch((/** @type {unknown} */ err) => {
      throw new Error(`GET /count on 127.0.0.1:${port} failed: ${errorText(err)}`);
    });
    if (!(got > before) || got <= lastVerifiedCount) {
      throw new Error(`GET /count answered ${got}, expected more than ${before} (previous verification saw ${lastVerifiedCount})`);
    }
    lastVerifiedTick = tick;
    lastVerifiedCount = got;
    writeStatus('verdict', `ok ${checkInvariants()} progress=${tick} instance=${incarnation}`);
  } catch (err) {
    writeStatus('verdict', `fail ${errorText(err).replace(/\s+/g, ' ')}`);
  } finally {
    verifying = false;
  }
}

// A listener also keeps Node from starting its inspector on SIGUSR1.
process.on('SIGUSR1', () => { void verify(); });

server.listen(port, '127.0.0.1', () => {
  for (let i = 0; i < 10; i++) step();
  setInterval(step, 20);
  let lastProgress = 0;
  setInterval(() => {
    if (tick !== lastProgress) writeStatus('progress', String(tick));
    lastProgress = tick;
  }, 1000);
  writeStatus('ready', `ok port=${port} node=${process.version} instance=${incarnation}`);
});
