#!/usr/bin/env python3
"""bench/bigbox.py — one big INBOX: the IMAP questions a client asks of it.

Delivers N messages (~3.4 KiB of English-like text each, Subject
"topic K", From userK@, 1% with "needleword" in the body) over LMTP on 4
connections to mailrepd (release build, a temporary data directory) and,
with --dovecot, to a throw-away Dovecot (bench/dovecot.sh) in the same
run; then one IMAP session each times the rows below and prints a
Markdown table (ms unless noted) with the ratio mailrepd / Dovecot.
Before timing, every message is marked \\Seen but 1 in 100.  Figures
only, never pass/fail.  Standard library only; 127.0.0.1 only.

With mailrepd's full-text index (the default), the table also says
how long the index took to catch up after the last delivery and how
many bytes it holds; --no-index runs mailrepd with --search-index no,
the "before" of the index's rows.

With --store DIR, mailrepd's store is built once in DIR by `mailrepd
import` of the same messages (an mbox; much faster than LMTP, so the
delivery rows are left out) and kept; a later run with the same --store
and --messages reuses it, so that two builds (before and after a
change) answer the same store.

usage: bench/bigbox.py [--messages N] [--dovecot] [--mailrepd PATH]
                       [--no-index] [--store DIR]
"""
import argparse
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proctree  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PASSWORD = "bench-pass"
WORDS = ("the of and to in is that it was for on are as with his they at "
         "be this from have or by one had not but what all were when we "
         "there can an your which their said if do will each about how up "
         "out them then she many some so these would other into has more "
         "her two like him see time could no make than first been its who "
         "now people my made over did down only way find use may water long "
         "little very after words called just where most know").split()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def message(i, rng):
    words = [rng.choice(WORDS) for _ in range(560)]
    if i % 100 == 7:
        words[rng.randrange(len(words))] = "needleword"
    words[rng.randrange(len(words))] = "zebra%d" % i
    lines, line = [], []
    for w in words:
        line.append(w)
        if len(line) == 12:
            lines.append(" ".join(line))
            line = []
    lines.append(" ".join(line))
    return ("From: user%d@remote.test\r\nTo: fetch@bench.test\r\n"
            "Subject: topic %d\r\nMessage-ID: <%d@bench.test>\r\n"
            "Date: Mon, 7 Dec 2026 05:00:00 +0000\r\n\r\n%s\r\n" % (
                i % 1000, i % 100, i, "\r\n".join(lines))).encode()


def lmtp_deliver(port, user, msgs):
    """Delivers msgs (a list of bytes) on one LMTP connection."""
    s = socket.create_connection(("127.0.0.1", port))
    f = s.makefile("rb")

    def reply():
        while True:
            line = f.readline()
            if not line:
                raise RuntimeError("LMTP closed")
            if line[3:4] != b"-":
                return line

    reply()
    s.sendall(b"LHLO bench\r\n")
    reply()
    for m in msgs:
        s.sendall(b"MAIL FROM:<s@remote.test>\r\nRCPT TO:<%s@bench.test>"
                  b"\r\nDATA\r\n" % user.encode())
        for _ in range(3):
            r = reply()
        if not r.startswith(b"354"):
            raise RuntimeError("LMTP: %r" % r)
        s.sendall(m.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        r = reply()
        if not r.startswith(b"250"):
            raise RuntimeError("LMTP: %r" % r)
    s.sendall(b"QUIT\r\n")
    s.close()


def deliver_all(port, user, n, conns=4):
    rng = random.Random(1)
    msgs = [message(i, rng) for i in range(n)]
    t0 = time.monotonic()
    threads = [threading.Thread(target=lmtp_deliver,
                                args=(port, user, msgs[k::conns]))
               for k in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return n / (time.monotonic() - t0)


def cpu_ns(pid):
    """The CPU time pid has used, in ns (/proc/PID/schedstat), or 0."""
    try:
        with open("/proc/%d/schedstat" % pid) as f:
            return int(f.read().split()[0])
    except (OSError, TypeError, ValueError):
        return 0


class IMAP:
    """A raw IMAP client that times one command to its tagged reply, and
    the server's CPU time for it when its pid is known (self.cpu_ms)."""

    def __init__(self, port, pid=None):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")
        self.n = 0
        self.pid = pid
        self.cpu_ms = None
        self.f.readline()

    def cmd(self, line):
        self.n += 1
        tag = b"b%d" % self.n
        c0 = cpu_ns(self.pid) if self.pid else None
        t0 = time.perf_counter()
        self.s.sendall(tag + b" " + line.encode() + b"\r\n")
        lines = []
        while True:
            got = self.f.readline()
            if not got:
                raise RuntimeError("IMAP closed")
            if got.startswith(tag + b" "):
                ms = (time.perf_counter() - t0) * 1000
                if c0 is not None:
                    self.cpu_ms = (cpu_ns(self.pid) - c0) / 1e6
                if not got.startswith(tag + b" OK"):
                    raise RuntimeError("%s: %r" % (line, got))
                return ms, lines
            m = re.search(rb"\{(\d+)\}\r\n$", got)
            if m:
                self.f.read(int(m.group(1)))
            lines.append(got)

    def close(self):
        self.s.close()


def login(port, user, pid=None):
    c = IMAP(port, pid)
    c.cmd("LOGIN %s %s" % (user, PASSWORD))
    return c


def count_hits(lines):
    return sum(len(x.split()) - 2 for x in lines if x.startswith(b"* SEARCH"))


def imap_rows(port, user, n, pid=None):
    """The timed rows, in order: (name, ms, note, server CPU ms or None:
    with pid, the single server's, steadier than ms on a busy machine)."""
    rows = []
    c = login(port, user, pid)
    ms, _ = c.cmd("SELECT INBOX")
    rows.append(("SELECT (first after the deliveries)", ms, "", c.cpu_ms))
    ms, _ = c.cmd("STORE 1:* +FLAGS.SILENT (\\Seen)")
    rows.append(("`STORE 1:* +FLAGS.SILENT (\\Seen)`", ms, "", c.cpu_ms))
    c.cmd("STORE 1:*/100 -FLAGS.SILENT (\\Seen)".replace(
        "1:*/100", ",".join(str(k) for k in range(1, n + 1, 100))))
    c.close()
    t0 = time.perf_counter()
    c = login(port, user, pid)
    ms, _ = c.cmd("SELECT INBOX")
    rows.append(("SELECT again (new session; login included)",
                 (time.perf_counter() - t0) * 1000, "", None))
    ms, _ = c.cmd("STATUS INBOX (MESSAGES UNSEEN SIZE)")
    rows.append(("`STATUS INBOX (MESSAGES UNSEEN SIZE)`", ms, "", c.cpu_ms))
    for name, cmd in (
            ("`SEARCH UNSEEN`", "SEARCH UNSEEN"),
            ("`UID FETCH 1:* (FLAGS)`", "UID FETCH 1:* (FLAGS)"),
            ("`UID SEARCH SUBJECT \"topic 42\"`",
             "UID SEARCH SUBJECT \"topic 42\""),
            ("`UID SEARCH FROM user123@`", "UID SEARCH FROM user123@"),
            ("`UID SEARCH BODY needleword`", "UID SEARCH BODY needleword"),
            ("`UID SEARCH TEXT zebra%d`" % (n // 2),
             "UID SEARCH TEXT zebra%d" % (n // 2)),
            ("`UID SEARCH BODY \"words called\"`",
             "UID SEARCH BODY \"words called\""),
            ("`UID SEARCH BODY the` (in every message)",
             "UID SEARCH BODY the"),
            ("`UID SEARCH BODY ne` (2 characters: read)",
             "UID SEARCH BODY ne")):
        ms, lines = c.cmd(cmd)
        note = "%d hits" % count_hits(lines) if "SEARCH" in cmd else ""
        rows.append((name, ms, note, c.cpu_ms))
    c.close()
    return rows


def wait_port(port):
    """Waits (up to 10 s) until 127.0.0.1:port accepts."""
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return
        except OSError:
            time.sleep(0.05)


def du(path):
    return sum(os.path.getsize(os.path.join(d, f))
               for d, _, fs in os.walk(path) for f in fs)


def index_status(binary, data):
    """`mailrepd index status` as a dict."""
    out = subprocess.run([binary, "index", "status", "--data", data],
                         check=True, capture_output=True, text=True).stdout
    return dict(l.split(": ", 1) for l in out.splitlines())


def wait_indexed(binary, data):
    """Seconds until the index has every blob (it follows delivery)."""
    t0 = time.monotonic()
    while index_status(binary, data)["pending"] != "0":
        time.sleep(0.2)
    return time.monotonic() - t0


def import_store(binary, data, n):
    """Builds the store in data by `mailrepd import` of an mbox."""
    rng = random.Random(1)
    mbox = data + ".mbox"
    with open(mbox, "wb") as f:
        for i in range(n):
            m = message(i, rng).replace(b"\r\n", b"\n")
            f.write(b"From bench@remote.test Mon Dec  7 05:00:00 2026\n")
            f.write(re.sub(rb"(?m)^(>*From )", rb">\1", m) + b"\n")
    subprocess.run([binary, "user", "add", "fetch", "--data", data],
                   input=PASSWORD + "\n", text=True, check=True,
                   capture_output=True)
    subprocess.run([binary, "import", "fetch", "--mbox", mbox, "--data",
                    data], check=True, capture_output=True)
    os.unlink(mbox)
    subprocess.run([binary, "index", "rebuild", "--data", data],
                   check=True, capture_output=True)
    with open(os.path.join(data, "bigbox.messages"), "w") as f:
        f.write("%d\n" % n)


def stored_count(data):
    try:
        with open(os.path.join(data, "bigbox.messages")) as f:
            return int(f.read())
    except OSError:
        return None


def run_mailrepd(binary, tmp, n, no_index, store=None):
    data = store or os.path.join(tmp, "mailrepd")
    if store and stored_count(store) not in (None, n):
        sys.exit("bigbox: %s holds another number of messages" % store)
    if store and stored_count(store) is None:
        import_store(binary, data, n)
    elif not store:
        subprocess.run([binary, "user", "add", "fetch", "--data", data],
                       input=PASSWORD + "\n", text=True, check=True,
                       capture_output=True)
    lmtp, imap = free_port(), free_port()
    log = open(os.path.join(tmp, "mailrepd.log"), "w")
    p = subprocess.Popen([binary, "serve", "--data", data, "--lmtp",
                          "127.0.0.1:%d" % lmtp, "--imap",
                          "127.0.0.1:%d" % imap, "--max-messages",
                          str(max(n, 1000000)), "--search-index",
                          "no" if no_index else "yes"], stderr=log)
    wait_port(imap)
    try:
        cpu = proctree.cpu_seconds([p.pid])["cpu_s"]
        rate = 0 if store else deliver_all(lmtp, "fetch", n)
        lag = None if no_index else wait_indexed(binary, data)
        cpu = proctree.cpu_seconds([p.pid])["cpu_s"] - cpu
        rows = imap_rows(imap, "fetch", n, p.pid)
        rss = proctree.measure([p.pid])["rss_kib"]
    finally:
        p.terminate()
        p.wait()
    fts = int(index_status(binary, data)["bytes"])
    return rate, rows, rss, du(data), lag, fts, cpu


def run_dovecot(tmp, n):
    d = os.path.join(tmp, "dovecot")
    out = subprocess.run([os.path.join(HERE, "dovecot.sh"), "start", d],
                         check=True, capture_output=True, text=True).stdout
    ports = dict(re.findall(r"(\w+)=(\d+)", out))
    try:
        rate = deliver_all(int(ports["lmtp_port"]), "fetch", n)
        rows = imap_rows(int(ports["imap_port"]), "fetch", n)
        rss = proctree.measure([int(ports["pid"])])["rss_kib"]
    finally:
        subprocess.run([os.path.join(HERE, "dovecot.sh"), "stop", d],
                       capture_output=True)
    return rate, rows, rss, du(d)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--dovecot", action="store_true")
    ap.add_argument("--mailrepd", default=os.path.join(HERE, "..",
                                                        "mailrepd"))
    ap.add_argument("--no-index", action="store_true")
    ap.add_argument("--store")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bigbox.")
    try:
        mr = run_mailrepd(a.mailrepd, tmp, a.messages, a.no_index,
                          a.store and os.path.abspath(a.store))
        dc = run_dovecot(tmp, a.messages) if a.dovecot else None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("| operation at %d messages | mailrepd | Dovecot | "
          "mailrepd / Dovecot time | mailrepd CPU | note |" % a.messages)
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    print("| delivering (msg/s, 4 connections) | %.0f | %s | | | |" % (
        mr[0], "%.0f" % dc[0] if dc else "-"))
    print("| server CPU per message delivered (ms; indexing included) "
          "| %.3f | - | | | |" % (mr[6] * 1000 / a.messages))
    for i, (name, ms, note, cpu) in enumerate(mr[1]):
        other = dc[1][i][1] if dc else None
        print("| %s | %.1f | %s | %s | %s | %s |" % (
            name, ms, "%.1f" % other if dc else "-",
            "%.2f" % (ms / other) if dc and other > 0 else "",
            "%.1f" % cpu if cpu is not None else "", note))
    print("| server RSS after the run (MiB) | %.1f | %s | | | |" % (
        mr[2] / 1024, "%.1f" % (dc[2] / 1024) if dc else "-"))
    print("| data on disk (MB) | %.0f | %s | | | |" % (
        mr[3] / 1e6, "%.0f" % (dc[3] / 1e6) if dc else "-"))
    print("| data on disk per message (bytes) | %.0f | %s | | | |" % (
        mr[3] / a.messages, "%.0f" % (dc[3] / a.messages) if dc else "-"))
    print("| full-text index per message (bytes) | %.0f | - | | | |" % (
        mr[5] / a.messages))
    if mr[4] is not None:
        print("| index caught up after the last delivery (s) | %.1f | - "
              "| | | |" % mr[4])
    return 0


if __name__ == "__main__":
    sys.exit(main())
