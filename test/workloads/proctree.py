#!/usr/bin/env python3
"""proctree: a self-verifying process tree for checkpoint/restore tests.

    proctree.py STATUS_DIR [--interval-ms MS]

The parent forks two children and keeps exchanging sequence numbers with them (every MS
milliseconds, default 20): with child 1 over a pair of pipes, with child 2 over an AF_UNIX
socketpair. The parent sends "N"; the child checks N is exactly one more than the last number
it saw and answers "N COUNT PID PPID" (COUNT: how many numbers it has received). The parent
checks the answer names its own N, that COUNT == N (neither side reset), and that the child's
pid and parent are still the ones it forked.

On SIGUSR1 (to the parent, the root of the tree) it verifies: both children alive (not
exited, answering), no channel error since the start, neither sequence went back since the previous
verification (each child's count of received numbers must also match: not reset), and three
more in-order round trips on each channel right now. Status protocol: see wlstatus.py.
"""
import os
import select
import signal
import socket
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wlstatus import Failure, Status  # noqa: E402

REPLY_TIMEOUT_S = 10.0


class Channel:
    def __init__(self, name, rfd, wfd, pid):
        self.name = name
        self.rfd = rfd
        self.wfd = wfd
        self.pid = pid
        self.seq = 0
        self.buf = b""
        self.error = None
        self.last_verified = 0
        self.status = None  # exit status once the child is reaped

    def read_line(self):
        """One line from the child; None on timeout or EOF (recorded as an error)."""
        waited = 0.0
        while b"\n" not in self.buf:
            # Short waits: a checkpoint may stop the clock for any time in between.
            ready, _, _ = select.select([self.rfd], [], [], 0.5)
            if not ready:
                waited += 0.5
                if waited >= REPLY_TIMEOUT_S:
                    self.error = self.error or f"{self.name}: no answer for {REPLY_TIMEOUT_S:.0f} s at seq {self.seq}"
                    return None
                continue
            try:
                data = os.read(self.rfd, 4096)
            except OSError as e:
                self.error = self.error or f"{self.name}: read failed at seq {self.seq}: {e}"
                return None
            if not data:
                self.error = self.error or f"{self.name}: EOF at seq {self.seq}"
                return None
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode()

    def exchange(self, parent_pid):
        if self.error:
            return False
        self.seq += 1
        try:
            os.write(self.wfd, f"{self.seq}\n".encode())
        except OSError as e:
            self.error = f"{self.name}: write failed at seq {self.seq}: {e}"
            return False
        line = self.read_line()
        if line is None:
            return False
        parts = line.split()
        if parts and parts[0] == "ERR":
            self.error = f"{self.name} reported: {line[4:]}"
            return False
        try:
            n, count, pid, ppid = (int(p) for p in parts)
        except ValueError:
            self.error = f"{self.name}: garbled answer {line!r} at seq {self.seq}"
            return False
        if n != self.seq:
            self.error = f"{self.name}: answer out of order: got {n}, expected {self.seq}"
        elif count != self.seq:
            self.error = f"{self.name}: child has received {count} numbers, parent sent {self.seq} (a side was reset)"
        elif pid != self.pid or ppid != parent_pid:
            self.error = f"{self.name}: answered from pid {pid} (parent {ppid}), expected pid {self.pid} (parent {parent_pid})"
        return self.error is None


def child_main(name, rfd, wfd):
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    expected = 0
    count = 0
    buf = b""
    error = None
    while True:
        while b"\n" not in buf:
            data = os.read(rfd, 4096)
            if not data:  # the parent is gone
                os._exit(0)
            buf += data
        line, _, buf = buf.partition(b"\n")
        count += 1
        expected += 1
        try:
            n = int(line)
        except ValueError:
            n = -1
        if error is None and n != expected:
            error = f"{name} got {line.decode(errors='replace')!r}, expected {expected}"
        reply = f"ERR {error}" if error else f"{n} {count} {os.getpid()} {os.getppid()}"
        os.write(wfd, (reply + "\n").encode())


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: proctree.py STATUS_DIR [--interval-ms MS]")
    status = Status(sys.argv[1]).install()
    interval = 0.02
    if "--interval-ms" in sys.argv:
        interval = int(sys.argv[sys.argv.index("--interval-ms") + 1]) / 1000

    # Child 1: a pair of pipes.
    p2c_r, p2c_w = os.pipe()
    c2p_r, c2p_w = os.pipe()
    pid1 = os.fork()
    if pid1 == 0:
        os.close(p2c_w)
        os.close(c2p_r)
        child_main("child1", p2c_r, c2p_w)
    os.close(p2c_r)
    os.close(c2p_w)

    # Child 2: an AF_UNIX socketpair.
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid2 = os.fork()
    if pid2 == 0:
        mine.close()
        os.close(p2c_w)
        os.close(c2p_r)
        fd = theirs.detach()
        child_main("child2", fd, fd)
    theirs.close()
    sock_fd = mine.detach()

    me = os.getpid()
    channels = [Channel("child1 (pipes)", c2p_r, p2c_w, pid1), Channel("child2 (socketpair)", sock_fd, sock_fd, pid2)]
    for ch in channels:
        ch.exchange(me)
    status.ready(f"parent={me} child1={pid1} child2={pid2}")

    def reap():
        for ch in channels:
            if ch.status is None:
                pid, st = os.waitpid(ch.pid, os.WNOHANG)
                if pid == ch.pid:
                    ch.status = st

    def check():
        reap()
        for ch in channels:
            if ch.status is not None:
                raise Failure(f"{ch.name} (pid {ch.pid}) exited: wait status {ch.status}")
        for ch in channels:
            if ch.error:
                raise Failure(ch.error)
        for ch in channels:
            if ch.seq < ch.last_verified:
                raise Failure(f"{ch.name}: sequence went back to {ch.seq} from {ch.last_verified} at the previous verification")
        # Three more round trips on each channel, now: the sequence moves on, in order.
        for _ in range(3):
            for ch in channels:
                if not ch.exchange(me):
                    raise Failure(ch.error)
        for ch in channels:
            ch.last_verified = ch.seq
        seqs = [ch.seq for ch in channels]
        return f"children=2 pipe_seq={seqs[0]} socket_seq={seqs[1]} progress={sum(seqs)}"

    last_progress = 0.0
    while True:
        if status.take():
            status.verdict_from(check)
        for ch in channels:
            ch.exchange(me)
        now = time.monotonic()
        if now - last_progress >= 1:
            reap()
            status.progress(sum(ch.seq for ch in channels))
            last_progress = now
        time.sleep(interval)


if __name__ == "__main__":
    main()
