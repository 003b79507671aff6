"""`mailrepd dev` as the tests start it: --ports auto --json, TMPDIR in
the test's tmp_path, and the JSON line read from stdout."""
import json
import os
import selectors
import signal
import subprocess
import time

from conftest import MAILREPD, sanitizer_report

READY_DEADLINE = 10.0


class Dev:
    def __init__(self, tmp, args=(), tmpdir=None):
        self.tmp = tmp
        self.log = tmp / "dev.log"
        self.tmpdir = tmpdir or tmp
        env = dict(os.environ, TMPDIR=str(self.tmpdir))
        self.t0 = time.monotonic()
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(
                [MAILREPD, "dev", "--ports", "auto", "--json"] +
                [str(a) for a in args], stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=logf, env=env,
                start_new_session=True)
        self.info = self._read_json()
        self.ready_seconds = time.monotonic() - self.t0
        self.host = self.info["host"]
        self.ports = self.info["ports"]
        self.data = self.info["data_dir"]

    def _read_json(self):
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        line = b""
        deadline = time.monotonic() + READY_DEADLINE
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                self.kill()
                raise AssertionError("no JSON line from mailrepd dev; "
                                     "log:\n" + self.log_text())
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                self.proc.wait()
                raise AssertionError("mailrepd dev exited %s; log:\n%s" % (
                    self.proc.returncode, self.log_text()))
            line += chunk
        sel.close()
        return json.loads(line)

    def log_text(self):
        return self.log.read_text(errors="replace")

    def stop(self, sig=signal.SIGQUIT, timeout=10):
        """Signals dev and returns its exit status; the log must be clean."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        self.proc.stdout.close()
        bad = sanitizer_report(self.log_text())
        assert bad is None, "sanitizer report:\n" + self.log_text()
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            rc = self.stop()
            assert rc == 0, "dev exited %d; log:\n%s" % (rc, self.log_text())
