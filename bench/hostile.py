#!/usr/bin/env python3
"""Hostile clients: does any of them stall the loop or blow the memory?

    bench/hostile.py [--mailrepd PATH] [--messages N] [--blobs N]
                     [--copy N] [--big MIB] [--only ROW,...]

Runs each row of the table in issue 17 (smaller where a row would take
minutes to set up), and a message of --big MiB delivered, appended,
fetched and expunged, against one `mailrepd serve` on 127.0.0.1, in a new
temporary data directory.  During each row a client logged in as its
own user, in its own process, sends NOOP every 20 ms; its latency counts
from when each NOOP was due, so a stall shows in every NOOP that should
have run during it.  Before each row the server's peak RSS is reset
(/proc/PID/clear_refs), and read after it (VmHWM).

Printed per row: NOOP p50/p99/max in ms, the server's peak RSS in MiB,
the seconds the loop's thread ran and waited for a CPU during the row
(a loaded machine's stalls are the second), the longest loop iteration
the server logged (loop.slow: over LOOP_SLOW_MS) with the CPU time it
took, and the most CPU time one iteration took (over LOOP_SLOW_CPU_MS)
with the part of the loop that took most of it (the loop's own doing,
whatever the load), the load average as the row began, and what the row's own client saw.  Figures only, never
pass or fail.
Standard library only; every socket is on the loopback; each row is
bounded in time (--seconds, default 5, for the flooding rows).
"""
import argparse
import base64
import multiprocessing
import os
import random
import re
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time

from login_burst import free_port, pct

HOST = "127.0.0.1"
PASSWORD = "bench-pass"
USERS = ["probe", "alice", "lister", "flood", "hoard", "big"]
NOOP_EVERY = 0.02
IO_TIMEOUT = 120.0
PARTIAL_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"


def add_blobs(data, user, n):
    """Puts n one-message blobs in user's INBOX straight into SQLite, on
    a stopped store (delivering that many takes many minutes).  Rows
    only, no chunks: nothing may read them, and `mailrepd check` would
    fail; they make a big store for the loop's bounds to be looked at."""
    db = sqlite3.connect(os.path.join(str(data), "mailrepd.db"),
                         isolation_level=None)
    try:
        db.execute("PRAGMA cache_size = -131072")
        db.execute("BEGIN")
        first = db.execute("SELECT coalesce(max(id), 0) FROM blob"
                           ).fetchone()[0] + 1
        (box,) = db.execute("SELECT m.id FROM mailbox m JOIN user u ON "
                            "u.id = m.user_id WHERE u.name = ? AND "
                            "m.name = 'INBOX'", (user,)).fetchone()
        count = ("WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 "
                 "FROM c WHERE i < %d) " % (n - 1))
        # 32-byte GUIDs no real message has, in order: SQLite appends.
        db.execute("INSERT INTO blob (id, guid, size) " + count +
                   "SELECT ? + i, CAST(printf('%032d', i) AS BLOB), 0 "
                   "FROM c", (first,))
        db.execute("INSERT INTO message (mailbox_id, uid, blob_id, modseq, "
                   "internaldate) " + count + "SELECT ?, i + 1, ? + i, 1, 0 "
                   "FROM c", (box, first))
        # Counted here: the store keeps its counters without triggers.
        db.execute("UPDATE mailbox SET uidnext = ?, highestmodseq = 1, "
                   "nmessages = (SELECT count(*) FROM message WHERE "
                   "mailbox_id = ?2), nunseen = (SELECT count(*) FROM "
                   "message WHERE mailbox_id = ?2 AND flags & 1 = 0) "
                   "WHERE id = ?2", (n + 1, box))
        db.execute("COMMIT")
    finally:
        db.close()


class Server:
    """One mailrepd serve with LMTP, IMAP and IMAPS on loopback."""

    def __init__(self, binary, tmp, blobs):
        self.binary = binary
        self.data = os.path.join(tmp, "data")
        self.lmtp, self.imap, self.imaps = free_port(), free_port(), \
            free_port()
        for u in USERS:
            subprocess.run([binary, "user", "add", u, "--data", self.data],
                           input=(PASSWORD + "\n").encode(), check=True,
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        if blobs:
            add_blobs(self.data, "hoard", blobs)
        self.log = open(self.data + ".log", "wb")
        self.proc = subprocess.Popen(
            [binary, "serve", "--data", self.data, "--name", "bench.test",
             "--lmtp", "%s:%d" % (HOST, self.lmtp),
             "--imap", "%s:%d" % (HOST, self.imap),
             "--imaps", "%s:%d" % (HOST, self.imaps)],
            stdout=self.log, stderr=self.log)
        end = time.monotonic() + 20
        while True:
            try:
                socket.create_connection((HOST, self.imap), 1).close()
                break
            except OSError:
                if time.monotonic() > end:
                    sys.exit("mailrepd never listened")
                time.sleep(0.05)

    def reset_peak(self):
        with open("/proc/%d/clear_refs" % self.proc.pid, "w") as f:
            f.write("5")

    def peak_mib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
        return float("nan")

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def loop_times(self):
        """(seconds on a CPU, seconds waiting for one) of the loop's
        thread so far (/proc/PID/task/PID/schedstat): a probe's stall
        the loop spent waiting for a CPU is the machine's, not the
        server's."""
        with open("/proc/%d/task/%d/schedstat" % (self.proc.pid,
                                                  self.proc.pid)) as f:
            ran, waited = f.read().split()[:2]
        return int(ran) / 1e9, int(waited) / 1e9

    def log_size(self):
        return os.path.getsize(self.data + ".log")

    def worst_iteration(self, since):
        """The loop's worst iterations logged (loop.slow) after byte
        `since` of its log: "wall ms (its CPU ms) / max CPU ms in part":
        the longest iteration past LOOP_SLOW_MS, and the one that took
        the most CPU time past LOOP_SLOW_CPU_MS with the part of the
        loop that took most of it; "-" for either when none passed."""
        with open(self.data + ".log", "rb") as f:
            f.seek(since)
            text = f.read().decode("utf-8", "replace")
        lines = [(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0),
                  m.group(4) or "-") for m in re.finditer(
                      r"loop\.slow ms=(\d+) cpu_ms=(\d+) iterations=\d+"
                      r"(?: max_cpu_ms=(\d+) in=(\S+))?", text)]
        wall = max(((w, c) for w, c, _, _ in lines if w >= 100),
                   default=None)
        cpu = max(((c, p) for _, _, c, p in lines if c >= 20), default=None)
        return "%s / %s" % ("%d (%d)" % wall if wall else "-",
                            "%d %s" % cpu if cpu else "-")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        self.log.close()


class IMAP:
    """A blocking IMAP client for set-up and a row's own commands."""

    def __init__(self, port, user=None, tls=False):
        self.sock = socket.create_connection((HOST, port), IO_TIMEOUT)
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self.sock = ctx.wrap_socket(self.sock)
        self.buf = b""
        self.n = 0
        self.readline()
        if user:
            self.cmd("LOGIN %s %s" % (user, PASSWORD))

    def readline(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise OSError("closed; have %r" % self.buf[-200:])
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def cmd(self, text, ok=True):
        self.n += 1
        tag = b"c%d" % self.n
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        while True:
            line = self.readline()
            if line.startswith(tag + b" "):
                if ok and not line.startswith(tag + b" OK"):
                    raise OSError("%s -> %r" % (text[:40], line))
                return line[len(tag) + 1:].decode("latin-1")

    def close(self):
        self.sock.close()


def probe(port, stop, out):
    """Logs in as probe, then NOOPs every 20 ms until stop is set."""
    c = IMAP(port, "probe")
    out.put("ready")
    lat = []
    due = time.monotonic()
    while not stop.is_set():
        now = time.monotonic()
        if now < due:
            time.sleep(due - now)
        c.cmd("NOOP")
        lat.append(time.monotonic() - due)
        due += NOOP_EVERY
        while due < time.monotonic() - NOOP_EVERY:  # slots missed
            lat.append(time.monotonic() - due)
            due += NOOP_EVERY
    c.close()
    out.put(lat)


def lmtp_greeted(srv):
    """An LMTP connection past LHLO, and its reading file."""
    s = socket.create_connection((HOST, srv.lmtp), IO_TIMEOUT)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"LHLO bench\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    return s, f


def deliver(srv, user, count, size=0):
    """count messages to user, up to 1000 recipients a transaction."""
    body = b"Subject: bench\r\n\r\n" + b"x" * size + b"\r\n.\r\n"
    s, f = lmtp_greeted(srv)
    while count > 0:
        n = min(count, 1000)
        s.sendall(b"MAIL FROM:<b@remote.test>\r\n" +
                  b"RCPT TO:<%s@bench.test>\r\n" % user.encode() * n +
                  b"DATA\r\n")
        for _ in range(n + 2):
            f.readline()
        s.sendall(body)
        for _ in range(n):
            f.readline()
        count -= n
    s.close()


def flood(port, n, payload, seconds, login=None):
    """n connections that send payload again and again, never reading."""
    socks = []
    for _ in range(n):
        try:
            c = IMAP(port, login) if login else None
            s = c.sock if c else socket.create_connection((HOST, port), 10)
            s.setblocking(False)
            socks.append(s)
        except OSError:
            break
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for s in socks:
            try:
                s.send(payload)
            except (BlockingIOError, OSError):
                pass
        time.sleep(0.05)
    for s in socks:
        s.close()
    return "%d connections" % len(socks)


# --- the rows ---------------------------------------------------------------

def whole_inbox(srv, a, command):
    """One command over alice's whole INBOX; says how long it took."""
    c = IMAP(srv.imap, "alice")
    c.cmd("CREATE dbl", ok=False)
    c.cmd("SELECT INBOX")
    t = time.monotonic()
    got = c.cmd(command, ok=False)
    c.close()
    return "%d messages in %.2f s: %s" % (a.messages, time.monotonic() - t,
                                          got[:40])


def row_store(srv, a):
    return whole_inbox(srv, a, "STORE 1:* +FLAGS (\\Flagged)")


def row_copy(srv, a):
    return whole_inbox(srv, a, "COPY 1:%d dbl" % a.copy)


def moved_box(srv, a):
    """--copy of alice's messages in a mailbox of their own, copied before
    the probe starts: the row moves them out of it, so that INBOX keeps
    its messages for the rows after it."""
    c = IMAP(srv.imap, "alice")
    c.cmd("CREATE mv", ok=False)
    c.cmd("CREATE dbl", ok=False)
    c.cmd("SELECT INBOX")
    c.cmd("COPY 1:%d mv" % a.copy)
    c.cmd("SELECT mv")
    return c


def row_move(srv, a, c):
    t = time.monotonic()
    got = c.cmd("MOVE 1:%d dbl" % a.copy, ok=False)
    c.close()
    return "%d messages in %.2f s: %s" % (a.copy, time.monotonic() - t,
                                          got[:40])


row_move.setup = moved_box


def row_views(srv, a):
    """40 sessions keep alice's INBOX selected: the memory each one's view
    of the mailbox (its sequence numbers) costs."""
    before = srv.rss_kib()
    t = time.monotonic()
    cs = []
    for _ in range(40):
        c = IMAP(srv.imap, "alice")
        c.cmd("SELECT INBOX")
        cs.append(c)
    took = time.monotonic() - t
    grew = srv.rss_kib() - before
    for c in cs:
        c.close()
    return "%d messages: RSS +%.0f KiB a session; 40 SELECTs in %.1f s" % (
        a.messages, grew / 40.0, took)


def selected_inbox(srv, a):
    """alice's INBOX selected before the probe starts: SELECT loads the
    whole mailbox's UIDs in one go, a stall of its own."""
    c = IMAP(srv.imap, "alice")
    c.cmd("SELECT INBOX")
    return c


def row_fetch_nothing(srv, a, c):
    """FETCH 1:* with a CHANGEDSINCE no message passes: nothing written,
    so only the step's time ends a step."""
    t = time.monotonic()
    for _ in range(3):
        got = c.cmd("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % (2 ** 62))
    c.close()
    return "%d messages, 3 times in %.2f s: %s" % (
        a.messages, time.monotonic() - t, got[:30])


row_fetch_nothing.setup = selected_inbox


def row_search(srv, a):
    deliver(srv, "lister", 1, 5 * 1024 * 1024)
    c = IMAP(srv.imap, "lister")
    c.cmd("SELECT INBOX")
    keys = " ".join("NOT BODY k%03d" % i for i in range(16))
    t = time.monotonic()
    got = c.cmd("SEARCH " + keys, ok=False)
    c.close()
    return "16 keys, 5 MB message, %.2f s: %s" % (time.monotonic() - t,
                                                    got[:40])


def long_list(srv, tail):
    """One LIST of 32 long patterns, each ending in `tail` % i, over
    ~1,000 mailboxes with long names (made by the first row that needs
    them)."""
    c = IMAP(srv.imap, "lister")
    name = "m" * 200
    for i in range(0, 990, 10):
        c.cmd('CREATE "%s%03d/a/b/c/d/e/f/g/h/i"' % (name, i), ok=False)
    pats = " ".join(('"*%s*%%*' + tail + '"') % ("m" * 100, i)
                    for i in range(32))
    t = time.monotonic()
    got = c.cmd('LIST "" (%s)' % pats, ok=False)
    c.close()
    return "32 patterns over ~1000 mailboxes, %.2f s: %s" % (
        time.monotonic() - t, got[:20])


def row_list(srv, a):
    return long_list(srv, "%d*")


def row_list_none(srv, a):
    return long_list(srv, "%dx*")


def row_lock(srv, a):
    con = sqlite3.connect(os.path.join(srv.data, "mailrepd.db"),
                          timeout=10, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    c = IMAP(srv.imap, "alice")
    c.cmd("SELECT INBOX")
    t = time.monotonic()
    done = []
    th = threading.Thread(target=lambda: done.append(
        c.cmd("STORE 1 -FLAGS (\\Flagged)")))
    th.start()
    time.sleep(3)
    con.execute("COMMIT")
    th.join()
    c.close()
    return "lock held 3 s; the STORE waited %.2f s" % (time.monotonic() - t)


def row_delete(srv, a):
    c = IMAP(srv.imap, "lister")
    c.cmd("CREATE small", ok=False)
    for i in range(20):
        msg = b"Subject: %d\r\n\r\nhi\r\n" % i
        c.sock.sendall(b"a%d APPEND small {%d+}\r\n%s\r\n" % (i, len(msg),
                                                               msg))
        while not c.readline().startswith(b"a%d " % i):
            pass
    t = time.monotonic()
    got = c.cmd("DELETE small", ok=False)
    c.close()
    return "%d other blobs, %.2f s: %s" % (a.blobs, time.monotonic() - t,
                                           got[:40])


def row_capability(srv, a):
    return flood(srv.imap, 500, b"a CAPABILITY\r\n" * 64, a.seconds)


def row_list_flood(srv, a):
    return flood(srv.imap, 60, b'a LIST "" *\r\n' * 16, a.seconds,
                 login="lister")


def row_idle(srv, a):
    socks = []
    for _ in range(512):
        try:
            socks.append(socket.create_connection((HOST, srv.imap), 10))
        except OSError:
            break
    for _ in range(a.seconds):
        for s in socks:
            try:
                s.send(b"a")
            except OSError:
                pass
        time.sleep(1)
    res = []
    try:
        l = socket.create_connection((HOST, srv.lmtp), 10)
        res.append("LMTP: " + l.recv(100).decode()[:3])
        l.close()
    except OSError as e:
        res.append("LMTP: %s" % e)
    for s in socks:
        s.close()
    return "%d slow connections; %s" % (len(socks), ", ".join(res))


def row_tls(srv, a):
    socks = []
    for _ in range(80):
        s = socket.create_connection((HOST, srv.imaps), 10)
        s.sendall(PARTIAL_HELLO)
        socks.append(s)
    t = time.monotonic()
    try:
        c = IMAP(srv.imaps, "alice", tls=True)
        c.close()
        got = "IMAPS login in %.2f s" % (time.monotonic() - t)
    except OSError as e:
        got = "IMAPS failed: %s" % e
    time.sleep(1)
    for s in socks:
        s.close()
    return "80 stalled handshakes; " + got


def big_message(size):
    """A message of about `size` bytes: a text part of random words (for
    the full-text index) and a base64 attachment, half each."""
    rnd = random.Random(1)
    words = [b"w%05d" % rnd.randrange(100000) for _ in range(5000)]
    text = b"".join(b" ".join(rnd.choice(words) for _ in range(12)) +
                    b"\r\n" for _ in range(2000))
    b64 = base64.encodebytes(os.urandom(57 * 20000)).replace(b"\n",
                                                              b"\r\n")
    head = (b"From: a@remote.test\r\nTo: big@bench.test\r\n"
            b"Subject: big\r\nMIME-Version: 1.0\r\nContent-Type: "
            b"multipart/mixed; boundary=BB\r\n\r\n--BB\r\n"
            b"Content-Type: text/plain\r\n\r\n")
    mid = (b"\r\n--BB\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n")
    return (head + text * (size // 2 // len(text) + 1) + mid +
            b64 * (size // 2 // len(b64) + 1) + b"\r\n--BB--\r\n")


def row_big_deliver(srv, a):
    msg = big_message(a.big << 20)
    s, f = lmtp_greeted(srv)
    s.sendall(b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<big@bench.test>\r\n"
              b"DATA\r\n")
    for _ in range(3):
        f.readline()
    t = time.monotonic()
    s.sendall(msg.replace(b"\r\n.", b"\r\n..") + b".\r\n")
    got = f.readline().decode()
    s.close()
    return "%.1f MB in %.2f s: %s" % (len(msg) / 1e6, time.monotonic() - t,
                                      got[:12])


def row_big_append(srv, a):
    msg = big_message(a.big << 20).replace(b"Subject: big",
                                           b"Subject: bi2")
    c = IMAP(srv.imap, "big")
    t = time.monotonic()
    c.sock.sendall(b"a APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
    while True:
        line = c.readline()
        if line.startswith(b"a "):
            break
    c.close()
    return "%.1f MB in %.2f s: %s" % (len(msg) / 1e6, time.monotonic() - t,
                                      line[2:14].decode())


def row_big_fetch(srv, a):
    c = IMAP(srv.imap, "big")
    c.cmd("SELECT INBOX")
    t = time.monotonic()
    got = [c.cmd("FETCH 1 (%s)" % what, ok=False)[:2]
           for what in ("BODY[]", "BODY[1]", "BINARY[2]")]
    c.close()
    return "BODY[], BODY[1], BINARY[2] in %.2f s: %s" % (
        time.monotonic() - t, " ".join(got))


def big_bytes_left(srv):
    """Whether the store still holds rows of a big message's bytes: a
    blob over 1 MiB, or pieces whose blob row went first (dropped in
    steps, schema 25)."""
    con = sqlite3.connect("file:%s?mode=ro" % os.path.join(
        srv.data, "mailrepd.db"), uri=True, timeout=10)
    try:
        big = con.execute("SELECT count(*) FROM blob WHERE size > 1048576"
                          ).fetchone()[0]
        loose = con.execute("SELECT count(*) FROM piece p WHERE NOT EXISTS "
                            "(SELECT 1 FROM blob b WHERE b.id = p.id >> 24)"
                            ).fetchone()[0]
    finally:
        con.close()
    return big + loose > 0


def row_big_expunge(srv, a):
    """The EXPUNGE, then until the store no longer holds their bytes
    (the index forgets their words, then they go, in later steps)."""
    c = IMAP(srv.imap, "big")
    c.cmd("SELECT INBOX")
    t = time.monotonic()
    c.cmd("STORE 1:* +FLAGS (\\Deleted)", ok=False)
    got = c.cmd("EXPUNGE", ok=False)
    c.close()
    replied = time.monotonic() - t
    while big_bytes_left(srv) and time.monotonic() - t < 120:
        time.sleep(0.05)
    return "%.2f s, bytes gone in %.2f s: %s" % (
        replied, time.monotonic() - t, got[:20])


ROWS = [
    ("store", "STORE 1:* +FLAGS", row_store),
    ("copy", "COPY 1:N dbl (--copy)", row_copy),
    ("move", "MOVE 1:N dbl (--copy)", row_move),
    ("views", "40 sessions SELECT INBOX", row_views),
    ("fetchnothing", "FETCH 1:* (FLAGS) (CHANGEDSINCE highest)",
     row_fetch_nothing),
    ("search", "SEARCH 16 NOT BODY (at most 16 now), 5 MB", row_search),
    ("list", "LIST 32 long patterns, 1000 mailboxes", row_list),
    ("listnone", "LIST 32 long patterns matching none, 1000 mailboxes",
     row_list_none),
    ("lock", "another process holds the write lock 3 s", row_lock),
    ("delete", "DELETE of a small mailbox beside many blobs", row_delete),
    ("capability", "500 unauthenticated pipelining CAPABILITY",
     row_capability),
    ("listflood", "60 logged-in pipelining LIST \"\" *", row_list_flood),
    ("idle", "512 idle / 1-byte-a-second connections", row_idle),
    ("tls", "80 half-done TLS handshakes", row_tls),
    ("bigdeliver", "LMTP delivery of one --big MiB message",
     row_big_deliver),
    ("bigappend", "APPEND of one --big MiB message", row_big_append),
    ("bigfetch", "FETCH of both whole and by part", row_big_fetch),
    ("bigexpunge", "EXPUNGE of both", row_big_expunge),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mailrepd", default=os.environ.get("MAILREPD",
                                                         "./mailrepd"))
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--copy", type=int, default=20000,
                    help="messages the copy and move rows take")
    ap.add_argument("--blobs", type=int, default=1000000,
                    help="one-message blobs of another user (delete row)")
    ap.add_argument("--big", type=int, default=45,
                    help="MiB of the big-message rows' messages")
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    only = set(a.only.split(",")) if a.only else None
    tmp = tempfile.mkdtemp(prefix="hostile")
    srv = Server(os.path.abspath(a.mailrepd), tmp,
                 a.blobs if not only or "delete" in only else 0)
    try:
        t = time.monotonic()
        deliver(srv, "alice", a.messages)
        print("set-up: %d messages in %.1f s" % (a.messages,
                                                  time.monotonic() - t))
        print("| row | probe NOOP p50 / p99 / max (ms) | peak RSS (MiB) "
              "| loop on a CPU / waiting for one (s) | longest iteration "
              "ms (its CPU ms) / most CPU ms in one, where | load average "
              "| what the row saw |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for key, title, fn in ROWS:
            if only and key not in only:
                continue
            setup = getattr(fn, "setup", None)
            args = (setup(srv, a),) if setup else ()
            stop = multiprocessing.Event()
            out = multiprocessing.Queue()
            p = multiprocessing.Process(target=probe,
                                        args=(srv.imap, stop, out))
            p.start()
            out.get(timeout=60)
            srv.reset_peak()
            ran, waited = srv.loop_times()
            load = os.getloadavg()[0]
            logged = srv.log_size()
            try:
                what = fn(srv, a, *args)
            except OSError as e:
                what = "error: %s" % e
            time.sleep(0.2)
            stop.set()
            lat = out.get(timeout=120)
            p.join()
            peak = srv.peak_mib()
            ran2, waited2 = (srv.loop_times() if srv.alive() else
                             (ran, waited))
            time.sleep(1.1)		# the loop's report of its second
            print("| %s | %.1f / %.1f / %.1f | %.1f | %.2f / %.2f | %s "
                  "| %.1f | %s%s |" % (
                      title, pct(lat, 50) * 1e3, pct(lat, 99) * 1e3,
                      max(lat) * 1e3, peak, ran2 - ran, waited2 - waited,
                      srv.worst_iteration(logged), load, what,
                      "" if srv.alive() else " — SERVER DIED"), flush=True)
            if not srv.alive():
                break
    finally:
        srv.stop()
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
