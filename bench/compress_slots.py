#!/usr/bin/env python3
"""What COMPRESS=DEFLATE costs mailrepd (a figure, never pass/fail): N
logged-in IMAP sessions are opened and kept, then each asks for
COMPRESS DEFLATE and sends 2,500 compressed NOOPs with a 32 KiB window
(so that the server's zlib windows both ways are filled, as a busy
client's would be); printed are how many got compression and the
server's RSS growth per compressing session (VmRSS before and after).

usage: bench/compress_slots.py [--binary ./mailrepd] [--conns 400]
                               [--max-compress-sessions N | --old]

--old: the binary predates the setting (every session may compress).
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from login_burst import free_port, wait_port  # noqa: E402
from tls_bench import rss_kib  # noqa: E402
from tls_slots import serve_capped  # noqa: E402

HOST = "127.0.0.1"
PASSWORD = "bench-pass"
PER_USER = 100		# below the server's IMAP sessions per user
NOOPS = 2500		# 45 KiB of commands, 90 KiB of replies


def until_tagged(sock, tag, z=None):
    """Reads until the tagged reply of tag; returns its text."""
    buf = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return "closed"
        buf += z.decompress(chunk) if z is not None else chunk
        for line in buf.split(b"\r\n"):
            if line.startswith(tag + b" "):
                return line[len(tag) + 1:].decode("latin-1")


def logged_in(port, user):
    s = socket.create_connection((HOST, port), timeout=60)
    s.recv(4096)
    s.sendall(b"a LOGIN %s %s\r\n" % (user.encode(), PASSWORD.encode()))
    if not until_tagged(s, b"a").startswith("OK"):
        sys.exit("login failed")
    return s


def compress(s):
    """COMPRESS DEFLATE, then NOOPS compressed NOOPs with random tags,
    which fill both ways' windows as a busy client would; True when
    accepted."""
    s.sendall(b"c COMPRESS DEFLATE\r\n")
    if not until_tagged(s, b"c").startswith("OK"):
        return False
    zo = zlib.compressobj(6, zlib.DEFLATED, -15)
    text = b"".join(b"%s NOOP\r\n" % os.urandom(6).hex().encode()
                    for _ in range(NOOPS)) + b"n NOOP\r\n"
    s.sendall(zo.compress(text) + zo.flush(zlib.Z_SYNC_FLUSH))
    return until_tagged(s, b"n", zlib.decompressobj(-15)).startswith("OK")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default="./mailrepd")
    ap.add_argument("--conns", type=int, default=400)
    ap.add_argument("--old", action="store_true",
                    help="the binary has no --max-compress-sessions")
    ap.add_argument("--max-compress-sessions", type=int)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="zslots")
    data = tmp + "/data"
    users = ["u%d" % i for i in range((a.conns + PER_USER - 1) // PER_USER)]
    for u in users:
        subprocess.run([a.binary, "user", "add", u, "--data", data],
                       input=(PASSWORD + "\n").encode(), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    imap = free_port()
    cap = a.max_compress_sessions
    proc = serve_capped(a.binary, data, ["--imap", "127.0.0.1:%d" % imap],
                        a.conns, "max-compress-sessions", cap, a.old)
    try:
        wait_port(imap)
        socks = [logged_in(imap, users[i // PER_USER])
                 for i in range(a.conns)]
        time.sleep(1)
        before = rss_kib(proc.pid)
        got = sum(1 for s in socks if compress(s))
        time.sleep(1)
        after = rss_kib(proc.pid)
        print("%d logged-in IMAP sessions, max-compress-sessions %s: %d "
              "compress; RSS %d -> %d KiB (+%.1f MiB, %.1f KiB per "
              "compressing session)"
              % (a.conns, "old binary" if a.old else
                 cap if cap is not None else "default", got, before,
                 after, (after - before) / 1024.0,
                 (after - before) / max(got, 1)))
        for s in socks:
            s.close()
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
