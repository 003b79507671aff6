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

With --dovecot, both servers get the same N messages, by the same two
steps: the first N - T (T = --lmtp-tail, default 2,000) by a fast path,
the last T over LMTP on 4 connections (the delivery row), so that the
first SELECT follows deliveries in both.  The fast path: mailrepd
imports an mbox (`mailrepd import`, then `mailrepd index rebuild`);
Dovecot gets its maildir files written directly into Maildir/cur (LF
line ends and ",S=size,W=vsize:2," names, as its LMTP writes them and
a client's SELECT moves them out of new/; left in new/, every later
delivery scans them all: 2 msg/s), then
`doveadm force-resync INBOX` builds dovecot-uidlist and dovecot.index
(Dovecot's LMTP delivering 100,000 messages at ~120 msg/s would take
~15 minutes).  Both steps' times are printed.  Server CPU: mailrepd's
process, and the IMAP process serving Dovecot's session.

usage: bench/bigbox.py [--messages N] [--dovecot] [--lmtp-tail T]
                       [--mailrepd PATH] [--no-index] [--store DIR]
"""
import argparse
import os
import random
import re
import shutil
import socket
import sqlite3
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


def messages(n):
    """The bench's n messages, in order (the same in every run)."""
    rng = random.Random(1)
    for i in range(n):
        yield message(i, rng)


def deliver_all(port, user, msgs, conns=4):
    """Delivers msgs over LMTP on conns connections; the rate (msg/s)."""
    t0 = time.monotonic()
    threads = [threading.Thread(target=lmtp_deliver,
                                args=(port, user, msgs[k::conns]))
               for k in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(msgs) / (time.monotonic() - t0)


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


def login(port, user, pidfn=None):
    """A session logged in as user; pidfn() names the server process
    serving it (asked after LOGIN: Dovecot starts one then)."""
    c = IMAP(port)
    c.cmd("LOGIN %s %s" % (user, PASSWORD))
    c.pid = pidfn() if pidfn else None
    return c


def count_hits(lines):
    return sum(len(x.split()) - 2 for x in lines if x.startswith(b"* SEARCH"))


def imap_rows(port, user, n, pidfn=None):
    """The timed rows, in order: (name, ms, note, server CPU ms or None:
    with pidfn, the serving process's, steadier than ms on a busy
    machine)."""
    rows = []
    c = login(port, user, pidfn)
    ms, _ = c.cmd("SELECT INBOX")
    rows.append(("SELECT (first after the deliveries)", ms, "", c.cpu_ms))
    ms, _ = c.cmd("STORE 1:* +FLAGS.SILENT (\\Seen)")
    rows.append(("`STORE 1:* +FLAGS.SILENT (\\Seen)`", ms, "", c.cpu_ms))
    c.cmd("STORE 1:*/100 -FLAGS.SILENT (\\Seen)".replace(
        "1:*/100", ",".join(str(k) for k in range(1, n + 1, 100))))
    c.close()
    t0 = time.perf_counter()
    c = login(port, user, pidfn)
    ms, _ = c.cmd("SELECT INBOX")
    rows.append(("SELECT again (new session; login included)",
                 (time.perf_counter() - t0) * 1000, "", None))
    ms, _ = c.cmd("STATUS INBOX (MESSAGES UNSEEN SIZE)")
    rows.append(("`STATUS INBOX (MESSAGES UNSEEN SIZE)`", ms, "", c.cpu_ms))
    for name, cmd in (
            ("`SEARCH UNSEEN`", "SEARCH UNSEEN"),
            ("`UID FETCH 1:* (FLAGS)`", "UID FETCH 1:* (FLAGS)"),
            ("`FETCH 1:* (UID RFC822.SIZE FLAGS INTERNALDATE ENVELOPE)`",
             "FETCH 1:* (UID RFC822.SIZE FLAGS INTERNALDATE ENVELOPE)"),
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
    """(file bytes, disk blocks in bytes) of everything under path."""
    size = blocks = 0
    for d, _, fs in os.walk(path):
        for f in fs:
            st = os.lstat(os.path.join(d, f))
            size += st.st_size
            blocks += st.st_blocks * 512
    return size, blocks


def index_status(binary, data):
    """`mailrepd index status` as a dict."""
    out = subprocess.run([binary, "index", "status", "--data", data],
                         check=True, capture_output=True, text=True).stdout
    return dict(l.split(": ", 1) for l in out.splitlines())


def index_pending(data):
    """Whether blobs wait for the full-text index: one read of two rows.
    Not `mailrepd index status`, which counts every blob and sums the
    index's bytes: at 300,000 messages a read of minutes, whose snapshot
    keeps the WAL from being copied back, so that the server's writes
    (the indexing polled for) pause until it ends."""
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(
        data, "mailrepd.db"), uri=True)
    try:
        return db.execute("SELECT coalesce((SELECT max(id) FROM blob), 0) "
                          "> (SELECT upto FROM fts_state)").fetchone()[0]
    finally:
        db.close()


def wait_indexed(data):
    """Seconds until the index has every blob (it follows delivery)."""
    t0 = time.monotonic()
    while index_pending(data):
        time.sleep(0.2)
    return time.monotonic() - t0


def add_user(binary, data):
    subprocess.run([binary, "user", "add", "fetch", "--data", data],
                   input=PASSWORD + "\n", text=True, check=True,
                   capture_output=True)


def write_mbox(path, msgs):
    """Writes msgs (CRLF ends) as an mbox (LF ends, >From quoting)."""
    with open(path, "wb") as f:
        for m in msgs:
            f.write(b"From bench@remote.test Mon Dec  7 05:00:00 2026\n")
            f.write(re.sub(rb"(?m)^(>*From )", rb">\1",
                           m.replace(b"\r\n", b"\n")) + b"\n")


def import_mbox(binary, data, mbox):
    """Imports mbox into fetch's INBOX and rebuilds the index; seconds."""
    t0 = time.monotonic()
    subprocess.run([binary, "import", "fetch", "--mbox", mbox, "--data",
                    data], check=True, capture_output=True)
    t1 = time.monotonic()
    subprocess.run([binary, "index", "rebuild", "--data", data],
                   check=True, capture_output=True)
    return t1 - t0, time.monotonic() - t1


def import_store(binary, data, n):
    """Builds the store in data by `mailrepd import` of an mbox."""
    mbox = data + ".mbox"
    write_mbox(mbox, messages(n))
    add_user(binary, data)
    import_mbox(binary, data, mbox)
    os.unlink(mbox)
    with open(os.path.join(data, "bigbox.messages"), "w") as f:
        f.write("%d\n" % n)


def stored_count(data):
    try:
        with open(os.path.join(data, "bigbox.messages")) as f:
            return int(f.read())
    except OSError:
        return None


def split_build(tmp, n, tail, maildir, owner):
    """Writes the first n - tail messages as an mbox (returned path) and
    as maildir files in maildir/cur, owned by owner (uid, gid); returns
    the mbox's path and the last tail messages."""
    mbox = os.path.join(tmp, "bigbox.mbox")
    last = []
    base = int(time.time())

    def head():
        for i, m in enumerate(messages(n)):
            if i >= n - tail:
                last.append(m)
                continue
            lf = m.replace(b"\r\n", b"\n")
            name = os.path.join(maildir, "cur", "%d.M%dP%d.bigbox,S=%d,W=%d:2,"
                                % (base, i, os.getpid(), len(lf), len(m)))
            with open(name, "wb") as f:
                f.write(lf)
            os.chown(name, *owner)
            yield m

    write_mbox(mbox, head())
    return mbox, last


class Dovecot:
    """A throw-away Dovecot (bench/dovecot.sh) in dir."""

    def __init__(self, d):
        self.d = d
        # Into a file, not a pipe: the daemonized master keeps the
        # script's stdout open, and a pipe would never reach EOF.
        with tempfile.TemporaryFile("w+") as f:
            subprocess.run([os.path.join(HERE, "dovecot.sh"), "start", d],
                           check=True, stdout=f, stderr=subprocess.DEVNULL)
            f.seek(0)
            out = f.read()
        ports = dict(re.findall(r"(\w+)=(\d+)", out))
        self.lmtp, self.imap = int(ports["lmtp_port"]), int(ports["imap_port"])
        self.pid = int(ports["pid"])
        self.maildir = os.path.join(d, "mail", "fetch", "Maildir")
        st = os.stat(os.path.join(d, "mail"))
        self.owner = (st.st_uid, st.st_gid)
        for sub in ("", "cur", "new", "tmp"):
            path = os.path.join(self.maildir, sub)
            os.makedirs(path, exist_ok=True)
            os.chown(path, *self.owner)
        os.chown(os.path.dirname(self.maildir), *self.owner)

    def resync(self):
        """`doveadm force-resync INBOX` for fetch; seconds."""
        t0 = time.monotonic()
        conf = os.path.join(self.d, "dovecot.conf")
        subprocess.run(["doveadm", "-c", conf, "force-resync", "-u", "fetch",
                        "INBOX"], check=True, capture_output=True)
        return time.monotonic() - t0

    def imap_pid(self):
        """The newest "imap" process under the master: the one serving the
        session just logged in (one session at a time here)."""
        best = (-1, None)
        for p in proctree.tree([self.pid]):
            try:
                with open("/proc/%d/stat" % p) as f:
                    stat = f.read()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1:stat.rfind(")")]
            start = int(stat[stat.rfind(")") + 2:].split()[19])
            if comm == "imap" and start > best[0]:
                best = (start, p)
        return best[1]

    def stop(self):
        subprocess.run([os.path.join(HERE, "dovecot.sh"), "stop", self.d],
                       capture_output=True)


def serve_mailrepd(binary, data, tmp, n, no_index):
    lmtp, imap = free_port(), free_port()
    log = open(os.path.join(tmp, "mailrepd.log"), "w")
    p = subprocess.Popen([binary, "serve", "--data", data, "--lmtp",
                          "127.0.0.1:%d" % lmtp, "--imap",
                          "127.0.0.1:%d" % imap, "--max-messages",
                          str(max(n, 1000000)), "--search-index",
                          "no" if no_index else "yes"], stderr=log)
    wait_port(imap)
    return p, lmtp, imap


def run_mailrepd(binary, tmp, n, no_index, store=None, mbox=None,
                 tail=None):
    """Builds (by LMTP, from --store, or mbox then the tail over LMTP) and
    questions mailrepd; a dict of the figures."""
    r = {"build": None}
    data = store or os.path.join(tmp, "mailrepd")
    if store and stored_count(store) not in (None, n):
        sys.exit("bigbox: %s holds another number of messages" % store)
    if store and stored_count(store) is None:
        import_store(binary, data, n)
    elif not store:
        add_user(binary, data)
    if mbox:
        r["build"] = import_mbox(binary, data, mbox)
    p, lmtp, imap = serve_mailrepd(binary, data, tmp, n, no_index)
    try:
        cpu = proctree.cpu_seconds([p.pid])["cpu_s"]
        r["rate"] = None if store else deliver_all(
            lmtp, "fetch", tail if mbox else list(messages(n)))
        r["lag"] = None if no_index else wait_indexed(data)
        r["cpu"] = proctree.cpu_seconds([p.pid])["cpu_s"] - cpu
        r["rows"] = imap_rows(imap, "fetch", n, lambda: p.pid)
        r["rss"] = proctree.measure([p.pid])["rss_kib"]
    finally:
        p.terminate()
        p.wait()
    r["fts"] = int(index_status(binary, data)["bytes"])
    r["disk"] = du(data)
    return r


def run_both(binary, tmp, n, no_index, tail):
    """Builds the same n messages in both (see the top) and questions
    mailrepd, then Dovecot; two dicts of figures."""
    os.chmod(tmp, 0o755)
    dc = {}
    dv = Dovecot(os.path.join(tmp, "dovecot"))
    try:
        t0 = time.monotonic()
        mbox, last = split_build(tmp, n, tail, dv.maildir, dv.owner)
        dc["write"] = time.monotonic() - t0
        dc["build"] = (dc["write"], dv.resync())
        mr = run_mailrepd(binary, tmp, n, no_index, mbox=mbox, tail=last)
        os.unlink(mbox)
        dc["rate"] = deliver_all(dv.lmtp, "fetch", last)
        dc["rows"] = imap_rows(dv.imap, "fetch", n, dv.imap_pid)
        dc["rss"] = proctree.measure([dv.pid])["rss_kib"]
    finally:
        dv.stop()
    dc["disk"] = du(dv.d)
    return mr, dc


def fmt(x, form):
    return form % x if x is not None else "-"


def table(n, tail, mr, dc):
    """Prints the Markdown table."""
    print("| operation at %d messages | mailrepd | Dovecot | "
          "mailrepd / Dovecot time | mailrepd CPU | Dovecot CPU | note |"
          % n)
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    if dc:
        print("| building the first %d: import / files written (s) | %.0f "
              "| %.0f | | | | |" % (n - tail, mr["build"][0], dc["build"][0]))
        print("| building: index rebuild / doveadm force-resync (s) | %.0f "
              "| %.0f | | | | |" % (mr["build"][1], dc["build"][1]))
    if mr["rate"] is not None:      # with --store, nothing is delivered
        print("| delivering %s (msg/s, 4 connections) | %.0f | %s "
              "| | | | |" % ("the last %d" % tail if dc else "all",
                             mr["rate"], fmt(dc and dc["rate"], "%.0f")))
        print("| server CPU per message delivered (ms; indexing "
              "included) | %.3f | - | | | | |" % (
                  mr["cpu"] * 1000 / (tail if dc else n)))
    for i, (name, ms, note, cpu) in enumerate(mr["rows"]):
        o = dc["rows"][i] if dc else None
        if o and o[2] != note:
            note = "%s (Dovecot: %s)" % (note, o[2])
        print("| %s | %.1f | %s | %s | %s | %s | %s |" % (
            name, ms, fmt(o and o[1], "%.1f"),
            "%.2f" % (ms / o[1]) if o and o[1] > 0 else "",
            fmt(cpu, "%.1f"), fmt(o and o[3], "%.1f"), note))
    print("| server RSS after the run (MiB) | %.1f | %s | | | | |" % (
        mr["rss"] / 1024, fmt(dc and dc["rss"] / 1024, "%.1f")))
    for k, what in enumerate(("file bytes", "disk blocks")):
        print("| data on disk, %s (MB) | %.0f | %s | %s | | | |" % (
            what, mr["disk"][k] / 1e6, fmt(dc and dc["disk"][k] / 1e6, "%.0f"),
            fmt(dc and mr["disk"][k] / dc["disk"][k], "%.2f")))
        print("| data on disk per message, %s | %.0f | %s | | | | |" % (
            what, mr["disk"][k] / n, fmt(dc and dc["disk"][k] / n, "%.0f")))
    print("| full-text index per message (bytes) | %.0f | - | | | | |" % (
        mr["fts"] / n))
    if mr["lag"] is not None:
        print("| index caught up after the last delivery (s) | %.1f | - "
              "| | | | |" % mr["lag"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--dovecot", action="store_true")
    ap.add_argument("--lmtp-tail", type=int, default=2000)
    ap.add_argument("--mailrepd", default=os.path.join(HERE, "..",
                                                        "mailrepd"))
    ap.add_argument("--no-index", action="store_true")
    ap.add_argument("--store")
    a = ap.parse_args()
    if a.dovecot and a.store:
        sys.exit("bigbox: --dovecot builds both stores; no --store")
    tail = min(a.lmtp_tail, a.messages)
    binary = os.path.abspath(a.mailrepd)
    tmp = tempfile.mkdtemp(prefix="bigbox.")
    try:
        if a.dovecot:
            mr, dc = run_both(binary, tmp, a.messages, a.no_index, tail)
        else:
            mr, dc = run_mailrepd(binary, tmp, a.messages, a.no_index,
                                  a.store and os.path.abspath(a.store)), None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    table(a.messages, tail, mr, dc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
