#!/usr/bin/env python3
"""What many TLS clients cost mailrepd (a figure, never pass/fail): N
IMAPS connections are opened one after another and kept; printed are
how many got their greeting and the server's RSS growth (VmRSS before
and after, and the peak, VmHWM).  With --max-tls-sessions (default: the
server's own default) only that many hold TLS; the others are closed.

usage: bench/tls_slots.py [--binary ./mailrepd] [--conns 1000]
                          [--max-tls-sessions N | --old]

--old: the binary predates the setting (every client holds TLS).
"""
import argparse
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tls_bench import free_port, rss_kib, wait_port  # noqa: E402


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def serve_capped(binary, data, listeners, conns, setting, cap, old):
    """Starts `mailrepd serve` on listeners (its --imap/--imaps/--lmtp
    arguments) with room for conns clients and --setting cap, unless cap
    is None or the binary is old (predates the setting)."""
    args = [binary, "serve", "--data", data] + listeners + [
        "--max-connections", str(conns + 64), "--log-level", "error"]
    if cap is not None and not old:
        args += ["--" + setting, str(cap)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def greeted(ctx, port):
    """An IMAPS connection that read its greeting, or None."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s = ctx.wrap_socket(raw)
        if s.recv(4096).startswith(b"* OK"):
            return s
        s.close()
    except (OSError, ssl.SSLError):
        raw.close()
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="./mailrepd")
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--max-tls-sessions", type=int)
    ap.add_argument("--old", action="store_true",
                    help="the binary has no --max-tls-sessions")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="tlsslots")
    imaps, lmtp = free_port(), free_port()
    cap = a.max_tls_sessions
    proc = serve_capped(a.binary, tmp + "/data", [
        "--lmtp", "127.0.0.1:%d" % lmtp, "--imaps", "127.0.0.1:%d" % imaps],
        a.conns, "max-tls-sessions", cap, a.old)
    try:
        wait_port(imaps)
        time.sleep(0.5)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        before = rss_kib(proc.pid)
        socks = [greeted(ctx, imaps) for _ in range(a.conns)]
        time.sleep(1)
        after = rss_kib(proc.pid)
        print("%d IMAPS clients, max-tls-sessions %s: %d greeted; RSS "
              "%d -> %d KiB (+%.1f MiB), peak %d KiB"
              % (a.conns, "old binary" if a.old else
                 cap if cap is not None else "default",
                 sum(1 for s in socks if s), before, after,
                 (after - before) / 1024.0,
                 status_kib(proc.pid, "VmHWM")))
        for s in socks:
            if s is not None:
                s.close()
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
