#!/usr/bin/env python3
"""Drain time: N idle sessions (half LMTP, half IMAP), SIGQUIT to exit.

    bench/drain.py [N...]     (MAILREPD: the binary, default ./mailrepd)
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

MAILREPD = os.environ.get("MAILREPD", "./mailrepd")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def once(n):
    d = tempfile.mkdtemp(prefix="drain")
    lp, ip = free_port(), free_port()
    with open(d + "/log", "w") as log:
        p = subprocess.Popen([MAILREPD, "serve", "--data", d + "/data",
                              "--lmtp", "127.0.0.1:%d" % lp,
                              "--imap", "127.0.0.1:%d" % ip,
                              "--max-connections", str(n + 16)],
                             stdout=log, stderr=subprocess.STDOUT)
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", lp)).close()
            break
        except OSError:
            time.sleep(0.02)
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", ip if i % 2 else lp))
        s.recv(4096)
        socks.append(s)
    t0 = time.monotonic()
    p.send_signal(signal.SIGQUIT)
    rc = p.wait(60)
    ms = (time.monotonic() - t0) * 1000
    bye = sum(1 for s in socks if s.recv(4096)[:1] in (b"*", b"4"))
    print("drain idle_sessions=%d status=%d ms=%.0f goodbyes=%d" % (
        n, rc, ms, bye))


for arg in sys.argv[1:] or ["100", "1000"]:
    once(int(arg))
