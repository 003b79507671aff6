#!/usr/bin/env python3
"""TLS figures for mailrepd (never pass/fail): full handshakes per second
over IMAPS, and memory per idle TLS connection (RSS delta of the server
for N IMAPS connections that finished the handshake and read the
greeting, idle; likewise for N plain IMAP connections, for comparison).

usage: bench/tls_bench.py [--binary ./mailrepd] [--conns 200]
                          [--handshakes 500] [--threads 4]
"""
import argparse
import concurrent.futures
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def wait_port(port, deadline=10):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    sys.exit("server did not start")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="./mailrepd")
    ap.add_argument("--conns", type=int, default=200)
    ap.add_argument("--handshakes", type=int, default=500)
    ap.add_argument("--threads", type=int, default=4)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="tlsbench")
    imap, imaps, lmtp = free_port(), free_port(), free_port()
    proc = subprocess.Popen(
        [a.binary, "serve", "--data", tmp + "/data", "--lmtp",
         "127.0.0.1:%d" % lmtp, "--imap", "127.0.0.1:%d" % imap, "--imaps",
         "127.0.0.1:%d" % imaps, "--max-connections", str(a.conns * 2 + 64),
         "--max-tls-handshakes", "1000", "--log-level", "warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(imaps)
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
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
