#!/usr/bin/env python3
"""RSS that event streams add: starts `mailrepd serve` with a loopback
HTTP listener, measures its resident memory (VmRSS) idle, with N
streams open (GET /api/v1/events) after M deliveries every stream has
seen, and after the streams close.  Prints figures, never pass/fail.

    python3 bench/sse_clients.py --binary ./mailrepd --clients 50
"""
import argparse
import os
import smtplib
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import rss_kib, serving  # noqa: E402

PASSWORD = "bench password"


def stream(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
    got = b""
    while b"retry:" not in got:
        got += s.recv(4096)
    assert got.startswith(b"HTTP/1.1 200"), got[:100]
    return s


def drain(socks, want, deadline=30):
    """Reads every stream until each has seen want "event: new"."""
    end = time.monotonic() + deadline
    for s in socks:
        got = b""
        while got.count(b"event: new") < want:
            if time.monotonic() > end:
                raise RuntimeError("events missing")
            got += s.recv(65536)


def one_round(binary, clients, messages):
    def add_user(data):
        subprocess.run([binary, "user", "add", "alice", "--data", data],
                       input=PASSWORD + "\n", text=True, check=True,
                       stdout=subprocess.DEVNULL)

    with serving(binary, ("lmtp", "http"), setup=add_user) as (p, ports):
        lmtp, http = ports["lmtp"], ports["http"]
        stream(http).close()        # the HTTP path warmed up once
        time.sleep(1.2)
        idle = rss_kib(p.pid)
        socks = [stream(http) for _ in range(clients)]
        with smtplib.LMTP("127.0.0.1", lmtp) as c:
            for i in range(messages):
                c.sendmail("s@remote.test", ["alice@example.com"],
                           ("Subject: message %d\r\nFrom: s@remote.test"
                            "\r\n\r\nbody %d\r\n" % (i, i)).encode())
        drain(socks, messages)
        time.sleep(1.2)
        busy = rss_kib(p.pid)
        for s in socks:
            s.close()
        time.sleep(2.5)
        after = rss_kib(p.pid)
        return idle, busy, after


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="./mailrepd")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--messages", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    rows = [one_round(a.binary, a.clients, a.messages)
            for _ in range(a.rounds)]
    print("load average %.2f; %d streams, %d deliveries each seen by "
          "every stream; %d rounds" % (os.getloadavg()[0], a.clients,
                                       a.messages, a.rounds))
    print("| figure (KiB) | min | median | max |")
    print("| --- | ---: | ---: | ---: |")
    for name, vals in (("RSS idle", [r[0] for r in rows]),
                       ("RSS with the streams", [r[1] for r in rows]),
                       ("added by the streams", [r[1] - r[0] for r in rows]),
                       ("per stream", [(r[1] - r[0]) / a.clients
                                       for r in rows]),
                       ("RSS after they closed", [r[2] for r in rows])):
        print("| %s | %.0f | %.0f | %.0f |" % (
            name, min(vals), statistics.median(vals), max(vals)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
