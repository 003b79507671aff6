#!/usr/bin/env python3
"""Online backup: how long it takes, and what deliveries see meanwhile.

    bench/backup_online.py [--messages N] [--mailrepd PATH]

Fills a new store with N messages (default 400) of 100-500 KB over LMTP,
then keeps one LMTP client delivering 20 KB messages back to back while
`mailrepd backup` copies the store.  Printed: the copy's size, how long
the backup took, and the deliveries before and during it (count, median
and maximum latency).  Figures only, never pass or fail.  Standard
library only; the data directory is a new temporary one.
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lmtp(port, marker, size):
    """One LMTP delivery to alice; returns its latency in seconds."""
    body = ("Subject: %s\r\nMessage-ID: <%s@bench>\r\n\r\n" % (
        marker, marker) + ("y" * 76 + "\r\n") * (size // 78)).encode()
    t = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"LHLO bench\r\n")
        while f.readline()[3:4] == b"-":
            pass
        for cmd in (b"MAIL FROM:<s@bench>", b"RCPT TO:<alice@bench>",
                    b"DATA"):
            s.sendall(cmd + b"\r\n")
            f.readline()
        s.sendall(body + b".\r\n")
        reply = f.readline()
        s.sendall(b"QUIT\r\n")
    if not reply.startswith(b"250"):
        sys.exit("delivery refused: %r" % reply)
    return time.monotonic() - t


def summary(name, lat):
    lat = sorted(lat)
    print("deliveries %-7s %5d  median %6.1f ms  max %7.1f ms" % (
        name, len(lat), lat[len(lat) // 2] * 1e3 if lat else 0,
        lat[-1] * 1e3 if lat else 0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=400)
    ap.add_argument("--mailrepd", default=os.environ.get(
        "MAILREPD", "./mailrepd"))
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="backup-bench")
    data, copy = os.path.join(tmp, "data"), os.path.join(tmp, "copy.db")
    subprocess.run([a.mailrepd, "user", "add", "alice", "--data", data],
                   input=b"pw\n", capture_output=True, check=True)
    port = free_port()
    srv = subprocess.Popen([a.mailrepd, "serve", "--data", data, "--lmtp",
                            "127.0.0.1:%d" % port],
                           stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)
        for i in range(a.messages):
            lmtp(port, "fill%d" % i, 100000 + i * 997 % 400000)
        lat, stop = [], threading.Event()

        def keep_delivering():
            i = 0
            while not stop.is_set():
                t = time.monotonic()
                lat.append((t, lmtp(port, "during%d" % i, 20000)))
                i += 1

        th = threading.Thread(target=keep_delivering)
        th.start()
        time.sleep(2)
        t0 = time.monotonic()
        p = subprocess.run([a.mailrepd, "backup", "--data", data, "--to",
                            copy], capture_output=True, text=True)
        t1 = time.monotonic()
        time.sleep(2)
        stop.set()
        th.join()
    finally:
        srv.terminate()
        srv.wait()
    print("store copy %.1f MB, backup %.2f s, exit %d" % (
        os.path.getsize(copy) / 1e6, t1 - t0, p.returncode))
    summary("before", [x for t, x in lat if t < t0])
    summary("during", [x for t, x in lat if t0 <= t <= t1])
    subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
