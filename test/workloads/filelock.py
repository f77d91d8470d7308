#!/usr/bin/env python3
"""filelock: a workload holding file locks of every kind, which verifies it still holds them.

    filelock.py STATUS_DIR LOCK_DIR [--interval-ms MS]

In LOCK_DIR (outside the status directory: these files stay open) it creates three files and
locks them:
  flock.lock   flock(LOCK_EX)                               (BSD lock, per open file)
  posix.lock   fcntl/lockf write lock on bytes 0-99, read lock on bytes 200-299 (POSIX, per
               process), and one moving write lock on a single byte in 300-309 that it moves
               to the next byte every MS milliseconds (default 100): the lock state changes
               while it runs
  ofd.lock     F_OFD_SETLK write lock on the whole file     (open file description lock)
The files' contents never change (CRIU restores open files by path and checks their size).
Checkpointing it needs CRIU's --file-locks (at dump and at restore).

On SIGUSR1 it verifies from a forked helper (another process, with its own open files) that
every lock still excludes others: flock and OFD locks cannot be taken; bytes 0-99 can be
neither read- nor write-locked; bytes 200-299 can be read-locked but not write-locked; the
moving byte cannot be locked while its neighbours in 300-309 can; bytes 100-199 are free.
It also checks /proc/locks lists each lock on the right inode (and, for flock and POSIX locks,
for this process's pid as the host sees it). Status protocol: see wlstatus.py.
"""
import errno
import fcntl
import os
import struct
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wlstatus import Failure, Status  # noqa: E402

MOVING_BASE = 300
MOVING_SLOTS = 10
CONTENT = b"ferry filelock workload: this file's size must not change\n" * 8


def flock_struct(kind, start, length):
    # struct flock on x86-64/arm64: short l_type, l_whence; off_t l_start, l_len; pid_t l_pid (+pad)
    return struct.pack("hhqqi4x", kind, os.SEEK_SET, start, length, 0)


def open_file(path):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    if os.fstat(fd).st_size != len(CONTENT):
        os.ftruncate(fd, 0)
        os.pwrite(fd, CONTENT, 0)
    return fd


def conflicts(fn):
    """True when the lock attempt is refused because someone holds a conflicting lock."""
    try:
        fn()
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return True
        raise
    return False


def helper_checks(paths, moving):
    """Runs in a forked helper process; returns a list of problems."""
    problems = []
    f = os.open(paths["flock"], os.O_RDWR)
    p = os.open(paths["posix"], os.O_RDWR)
    o = os.open(paths["ofd"], os.O_RDWR)

    def posix(kind, start, length):
        return lambda: fcntl.lockf(p, kind | fcntl.LOCK_NB, length, start)

    def expect(what, should_conflict, fn):
        got = conflicts(fn)
        if got != should_conflict:
            problems.append(f"{what}: {'refused' if got else 'granted'}, expected {'refused' if should_conflict else 'granted'}")

    expect("flock(LOCK_EX) on flock.lock", True, lambda: fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB))
    expect("flock(LOCK_SH) on flock.lock", True, lambda: fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB))
    expect("OFD write lock on ofd.lock", True, lambda: fcntl.fcntl(o, fcntl.F_OFD_SETLK, flock_struct(fcntl.F_WRLCK, 0, 0)))
    expect("OFD read lock on ofd.lock", True, lambda: fcntl.fcntl(o, fcntl.F_OFD_SETLK, flock_struct(fcntl.F_RDLCK, 0, 0)))
    expect("POSIX write lock on posix.lock bytes 0-99", True, posix(fcntl.LOCK_EX, 0, 100))
    expect("POSIX read lock on posix.lock byte 50", True, posix(fcntl.LOCK_SH, 50, 1))
    expect("POSIX read lock on posix.lock bytes 200-299", False, posix(fcntl.LOCK_SH, 200, 100))
    fcntl.lockf(p, fcntl.LOCK_UN, 100, 200)
    expect("POSIX write lock on posix.lock byte 250", True, posix(fcntl.LOCK_EX, 250, 1))
    expect("POSIX write lock on posix.lock bytes 100-199", False, posix(fcntl.LOCK_EX, 100, 100))
    fcntl.lockf(p, fcntl.LOCK_UN, 100, 100)
    for i in range(MOVING_SLOTS):
        byte = MOVING_BASE + i
        expect(f"POSIX write lock on posix.lock byte {byte} (moving lock is at {MOVING_BASE + moving})",
               i == moving, posix(fcntl.LOCK_EX, byte, 1))
        if i != moving:
            fcntl.lockf(p, fcntl.LOCK_UN, 1, byte)
    return problems


def run_helper(paths, moving):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            problems = helper_checks(paths, moving)
        except Exception as e:
            problems = [f"helper crashed: {type(e).__name__}: {e}"]
        os.write(w, "\n".join(problems).encode())
        os._exit(0)
    os.close(w)
    out = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        out += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return [line for line in out.decode().split("\n") if line]


def proc_locks():
    """Entries of /proc/locks as (kind, mode, pid, inode, start, end); blocked waiters skipped."""
    entries = []
    with open("/proc/locks") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 8 or parts[1] == "->":
                continue
            kind, mode, pid, dev_ino, start, end = parts[1], parts[3], parts[4], parts[5], parts[6], parts[7]
            entries.append((kind, mode, int(pid), int(dev_ino.rsplit(":", 1)[1]), start, end))
    return entries


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: filelock.py STATUS_DIR LOCK_DIR [--interval-ms MS]")
    status = Status(sys.argv[1]).install()
    lock_dir = sys.argv[2]
    interval = 0.1
    if "--interval-ms" in sys.argv:
        interval = int(sys.argv[sys.argv.index("--interval-ms") + 1]) / 1000
    os.makedirs(lock_dir, exist_ok=True)
    paths = {k: os.path.join(lock_dir, f"{k}.lock") for k in ("flock", "posix", "ofd")}
    fds = {k: open_file(p) for k, p in paths.items()}
    inodes = {k: os.fstat(fd).st_ino for k, fd in fds.items()}

    fcntl.flock(fds["flock"], fcntl.LOCK_EX | fcntl.LOCK_NB)
    fcntl.lockf(fds["posix"], fcntl.LOCK_EX | fcntl.LOCK_NB, 100, 0)
    fcntl.lockf(fds["posix"], fcntl.LOCK_SH | fcntl.LOCK_NB, 100, 200)
    fcntl.fcntl(fds["ofd"], fcntl.F_OFD_SETLK, flock_struct(fcntl.F_WRLCK, 0, 0))
    moving = 0
    fcntl.lockf(fds["posix"], fcntl.LOCK_EX | fcntl.LOCK_NB, 1, MOVING_BASE + moving)
    moves = 0
    last_verified_moves = -1

    def check():
        nonlocal last_verified_moves
        for k, fd in fds.items():
            st = os.fstat(fd)
            if st.st_ino != inodes[k] or st.st_nlink != 1 or st.st_size != len(CONTENT):
                raise Failure(f"{k}.lock changed: inode {st.st_ino} (was {inodes[k]}), links {st.st_nlink}, size {st.st_size}")
        if moves < last_verified_moves:
            raise Failure(f"the moving lock's move count went back to {moves} from {last_verified_moves}")
        problems = run_helper(paths, moving)
        if problems:
            raise Failure("; ".join(problems))
        host_pid = int(os.readlink("/proc/self"))  # /proc/locks shows pids as the host's /proc does
        entries = proc_locks()
        want = [
            ("FLOCK", "WRITE", inodes["flock"], host_pid, "0", "EOF"),
            ("POSIX", "WRITE", inodes["posix"], host_pid, "0", "99"),
            ("POSIX", "READ", inodes["posix"], host_pid, "200", "299"),
            ("POSIX", "WRITE", inodes["posix"], host_pid, str(MOVING_BASE + moving), str(MOVING_BASE + moving)),
            ("OFDLCK", "WRITE", inodes["ofd"], -1, "0", "EOF"),
        ]
        for kind, mode, ino, pid, start, end in want:
            if not any(e[0] == kind and e[1] == mode and e[3] == ino and e[4] == start and e[5] == end
                       and (e[2] == pid or pid == -1) for e in entries):
                mine = [e for e in entries if e[3] in inodes.values()]
                raise Failure(f"/proc/locks has no {kind} {mode} lock {start}-{end} on inode {ino} for pid {pid}; it lists {mine}")
        last_verified_moves = moves
        return f"flock=held posix=held(0-99 W,200-299 R,{MOVING_BASE + moving} W) ofd=held host_pid={host_pid} progress={moves}"

    status.ready(f"lock_dir={lock_dir} flock_ino={inodes['flock']} posix_ino={inodes['posix']} ofd_ino={inodes['ofd']}")
    last_progress = 0.0
    while True:
        if status.take():
            status.verdict_from(check)
        # Move the single-byte lock: take the next byte, then release the previous one.
        nxt = (moving + 1) % MOVING_SLOTS
        fcntl.lockf(fds["posix"], fcntl.LOCK_EX | fcntl.LOCK_NB, 1, MOVING_BASE + nxt)
        fcntl.lockf(fds["posix"], fcntl.LOCK_UN, 1, MOVING_BASE + moving)
        moving = nxt
        moves += 1
        now = time.monotonic()
        if now - last_progress >= 1:
            status.progress(moves)
            last_progress = now
        time.sleep(interval)


if __name__ == "__main__":
    main()
