#!/usr/bin/env python3
"""A Redis client for migration tests and the demo (stdlib only, RESP over one TCP connection).

  redis-client.py HOST PORT fill N SIZE [KIND]    SET key:i to a value of SIZE characters derived from i
                                                 (pipelined); KIND repeat (default): a SHA-256 hex digest
                                                 repeated (compresses very well); random: SHAKE-256 of i
                                                 as hex (4 random bits a byte: compresses about 2:1)
  redis-client.py HOST PORT verify N SIZE [KIND]  check every key:i (MGET in batches); exit 1 on a mismatch
  redis-client.py HOST PORT load STOPFILE    INCR a counter every 5 ms on ONE connection until STOPFILE
                                             exists; prints JSON: ops, counter, the longest wait for a
                                             reply (the client-observed pause), errors. The connection is
                                             never reopened: if it breaks, that is the result.
"""
import hashlib, json, os, socket, sys, time

def value(i, size, kind='repeat'):
    if kind == 'random':
        return hashlib.shake_256(str(i).encode()).hexdigest((size + 1) // 2)[:size]
    seed = hashlib.sha256(str(i).encode()).hexdigest()
    return (seed * (size // 64 + 1))[:size]

def batch_of(size):
    """Keys per pipelined batch: 1000, fewer for big values (at most about 64 MiB in flight)."""
    return max(1, min(1000, (64 << 20) // max(1, size)))

class Conn:
    def __init__(self, host, port):
        self.s = socket.create_connection((host, port), timeout=60)
        self.buf = b''
    def send(self, *cmds):
        out = []
        for c in cmds:
            out.append(b'*%d\r\n' % len(c))
            for a in c:
                a = a if isinstance(a, bytes) else str(a).encode()
                out.append(b'$%d\r\n%s\r\n' % (len(a), a))
        self.s.sendall(b''.join(out))
    def line(self):
        while b'\r\n' not in self.buf:
            d = self.s.recv(1 << 20)
            if not d:
                raise ConnectionError('the server closed the connection')
            self.buf += d
        l, self.buf = self.buf.split(b'\r\n', 1)
        return l
    def exact(self, n):
        while len(self.buf) < n + 2:
            d = self.s.recv(1 << 20)
            if not d:
                raise ConnectionError('the server closed the connection')
            self.buf += d
        v, self.buf = self.buf[:n], self.buf[n + 2:]
        return v
    def reply(self):
        l = self.line()
        t, rest = l[:1], l[1:]
        if t in (b'+', b':'):
            return rest.decode()
        if t == b'-':
            raise RuntimeError(rest.decode())
        if t == b'$':
            n = int(rest)
            return None if n < 0 else self.exact(n).decode()
        if t == b'*':
            return [self.reply() for _ in range(int(rest))]
        raise RuntimeError('unexpected reply %r' % l)

def main():
    host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if mode in ('fill', 'verify') and len(sys.argv) > 6 and sys.argv[6] not in ('repeat', 'random'):
        sys.exit('redis-client.py: KIND is repeat or random, not %r' % sys.argv[6])
    c = Conn(host, port)
    if mode == 'fill':
        n, size = int(sys.argv[4]), int(sys.argv[5])
        kind = sys.argv[6] if len(sys.argv) > 6 else 'repeat'
        step = batch_of(size)
        for start in range(0, n, step):
            batch = range(start, min(n, start + step))
            c.send(*[('SET', 'key:%d' % i, value(i, size, kind)) for i in batch])
            for _ in batch:
                c.reply()
        print(json.dumps({'filled': n}))
    elif mode == 'verify':
        n, size = int(sys.argv[4]), int(sys.argv[5])
        kind = sys.argv[6] if len(sys.argv) > 6 else 'repeat'
        step = batch_of(size)
        bad = 0
        for start in range(0, n, step):
            keys = ['key:%d' % i for i in range(start, min(n, start + step))]
            c.send(['MGET'] + keys)
            for i, v in zip(range(start, start + len(keys)), c.reply()):
                if v != value(i, size, kind):
                    bad += 1
        print(json.dumps({'verified': n - bad, 'bad': bad}))
        sys.exit(1 if bad else 0)
    elif mode == 'load':
        stop = sys.argv[4]
        ops, longest, counter, error = 0, 0.0, None, None
        last = time.monotonic()
        try:
            while not os.path.exists(stop):
                t0 = time.monotonic()
                c.send(('INCR', 'load:counter'))
                counter = int(c.reply())
                now = time.monotonic()
                longest = max(longest, now - t0)
                ops += 1
                last = now
                time.sleep(0.005)
        except Exception as e:  # the result says what broke
            error = str(e)
        print(json.dumps({'ops': ops, 'counter': counter, 'longestWaitMs': round(longest * 1000), 'error': error}))
        sys.exit(1 if error else 0)

main()
