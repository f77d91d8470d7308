"""The status protocol every ferry test workload speaks (shared by the Python workloads).

    DIR/ready     written once the workload's state is set up: "ok <key=value ...> instance=ID"
                  (ID: random per start; a restored process keeps it, a restarted one does not)
    SIGUSR1       verify the whole state, then write
    DIR/verdict   "ok <summary> instance=ID" or "fail <reason>"
    DIR/progress  a number that grows as the workload mutates its state (now and then)

Every file is written to a temporary name, closed, then renamed into place: no file of the
status directory is ever held open (CRIU restores open regular files by path and checks their
size, so a file held open across a checkpoint that another process may replace would break
restores). The SIGUSR1 handler only sets a flag; the workload verifies in its main loop.
"""
import os
import signal


class Status:
    def __init__(self, directory):
        self.dir = directory
        self.requested = False
        self.verifications = 0
        self.instance = os.urandom(8).hex()

    def write(self, name, text):
        tmp = os.path.join(self.dir, "." + name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, (text + "\n").encode())
        finally:
            os.close(fd)
        os.rename(tmp, os.path.join(self.dir, name))

    def ready(self, summary):
        self.write("ready", f"ok {summary} instance={self.instance}")

    def ok(self, summary):
        self.verifications += 1
        self.write("verdict", f"ok {summary} instance={self.instance}")

    def fail(self, reason):
        self.verifications += 1
        self.write("verdict", "fail " + " ".join(str(reason).split()))

    def progress(self, n):
        self.write("progress", str(n))

    def install(self):
        """Routes SIGUSR1 to a flag (`take()` reads and clears it)."""

        def on_usr1(_sig, _frame):
            self.requested = True

        signal.signal(signal.SIGUSR1, on_usr1)
        return self

    def take(self):
        if self.requested:
            self.requested = False
            return True
        return False

    def verdict_from(self, check):
        """Runs `check()` (returns a summary or raises) and writes the verdict."""
        try:
            summary = check()
        except Failure as e:
            self.fail(str(e))
        except Exception as e:  # a bug in the check: the verdict must still be written
            self.fail(f"{type(e).__name__}: {e}")
        else:
            self.ok(summary)


class Failure(Exception):
    """A verification failure, with the reason the verdict reports."""
