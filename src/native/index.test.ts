// Real sockets, real syscalls, real child processes: nothing here is mocked.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync, copyFileSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync, writeSync, constants as fsc,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { isFerryError } from '../util/errors.js';
import { hash128, hashEach, SeqpacketChannel, seqpacketPair, type ReceivedMessage } from './index.js';

const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const T = { timeout: 20_000 };

/** The fd's open flags as the kernel reports them. */
function fdFlags(fd: number): number {
  const m = /^flags:\s*([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  assert.ok(m?.[1], `no flags in /proc/self/fdinfo/${fd}`);
  return parseInt(m[1], 8);
}

function fdIsOpen(fd: number): boolean {
  try {
    readFileSync(`/proc/self/fdinfo/${fd}`);
    return true;
  } catch {
    return false;
  }
}

/** Both ends wrapped in channels; closed after the test. */
function channels(): [SeqpacketChannel, SeqpacketChannel] {
  const { ferryFd, peerFd } = seqpacketPair();
  const pair: [SeqpacketChannel, SeqpacketChannel] = [new SeqpacketChannel(ferryFd), new SeqpacketChannel(peerFd)];
  open.push(...pair);
  return pair;
}
const open: SeqpacketChannel[] = [];
after(() => {
  for (const ch of open) ch.close();
});

function msg(m: ReceivedMessage | null): ReceivedMessage {
  assert.ok(m !== null, 'expected a record, got EOF');
  return m;
}

/** Settles state of a promise without awaiting it. */
function track<T>(p: Promise<T>): { settled: boolean; promise: Promise<T> } {
  const state = { settled: false, promise: p };
  p.then(() => { state.settled = true; }, () => { state.settled = true; });
  return state;
}

/** Runs python3 with `fd` at the child's fd 3; resolves with its stdout. */
function python(code: string, fd: number): { done: Promise<string> } {
  const child = spawn('python3', ['-c', code], { stdio: ['ignore', 'pipe', 'inherit', fd] });
  let out = '';
  assert.ok(child.stdout);
  child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString('utf8'); });
  const done = new Promise<string>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code === 0) resolve(out);
      else reject(new Error(`python3 exited with ${code ?? signal}; stdout: ${out}`));
    });
  });
  return { done };
}

function fifo(): { readFd: number; writeFd: number; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-native-'));
  const path = join(dir, 'fifo');
  const r = spawnSync('mkfifo', [path]);
  assert.equal(r.status, 0, `mkfifo failed: ${r.stderr?.toString()}`);
  const readFd = openSync(path, fsc.O_RDONLY | fsc.O_NONBLOCK);
  const writeFd = openSync(path, fsc.O_WRONLY);
  return { readFd, writeFd, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

void describe('seqpacketPair', () => {
  void it('returns CLOEXEC fds: the ferry end nonblocking, the peer end blocking', T, () => {
    const { ferryFd, peerFd } = seqpacketPair();
    try {
      assert.notEqual(ferryFd, peerFd);
      assert.ok(fdFlags(ferryFd) & O_CLOEXEC, 'ferry end is CLOEXEC');
      assert.ok(fdFlags(peerFd) & O_CLOEXEC, 'peer end is CLOEXEC');
      assert.ok(fdFlags(ferryFd) & O_NONBLOCK, 'ferry end is nonblocking');
      assert.equal(fdFlags(peerFd) & O_NONBLOCK, 0, 'peer end is blocking');
    } finally {
      closeSync(ferryFd);
      closeSync(peerFd);
    }
  });

  void it('as a child process sees them: the peer end blocking, the ferry end not', T, async () => {
    const { ferryFd, peerFd } = seqpacketPair();
    const code = 'import os; print(os.get_blocking(3))';
    try {
      const [peer, ferry] = await Promise.all([python(code, peerFd).done, python(code, ferryFd).done]);
      assert.equal(peer.trim(), 'True');
      assert.equal(ferry.trim(), 'False');
    } finally {
      closeSync(ferryFd);
      closeSync(peerFd);
    }
  });

  void it('lets a child talk SEQPACKET over the peer end (records echoed back reversed)', T, async () => {
    const { ferryFd, peerFd } = seqpacketPair();
    const code = [
      'import socket',
      's = socket.socket(fileno=3)',
      'assert s.type == socket.SOCK_SEQPACKET, s.type',
      'n = 0',
      'while True:',
      '    d = s.recv(1 << 20)',
      '    if not d: break',
      '    s.send(d[::-1]); n += 1',
      'print(n)',
    ].join('\n');
    const child = python(code, peerFd);
    closeSync(peerFd); // the child has its own copy now
    const ch = new SeqpacketChannel(ferryFd);
    try {
      await ch.send(Buffer.from('hello'));
      await ch.send(Buffer.from('ab'));
      assert.equal(msg(await ch.receive()).data.toString(), 'olleh');
      assert.equal(msg(await ch.receive()).data.toString(), 'ba');
    } finally {
      ch.close();
    }
    assert.equal((await child.done).trim(), '2');
  });
});

void describe('SeqpacketChannel', () => {
  void it('preserves message boundaries', T, async () => {
    const [a, b] = channels();
    const sent = [Buffer.from('one'), Buffer.from('two!'), Buffer.alloc(70_000, 0x5a), Buffer.from([0])];
    for (const m of sent) await a.send(m);
    for (const m of sent) {
      const got = msg(await b.receive());
      assert.deepEqual(got.data, m);
      assert.deepEqual(got.fds, []);
    }
  });

  void it('round-trips a 4 MiB message (the receive has no size cap)', T, async () => {
    const [a, b] = channels();
    const big = Buffer.alloc(4 << 20);
    for (let i = 0; i < big.length; i += 4) big.writeUInt32LE(i, i);
    await a.send(big);
    const got = msg(await b.receive());
    assert.equal(got.data.length, big.length);
    assert.ok(got.data.equals(big));
    await b.send(got.data);
    assert.ok(msg(await a.receive()).data.equals(big));
  });

  void it('accepts a Uint8Array view (only the viewed bytes are sent)', T, async () => {
    const [a, b] = channels();
    const backing = new Uint8Array([1, 2, 3, 4, 5, 6]);
    await a.send(backing.subarray(2, 5));
    assert.deepEqual([...msg(await b.receive()).data], [3, 4, 5]);
  });

  void it('passes fds with SCM_RIGHTS: they arrive CLOEXEC and work', T, async () => {
    const [a, b] = channels();
    const { readFd, writeFd, cleanup } = fifo();
    try {
      await a.send(Buffer.from('here is a pipe'), [writeFd]);
      closeSync(writeFd); // the received copy keeps the pipe open
      const got = msg(await b.receive());
      assert.equal(got.data.toString(), 'here is a pipe');
      assert.equal(got.fds.length, 1);
      const fd = got.fds[0]!; // may well reuse writeFd's number, closed above
      assert.ok(fdFlags(fd) & O_CLOEXEC, 'received fd is CLOEXEC');
      writeSync(fd, 'through the received fd');
      closeSync(fd);
      const buf = Buffer.alloc(100);
      const n = readSync(readFd, buf);
      assert.equal(buf.subarray(0, n).toString(), 'through the received fd');
    } finally {
      closeSync(readFd);
      cleanup();
    }
  });

  void it('passes several fds in one record, in order', T, async () => {
    const [a, b] = channels();
    const pipes = [fifo(), fifo(), fifo()];
    try {
      await a.send(Buffer.from('three'), pipes.map((p) => p.writeFd));
      const got = msg(await b.receive());
      assert.equal(got.fds.length, 3);
      got.fds.forEach((fd, i) => { writeSync(fd, `pipe ${i}`); closeSync(fd); });
      pipes.forEach((p, i) => {
        const buf = Buffer.alloc(16);
        assert.equal(buf.subarray(0, readSync(p.readFd, buf)).toString(), `pipe ${i}`);
      });
    } finally {
      for (const p of pipes) { closeSync(p.readFd); closeSync(p.writeFd); p.cleanup(); }
    }
  });

  void it('receive resolves null (EOF) once the peer has closed, after the queued records', T, async () => {
    const [a, b] = channels();
    await b.send(Buffer.from('last words'));
    b.close();
    assert.equal(msg(await a.receive()).data.toString(), 'last words');
    assert.equal(await a.receive(), null);
    assert.equal(await a.receive(), null);
  });

  void it('a pending receive resolves null when the peer closes', T, async () => {
    const [a, b] = channels();
    const pending = a.receive();
    await sleep(10);
    b.close();
    assert.equal(await pending, null);
  });

  void it('close() rejects a pending receive with ERR_CHANNEL_CLOSED, and later calls too', T, async () => {
    const [a] = channels();
    const pending = a.receive();
    assert.equal(a.closed, false);
    a.close();
    assert.equal(a.closed, true);
    await assert.rejects(pending, (err) => isFerryError(err, 'ERR_CHANNEL_CLOSED'));
    await assert.rejects(a.receive(), (err) => isFerryError(err, 'ERR_CHANNEL_CLOSED'));
    await assert.rejects(a.send(Buffer.from('x')), (err) => isFerryError(err, 'ERR_CHANNEL_CLOSED'));
    a.close(); // idempotent
  });

  void it('close() rejects sends still waiting for buffer space', T, async () => {
    const [a] = channels();
    const big = Buffer.alloc(4 << 20);
    const sends = Array.from({ length: 8 }, () => track(a.send(big)));
    await sleep(20);
    const waiting = sends.filter((s) => !s.settled);
    assert.ok(waiting.length > 0, 'some sends wait (the socket buffer is full)');
    a.close();
    for (const s of waiting) await assert.rejects(s.promise, (err) => isFerryError(err, 'ERR_CHANNEL_CLOSED'));
    for (const s of sends.filter((x) => !waiting.includes(x))) await s.promise;
  });

  void it('serves queued receives in call order', T, async () => {
    const [a, b] = channels();
    const pending = [a.receive(), a.receive(), a.receive()];
    await b.send(Buffer.from('1'));
    await b.send(Buffer.from('2'));
    await b.send(Buffer.from('3'));
    const got = await Promise.all(pending);
    assert.deepEqual(got.map((m) => msg(m).data.toString()), ['1', '2', '3']);
  });

  void it('does not block the event loop while a receive is pending', T, async () => {
    const [a, b] = channels();
    const pending = track(a.receive());
    const started = Date.now();
    let ticks = 0;
    const timer = setInterval(() => { ticks++; }, 5);
    await sleep(60);
    clearInterval(timer);
    assert.ok(ticks >= 3, `timers fired (${ticks})`);
    assert.ok(Date.now() - started >= 55);
    assert.equal(pending.settled, false);
    await b.send(Buffer.from('now'));
    assert.equal(msg(await pending.promise).data.toString(), 'now');
  });

  void it('queues sends when the socket buffer is full, and completes them in order as the peer reads', T, async () => {
    const [a, b] = channels();
    const count = 10;
    const records = Array.from({ length: count }, (_, i) => Buffer.alloc(4 << 20, i));
    const reply = track(a.receive()); // a also waits to read while its sends wait to write
    const sends = records.map((r) => track(a.send(r)));
    await sleep(20);
    assert.ok(sends.some((s) => !s.settled), 'some sends wait for space');
    for (let i = 0; i < count; i++) {
      const got = msg(await b.receive());
      assert.equal(got.data.length, 4 << 20);
      assert.equal(got.data[0], i);
      assert.equal(got.data[got.data.length - 1], i);
    }
    await Promise.all(sends.map((s) => s.promise));
    assert.equal(reply.settled, false);
    await b.send(Buffer.from('done'));
    assert.equal(msg(await reply.promise).data.toString(), 'done');
  });

  void it('sending to a closed peer fails with EPIPE', T, async () => {
    const [a, b] = channels();
    b.close();
    await assert.rejects(a.send(Buffer.from('anyone?')), (err) => {
      assert.ok(isFerryError(err, 'ERR_NATIVE_IO'));
      assert.match(err.message, /^sendmsg on CRIU channel failed: EPIPE/);
      return true;
    });
  });

  void it('receiving after the peer died with unread data fails with ECONNRESET', T, async () => {
    const [a, b] = channels();
    await a.send(Buffer.from('never read'));
    b.close();
    await assert.rejects(a.receive(), (err) => {
      assert.ok(isFerryError(err, 'ERR_NATIVE_IO'));
      assert.equal(err.message, 'recvmsg on CRIU channel failed: ECONNRESET');
      return true;
    });
    assert.equal(await a.receive(), null); // then plain EOF
  });

  void it('a pending receive fails with ECONNRESET when the peer dies with unread data', T, async () => {
    const [a, b] = channels();
    await a.send(Buffer.from('never read'));
    const pending = a.receive();
    await sleep(10);
    b.close();
    await assert.rejects(pending, (err) => isFerryError(err, 'ERR_NATIVE_IO') && /ECONNRESET/.test(err.message));
  });

  void it('refuses an empty record and too many fds', T, async () => {
    const [a] = channels();
    await assert.rejects(a.send(new Uint8Array(0)), (err) => isFerryError(err, 'ERR_NATIVE_IO') && /EINVAL/.test(err.message));
    const fds = Array.from({ length: 33 }, () => 0);
    await assert.rejects(a.send(Buffer.from('x'), fds), (err) => isFerryError(err, 'ERR_NATIVE_IO') && /EINVAL/.test(err.message));
  });

  void it('reports a bad fd passed with SCM_RIGHTS as EBADF', T, async () => {
    const [a] = channels();
    const { ferryFd, peerFd } = seqpacketPair();
    closeSync(ferryFd);
    closeSync(peerFd); // now surely not open (nothing else opened fds in between)
    assert.equal(fdIsOpen(peerFd), false);
    await assert.rejects(a.send(Buffer.from('x'), [peerFd]), (err) => isFerryError(err, 'ERR_NATIVE_IO') && /EBADF/.test(err.message));
  });

  void it('takes an fd that is blocking and makes it nonblocking; rejects a bad fd', T, () => {
    const { ferryFd, peerFd } = seqpacketPair();
    closeSync(ferryFd);
    assert.equal(fdFlags(peerFd) & O_NONBLOCK, 0);
    const ch = new SeqpacketChannel(peerFd);
    assert.ok(fdFlags(peerFd) & O_NONBLOCK);
    ch.close();
    assert.equal(fdIsOpen(peerFd), false);
    assert.throws(() => new SeqpacketChannel(peerFd), (err) => isFerryError(err, 'ERR_NATIVE_IO') && /EBADF/.test(err.message));
  });
});

void describe('loading the addon', () => {
  void it('throws ERR_NATIVE_MISSING on first use (not on import) when the addon is not built', T, async () => {
    // A copy of the compiled wrapper in a tree that has no native/build.
    const here = dirname(fileURLToPath(import.meta.url)); // dist/native
    const root = mkdtempSync(join(tmpdir(), 'ferry-nonative-'));
    try {
      mkdirSync(join(root, 'dist', 'native'), { recursive: true });
      mkdirSync(join(root, 'dist', 'util'));
      copyFileSync(join(here, 'index.js'), join(root, 'dist', 'native', 'index.js'));
      for (const f of ['errors.js', 'error-codes.js']) copyFileSync(join(here, '..', 'util', f), join(root, 'dist', 'util', f));
      writeFileSync(join(root, 'package.json'), '{"type":"module"}\n');
      const copy = await import(pathToFileURL(join(root, 'dist', 'native', 'index.js')).href) as typeof import('./index.js');
      assert.throws(() => copy.seqpacketPair(), (err: unknown) => {
        // Another copy of FerryError: match on name and code, not instanceof.
        assert.ok(err instanceof Error);
        assert.equal(err.name, 'FerryError');
        assert.equal((err as { code?: unknown }).code, 'ERR_NATIVE_MISSING');
        assert.match(String((err as { hint?: unknown }).hint), /ferry's setup builds it/);
        return true;
      });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('hashEach', () => {
  it('writes the XXH3-128 of every whole block, as hash128 of each would, and refuses an out too small', () => {
    const data = Buffer.alloc(3 * 4096 + 100);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31 + 7) & 255;
    const out = Buffer.alloc(16 + 3 * 16, 0xee);
    assert.equal(hashEach(data, 4096, out, 16), 3);
    assert.deepEqual(out.subarray(0, 16), Buffer.alloc(16, 0xee), 'nothing written before outOffset');
    for (let b = 0; b < 3; b++) assert.deepEqual(out.subarray(16 + b * 16, 32 + b * 16), hash128(data.subarray(b * 4096, (b + 1) * 4096)));
    assert.throws(() => hashEach(data, 4096, Buffer.alloc(40), 0), /no room/);
    assert.equal(hashEach(data.subarray(0, 100), 4096, out, 0), 0, 'no whole block, nothing written');
  });
});
