#!/usr/bin/env python3
"""bench/growth.py — LMTP delivery into a store as it grows to 1M messages.

Fills one mailrepd store (release build) step by step to each of
--steps messages, spread over --users users' INBOXes, with `mailrepd
import USER --mbox` (the real delivery code: spool, GUID, MIME
pre-parse, store_deliver(), committed every 200 messages; the server
is stopped meanwhile) fed through a FIFO by a generator of unique
~4 KiB English-like messages.  At each step the server starts on the
store, its full-text index catches up, and then LMTP delivery is
measured --rounds times: --messages messages of 4 KiB over
--connections connections without PIPELINING (bench/lmtp_load), the
rate and the server's CPU time per message (user + system, from /proc,
the index's catching up included).  Each measurement is paired with
one on an empty store started beside it, in alternating order, so that
the ratio of the two compares like with like on a shared, noisy
machine; the 1-minute load average is printed with each row.  Also
per step: the time the import and the index took, and the database,
WAL and index sizes.  Figures only, never pass/fail.

usage: bench/growth.py [--steps 0,100000,500000,1000000] [--users 10]
                       [--messages 2000] [--connections 8] [--rounds 3]
                       [--mailrepd PATH] [--dir DIR] [--keep]
                       [--store DIR]

--dir puts the stores there (default: a new directory under $TMPDIR);
1M messages take about 7 GB.  --store DIR keeps the big store in DIR
(made if missing) and, on a later run, imports only what the steps ask
beyond what it holds: so two builds (before and after a change) are
measured on one store without importing it twice.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proctree  # noqa: E402
from bigbox import WORDS, free_port, index_pending, wait_port  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
LOAD = os.path.join(HERE, "lmtp_load")
PASSWORD = "bench-pass"


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def mbox_message(user, i, rng):
    """One mbox entry (From_ line, LF ends) of about 4 KiB, unique."""
    lines = []
    for _ in range(56):
        lines.append(" ".join(rng.choice(WORDS) for _ in range(12)))
    return ("From sender@remote.test Mon Dec  7 05:00:00 2026\n"
            "From: user%d@remote.test\nTo: %s@bench.test\n"
            "Subject: topic %d\nMessage-ID: <%s.%d@bench.test>\n"
            "Date: Mon, 7 Dec 2026 05:00:00 +0000\n\n"
            "message %s %d\n%s\n\n" % (
                i % 1000, user, i % 100, user, i, user, i,
                "\n".join(lines)))


def import_messages(binary, data, user, first, count):
    """Imports count new messages into user's INBOX through a FIFO."""
    fifo = os.path.join(data, "..", "import-%s.fifo" % user)
    if os.path.exists(fifo):
        os.unlink(fifo)
    os.mkfifo(fifo)
    p = subprocess.Popen([binary, "import", user, "--mbox", fifo,
                          "--data", data], stderr=subprocess.PIPE)
    rng = random.Random(first)
    with open(fifo, "w") as f:
        chunk = []
        for i in range(first, first + count):
            chunk.append(mbox_message(user, i, rng))
            if len(chunk) == 200:
                f.write("".join(chunk))
                chunk = []
        f.write("".join(chunk))
    err = p.communicate()[1]
    os.unlink(fifo)
    if p.returncode != 0:
        raise RuntimeError("import %s: %s" % (user, err.decode()[-500:]))


class Server:
    """`mailrepd serve` on a data directory, LMTP only."""

    def __init__(self, binary, data):
        self.binary, self.data = binary, data
        self.port = free_port()
        self.log = open(data + ".log", "a")
        self.p = subprocess.Popen([binary, "serve", "--data", data,
                                   "--lmtp", "127.0.0.1:%d" % self.port,
                                   "--catch-all", "yes"], stderr=self.log)
        wait_port(self.port)

    def index(self):
        out = subprocess.run([self.binary, "index", "status", "--data",
                              self.data], capture_output=True,
                             text=True).stdout
        return dict(l.split(": ", 1) for l in out.splitlines() if ": " in l)

    def settle(self):
        """Seconds until the full-text index has every blob."""
        t0 = time.monotonic()
        while index_pending(self.data):
            time.sleep(0.2)
        return time.monotonic() - t0

    def cpu(self):
        return proctree.cpu_seconds([self.p.pid])["cpu_s"]

    def stop(self):
        self.p.terminate()
        self.p.wait()
        self.log.close()


def measure(server, n, conns, users):
    """Delivers n messages; rate, server CPU ms per message, load."""
    subprocess.run(["sync"])
    time.sleep(0.5)
    la = loadavg()
    cpu0 = server.cpu()
    out = subprocess.run([LOAD, "--port", str(server.port), "--connections",
                          str(conns), "--messages", str(n), "--size", "4096",
                          "--rcpt-users", str(users), "--rcpt-template",
                          "user%d@bench.test", "--json"],
                         capture_output=True, text=True).stdout
    res = json.loads(out) if out.strip() else {}
    server.settle()
    return {"rate": res.get("messages_per_s", 0),
            "fails": res.get("failures", n),
            "cpu_ms": (server.cpu() - cpu0) * 1000 / n,
            "load": (la, loadavg())}


def cleanup(tmp, keep):
    """Removes the temporary directory, or says where it is kept."""
    if keep:
        print("kept %s" % tmp, file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def file_size(path):
    return os.path.getsize(path) if os.path.exists(path) else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", default="0,100000,500000,1000000")
    ap.add_argument("--users", type=int, default=10)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mailrepd", default=os.path.join(HERE, "..",
                                                        "mailrepd"))
    ap.add_argument("--dir")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--store")
    a = ap.parse_args()
    steps = [int(x) for x in a.steps.split(",")]
    tmp = tempfile.mkdtemp(prefix="growth.", dir=a.dir)
    big = os.path.abspath(a.store) if a.store else os.path.join(tmp, "big")
    users = ["user%d" % (k + 1) for k in range(a.users)]
    have = 0        # messages imported (deliveries measured come on top)
    delivered = 0
    if a.store and os.path.exists(os.path.join(big, "growth.count")):
        with open(os.path.join(big, "growth.count")) as f:
            have, delivered = (int(x) for x in f.read().split())
    else:
        for u in users:
            subprocess.run([a.mailrepd, "user", "add", u, "--data", big],
                           input=PASSWORD + "\n", text=True, check=True,
                           capture_output=True)
    print("| messages in the store | msg/s: this store / empty store "
          "(rounds) | rate ratio | CPU ms/msg: this / empty | CPU ratio "
          "| load avg |")
    print("| ---: | --- | ---: | --- | ---: | --- |")
    notes = []
    try:
        for step in steps:
            t0 = time.monotonic()
            per_user = (step - have) // a.users
            for u in users if per_user > 0 else []:
                import_messages(a.mailrepd, big, u, have // a.users,
                                per_user)
            have += per_user * a.users if per_user > 0 else 0
            if a.store:
                with open(os.path.join(big, "growth.count"), "w") as f:
                    f.write("%d %d\n" % (have, delivered))
            t_import = time.monotonic() - t0
            srv = Server(a.mailrepd, big)
            t_index = srv.settle()
            empty = os.path.join(tmp, "empty-%d" % step)
            ctl = Server(a.mailrepd, empty)
            for s in (srv, ctl):    # users and mailboxes exist
                measure(s, 50, 1, a.users)
            delivered += 50
            got = {"big": [], "ctl": []}
            for r in range(a.rounds):
                pair = (("big", srv), ("ctl", ctl))
                for name, s in pair if r % 2 == 0 else pair[::-1]:
                    got[name].append(measure(s, a.messages, a.connections,
                                             a.users))
                delivered += a.messages
            srv.stop()
            ctl.stop()
            if a.store:
                with open(os.path.join(big, "growth.count"), "w") as f:
                    f.write("%d %d\n" % (have, delivered))
            shutil.rmtree(empty, ignore_errors=True)

            def med(xs, k):
                v = sorted(x[k] for x in xs)
                return v[len(v) // 2]
            b, c = got["big"], got["ctl"]
            loads = [x for r in b + c for x in r["load"]]
            fails = sum(x["fails"] for x in b + c)
            print("| %d | %s / %s | **%.2f** | %.3f / %.3f | %.2f | "
                  "%.1f-%.1f%s |" % (
                      have + delivered,
                      ", ".join("%.0f" % x["rate"] for x in b),
                      ", ".join("%.0f" % x["rate"] for x in c),
                      med(b, "rate") / med(c, "rate"),
                      med(b, "cpu_ms"), med(c, "cpu_ms"),
                      med(b, "cpu_ms") / med(c, "cpu_ms"),
                      min(loads), max(loads),
                      " (%d failures)" % fails if fails else ""))
            sys.stdout.flush()
            db = file_size(os.path.join(big, "mailrepd.db"))
            wal = file_size(os.path.join(big, "mailrepd.db-wal"))
            idx = Server.index(srv)
            notes.append("%d: import %.0f s, index caught up in %.0f s; "
                         "database %.0f MB (%.0f bytes a message), WAL "
                         "%.1f MB, full-text index %.0f MB" % (
                             have, t_import, t_index, db / 1e6,
                             db / max(have + delivered, 1), wal / 1e6,
                             int(idx.get("bytes", 0)) / 1e6))
        print()
        for n in notes:
            print("- " + n)
    finally:
        cleanup(tmp, a.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
