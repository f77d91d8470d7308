#!/usr/bin/env python3
"""tcpecho: a TCP echo server and one established client connection, in one process tree.

    tcpecho.py STATUS_DIR PORT [--interval-ms MS]

The parent listens on 127.0.0.1:PORT and echoes whatever its one client sends. A forked child
is that client: it connects once, remembers its local port, and every MS milliseconds (default
20) sends a numbered line ("N <padding>") and checks that exactly that line comes back. It
never reconnects: EOF, a reset or a wrong echo is recorded and reported, not repaired.
Checkpointing it needs CRIU's --tcp-established (at dump and at restore).

On SIGUSR1 (to the parent) it verifies, on the server side: no error; exactly one connection
was ever accepted (a second one means the client reconnected); the accepted socket is still
ESTABLISHED (TCP_INFO) with the same peer port. Then it asks the child over a control
socketpair; the child answers after three more good round trips: its sequence number, that its
local port is unchanged, and that the sequence moved on since the last verification. Both
sides' counts must agree (the server has echoed SEQ or SEQ+1 lines). Status protocol: see
wlstatus.py.
"""
import os
import select
import signal
import socket
import struct
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wlstatus import Failure, Status  # noqa: E402

TCP_ESTABLISHED = 1


def tcp_state(sock):
    return struct.unpack("B", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1))[0]


def client_main(port, ctrl, interval):
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    sock = socket.create_connection(("127.0.0.1", port))
    local_port = sock.getsockname()[1]
    seq = 0
    last_reported = 0
    error = None
    buf = b""
    request_target = None  # answer the parent's status request once seq reaches this

    def handle_ctrl():
        nonlocal request_target
        data = ctrl.recv(64)
        if not data:
            os._exit(0)  # the parent is gone
        if b"?" in data:
            request_target = seq + 3

    def answer():
        nonlocal request_target, last_reported
        if error:
            msg = f"fail {error}"
        elif seq <= last_reported:
            msg = f"fail client sequence at {seq}, not past {last_reported} of the previous verification"
        else:
            msg = f"ok seq={seq} local_port={local_port}"
            last_reported = seq
        ctrl.sendall((msg + "\n").encode())
        request_target = None

    while True:
        if error is None:
            seq += 1
            line = f"{seq} {'x' * (seq % 61)}\n".encode()
            try:
                sock.sendall(line)
                while b"\n" not in buf:
                    ready, _, _ = select.select([sock, ctrl], [], [], 1.0)
                    if ctrl in ready:
                        handle_ctrl()
                    if sock in ready:
                        data = sock.recv(65536)
                        if not data:
                            raise ConnectionError("EOF from the server")
                        buf += data
                got, _, buf = buf.partition(b"\n")
                if got + b"\n" != line:
                    error = f"echo of line {seq} was {got[:40]!r}, expected {line[:40]!r}"
                elif sock.getsockname()[1] != local_port:
                    error = f"local port changed from {local_port} to {sock.getsockname()[1]}"
            except OSError as e:  # ConnectionResetError, BrokenPipeError, EOF ...
                error = f"connection broke at line {seq}: {type(e).__name__}: {e}"
        if request_target is not None and (error or seq >= request_target):
            answer()
        # Wait for the next line, still listening to the parent.
        ready, _, _ = select.select([ctrl], [], [], interval)
        if ready:
            handle_ctrl()


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: tcpecho.py STATUS_DIR PORT [--interval-ms MS]")
    status = Status(sys.argv[1]).install()
    port = int(sys.argv[2])
    interval = 0.02
    if "--interval-ms" in sys.argv:
        interval = int(sys.argv[sys.argv.index("--interval-ms") + 1]) / 1000

    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", port))
    lsock.listen(8)
    ctrl, ctrl_child = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        lsock.close()
        ctrl.close()
        client_main(port, ctrl_child, interval)
        os._exit(0)
    ctrl_child.close()

    lsock.settimeout(10)
    conn, peer = lsock.accept()
    conn.setblocking(True)
    lsock.settimeout(None)
    client_port = peer[1]
    errors = []
    accepted = 1
    lines = 0
    last_progress = 0.0
    pending = None  # deadline of an outstanding status request to the child
    ctrl_buf = b""

    def server_checks():
        if errors:
            raise Failure(errors[0])
        if accepted != 1:
            raise Failure(f"{accepted} connections were accepted (the client reconnected)")
        if conn.getpeername()[1] != client_port:
            raise Failure(f"peer port is {conn.getpeername()[1]}, was {client_port}")
        state = tcp_state(conn)
        if state != TCP_ESTABLISHED:
            raise Failure(f"server side of the connection is in TCP state {state}, not ESTABLISHED")

    status.ready(f"port={port} client_port={client_port} child={pid}")
    while True:
        if status.take() and pending is None:
            try:
                server_checks()
                ctrl.sendall(b"?\n")
                pending = time.monotonic() + 10
            except Exception as e:
                status.fail(f"{type(e).__name__}: {e}" if not isinstance(e, Failure) else e)
        watch = [lsock, ctrl] + ([conn] if not errors else [])
        ready, _, _ = select.select(watch, [], [], 0.5)
        if lsock in ready:
            extra, addr = lsock.accept()
            accepted += 1
            errors.append(f"unexpected new connection from port {addr[1]} (the client reconnected?)")
            extra.close()
        if conn in ready:
            try:
                data = conn.recv(65536)
                if not data:
                    errors.append(f"the client closed the connection (EOF) after {lines} lines")
                else:
                    conn.sendall(data)
                    lines += data.count(b"\n")
            except OSError as e:
                errors.append(f"server side broke after {lines} lines: {type(e).__name__}: {e}")
        if ctrl in ready:
            data = ctrl.recv(4096)
            if not data:
                errors.append("the client process is gone (control socket EOF)")
                if pending is not None:
                    status.fail(errors[-1])
                    pending = None
            ctrl_buf += data
            while b"\n" in ctrl_buf and pending is not None:
                answer, _, ctrl_buf = ctrl_buf.partition(b"\n")
                pending = None
                text = answer.decode()
                if not text.startswith("ok "):
                    status.fail(f"client: {text[5:] if text.startswith('fail ') else text}")
                    continue
                fields = dict(kv.split("=", 1) for kv in text[3:].split())
                seq = int(fields["seq"])
                try:
                    server_checks()
                    if int(fields["local_port"]) != client_port:
                        raise Failure(f"client local port {fields['local_port']} != accepted peer port {client_port}")
                    if not seq <= lines <= seq + 1:
                        raise Failure(f"server echoed {lines} lines but the client is at line {seq}")
                except Exception as e:
                    status.fail(e)
                else:
                    status.ok(f"connection=127.0.0.1:{client_port}->127.0.0.1:{port} seq={seq} progress={seq}")
        if pending is not None and time.monotonic() > pending:
            status.fail("the client did not answer the status request within 10 s")
            pending = None
        now = time.monotonic()
        if now - last_progress >= 1:
            status.progress(lines)
            last_progress = now


if __name__ == "__main__":
    main()
