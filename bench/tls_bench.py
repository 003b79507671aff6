#!/usr/bin/env python3
"""TLS figures for mailrepd (never pass/fail): full handshakes per second
over IMAPS, and memory per idle TLS connection (RSS delta of the server
for N IMAPS connections that finished the handshake and read the
greeting, idle; likewise for N plain IMAP connections, for comparison).

usage: bench/tls_bench.py [--binary ./mailrepd] [--conns 200]
                          [--handshakes 500] [--threads 4]
       bench/tls_bench.py --port PORT [--handshakes 500] [--threads 4]

With --port, only the handshake rate of a server already listening with
implicit TLS on 127.0.0.1:PORT (any server: bench/run uses it for
mailrepd and Dovecot alike), printed as one JSON line.  Every handshake is
a full one (a new context-less connection, no session ticket, no session
reuse), TLS 1.2, the cipher suite of --tls-ciphers and group P-256, as
bench/imap_fetch.py --tls; a handshake counts once the IMAP greeting has
been read through TLS.
"""
import argparse
import concurrent.futures
import json
import os
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import rss_kib, serving  # noqa: E402
from imap_fetch import TLS_CIPHERS, tls_context  # noqa: E402


def ctx():
    """The benchmark's client context (TLS 1.2, ECDHE-ECDSA, P-256)."""
    return tls_context()


def handshakes_json(a):
    """--port mode: full handshakes per second; one JSON line."""
    c = tls_context(a.tls_ciphers)
    failures = []

    def one(_):
        """One connection: handshake, read the greeting, close."""
        try:
            s = c.wrap_socket(socket.create_connection(("127.0.0.1", a.port),
                                                       timeout=30))
            try:
                if s.session_reused:
                    failures.append("reused")
                if not s.recv(4096).startswith(b"* OK"):
                    failures.append("greeting")
                return s.version(), s.cipher()[0]
            finally:
                s.close()
        except (OSError, ssl.SSLError) as e:
            failures.append(str(e))
            return None

    proto = one(0)
    failures.clear()
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(a.threads) as pool:
        list(pool.map(one, range(a.handshakes)))
    dt = time.monotonic() - t0
    print(json.dumps({"handshakes": a.handshakes, "threads": a.threads,
                      "seconds": round(dt, 3),
                      "handshakes_per_s": round(a.handshakes / dt, 1),
                      "failures": len(failures),
                      "first_failure": failures[0] if failures else None,
                      "tls": " ".join(proto) if proto else None}))
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="./mailrepd")
    ap.add_argument("--conns", type=int, default=200)
    ap.add_argument("--handshakes", type=int, default=500)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--port", type=int,
                    help="measure handshakes/s of a running IMAPS server")
    ap.add_argument("--tls-ciphers", default=TLS_CIPHERS)
    a = ap.parse_args()
    if a.port:
        return handshakes_json(a)
    with serving(a.binary, ("lmtp", "imap", "imaps"), (
            "--max-connections", str(a.conns * 2 + 64),
            "--max-tls-handshakes", "1000", "--max-tls-sessions",
            str(a.conns + 64), "--log-level", "warn")) as (proc, ports):
        imap, imaps = ports["imap"], ports["imaps"]
        c = ctx()

        def one(_):
            s = c.wrap_socket(socket.create_connection(("127.0.0.1", imaps)))
            s.recv(4096)
            s.close()

        one(0)
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(a.threads) as pool:
            list(pool.map(one, range(a.handshakes)))
        dt = time.monotonic() - t0
        print("handshakes: %d full TLS 1.2 handshakes (ECDHE-ECDSA P-256) "
              "in %.2f s with %d client threads: %.0f/s"
              % (a.handshakes, dt, a.threads, a.handshakes / dt))
        for label, port, tls in (("plain IMAP", imap, False),
                                 ("IMAPS", imaps, True)):
            time.sleep(0.5)
            before = rss_kib(proc.pid)
            socks = []
            for _ in range(a.conns):
                s = socket.create_connection(("127.0.0.1", port))
                if tls:
                    s = c.wrap_socket(s)
                s.recv(4096)
                socks.append(s)
            time.sleep(1)
            after = rss_kib(proc.pid)
            print("memory: %d idle %s connections: RSS %d -> %d KiB, "
                  "%.1f KiB per connection" % (a.conns, label, before,
                                               after,
                                               (after - before) / a.conns))
            for s in socks:
                s.close()
            time.sleep(1.5)


if __name__ == "__main__":
    sys.exit(main())
