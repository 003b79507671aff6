"""What the benchmarks share: free ports, a server's resident memory,
and a `mailrepd serve` started on a throw-away store and stopped."""
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    """The process's resident memory (VmRSS), KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def wait_port(port, deadline=10):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("port %d not ready" % port)


@contextlib.contextmanager
def serving(binary, listeners, extra=(), setup=None):
    """Starts `binary serve` on a new data directory, with a listener on
    a free 127.0.0.1 port for each name of listeners ("lmtp", "http",
    "imaps"...), after setup(data_dir) when given; yields (process,
    {name: port}) once every port accepts; then SIGTERM, and the
    directory goes."""
    tmp = tempfile.mkdtemp(prefix="mailrepd-bench")
    data = os.path.join(tmp, "data")
    ports = {name: free_port() for name in listeners}
    args = [binary, "serve", "--data", data]
    for name, port in ports.items():
        args += ["--" + name, "127.0.0.1:%d" % port]
    try:
        if setup is not None:
            setup(data)
        p = subprocess.Popen(args + list(extra), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        try:
            for port in ports.values():
                wait_port(port)
            yield p, ports
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(10)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
