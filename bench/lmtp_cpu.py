#!/usr/bin/env python3
"""bench/lmtp_cpu.py — LMTP delivery beside Dovecot: rate, CPU, store size.

Starts a throw-away Dovecot (bench/dovecot.sh: maildir, mail_fsync =
always) and mailrepd (release build, `serve --catch-all yes`, a
temporary data directory) side by side, then in each of --runs runs
delivers --messages messages of --size bytes (bench/lmtp_load, one
recipient out of 10 users, LMTP without PIPELINING unless --pipelining)
at 1 and at 8 connections to each server in turn, the order swapped
from one workload to the next.  For each it prints the rate, the
server's CPU time (user + system, its whole process tree, from /proc)
per message, and the 1-minute load average before and after: the
machines this runs on are shared, so compare the ratios of one run.
mailrepd's CPU includes its full-text index catching up after the last
message.  At the end, both stores' bytes per message: mailrepd's
database split by dbstat into table data, indexes and the full-text
index (the WAL beside), Dovecot's message files and index files, each
as file bytes and as disk blocks.  Figures only, never pass/fail.

usage: bench/lmtp_cpu.py [--runs N] [--messages N] [--size BYTES]
                         [--pipelining] [--mailrepd PATH] [--keep]
"""
import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proctree  # noqa: E402
from growth import cleanup, free_port, loadavg, wait_port  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
LOAD = os.path.join(HERE, "lmtp_load")


def lmtp_load(port, conns, n, size, pipelining):
    args = [LOAD, "--port", str(port), "--connections", str(conns),
            "--messages", str(n), "--size", str(size), "--rcpt-users", "10",
            "--json"]
    if pipelining:
        args.append("--pipelining")
    out = subprocess.run(args, capture_output=True, text=True).stdout
    return json.loads(out) if out.strip() else {}


class Mailrepd:
    name = "mailrepd"

    def __init__(self, binary, tmp):
        self.binary = binary
        self.data = os.path.join(tmp, "mailrepd")
        self.port = free_port()
        self.log = open(os.path.join(tmp, "mailrepd.log"), "w")
        self.p = subprocess.Popen([binary, "serve", "--data", self.data,
                                   "--lmtp", "127.0.0.1:%d" % self.port,
                                   "--catch-all", "yes"], stderr=self.log)
        self.pid = self.p.pid
        wait_port(self.port)

    def settle(self):
        """Waits until the full-text index has every message."""
        while True:
            out = subprocess.run([self.binary, "index", "status", "--data",
                                  self.data], capture_output=True,
                                 text=True).stdout
            if re.search(r"^pending: 0$", out, re.M):
                return
            time.sleep(0.1)

    def stop(self):
        self.p.terminate()
        self.p.wait()

    def sizes(self):
        """Bytes by kind: data, indexes, fts, wal (file), disk."""
        db = os.path.join(self.data, "mailrepd.db")
        con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
        kinds = {"data": 0, "indexes": 0, "fts": 0}
        idx = {r[0] for r in con.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'index'")}
        for name, size in con.execute(
                "SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
            if name.startswith("fts"):
                kinds["fts"] += size
            elif name in idx or name.startswith("sqlite_autoindex"):
                kinds["indexes"] += size
            else:
                kinds["data"] += size
        con.close()
        files = [os.path.join(self.data, f) for f in
                 ("mailrepd.db", "mailrepd.db-wal")]
        kinds["wal"] = file_bytes(files[1:])
        kinds["total"] = file_bytes(files)
        kinds["disk"] = disk_bytes(files)
        return kinds


class Dovecot:
    name = "dovecot"

    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "dovecot")
        # A file, not a pipe: Dovecot's master keeps what it inherits.
        with tempfile.TemporaryFile("w+") as f:
            subprocess.run([os.path.join(HERE, "dovecot.sh"), "start",
                            self.dir], check=True, stdout=f,
                           stderr=subprocess.DEVNULL)
            f.seek(0)
            out = f.read()
        ports = dict(re.findall(r"(\w+)=(\d+)", out))
        self.port = int(ports["lmtp_port"])
        self.pid = int(ports["pid"])

    def settle(self):
        pass

    def stop(self):
        subprocess.run([os.path.join(HERE, "dovecot.sh"), "stop", self.dir],
                       capture_output=True)

    def sizes(self):
        """Message files (cur, new) and everything else (indexes)."""
        msgs, other = [], []
        for d, _, fs in os.walk(os.path.join(self.dir, "mail")):
            leaf = os.path.basename(d)
            for f in fs:
                (msgs if leaf in ("cur", "new") else other).append(
                    os.path.join(d, f))
        return {"data": file_bytes(msgs), "indexes": file_bytes(other),
                "fts": 0, "wal": 0, "total": file_bytes(msgs + other),
                "disk": disk_bytes(msgs + other)}


def file_bytes(paths):
    return sum(os.path.getsize(p) for p in paths if os.path.exists(p))


def disk_bytes(paths):
    return sum(os.stat(p).st_blocks * 512 for p in paths
               if os.path.exists(p))


def deliver(server, conns, n, size, pipelining):
    """One workload on one server: rate, CPU ms per message, load."""
    subprocess.run(["sync"])
    time.sleep(0.5)
    la0 = loadavg()
    cpu0 = proctree.cpu_seconds([server.pid])["cpu_s"]
    res = lmtp_load(server.port, conns, n, size, pipelining)
    server.settle()
    cpu1 = proctree.cpu_seconds([server.pid])["cpu_s"]
    return {"rate": res.get("messages_per_s", 0),
            "failures": res.get("failures", n),
            "cpu_ms": (cpu1 - cpu0) * 1000 / n,
            "load": (la0, loadavg())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--pipelining", action="store_true")
    ap.add_argument("--mailrepd", default=os.path.join(HERE, "..",
                                                        "mailrepd"))
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="lmtp_cpu.")
    os.chmod(tmp, 0o755)    # Dovecot's mail user (as root) reaches its maildirs
    servers = []
    total = 0
    try:
        servers = [Dovecot(tmp), Mailrepd(a.mailrepd, tmp)]
        for s in servers:
            lmtp_load(s.port, 1, 20, 1024, False)    # every mailbox exists
            total += 20
        print("| run | c | Dovecot msg/s | mailrepd msg/s | rate ratio | "
              "Dovecot CPU ms/msg | mailrepd CPU ms/msg | CPU ratio | "
              "load avg (start-end) |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        turn = 0
        for run in range(1, a.runs + 1):
            for conns in (1, 8):
                got = {}
                order = servers if turn % 2 == 0 else servers[::-1]
                turn += 1
                for s in order:
                    got[s.name] = deliver(s, conns, a.messages, a.size,
                                          a.pipelining)
                total += a.messages
                d, m = got["dovecot"], got["mailrepd"]
                loads = [x for r in (d, m) for x in r["load"]]
                fails = d["failures"] + m["failures"]
                print("| %d | %d | %.0f | %.0f | **%.2f** | %.2f | %.3f | "
                      "%.1f | %.1f-%.1f%s |" % (
                          run, conns, d["rate"], m["rate"],
                          m["rate"] / d["rate"] if d["rate"] else 0,
                          d["cpu_ms"], m["cpu_ms"],
                          d["cpu_ms"] / m["cpu_ms"] if m["cpu_ms"] else 0,
                          min(loads), max(loads),
                          " (%d failures)" % fails if fails else ""))
                sys.stdout.flush()
        for s in servers:
            s.stop()
        print()
        print("Store after %d messages of %d bytes (bytes per message; "
              "mailrepd's WAL is in its total):" % (total, a.size))
        print()
        print("| bytes per message | data | indexes | full-text index | "
              "total (files) | disk blocks |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for s in servers:
            z = s.sizes()
            print("| %s | %.0f | %.0f | %.0f | %.0f | %.0f |" % (
                s.name, z["data"] / total, z["indexes"] / total,
                z["fts"] / total, z["total"] / total, z["disk"] / total))
    finally:
        for s in servers:
            s.stop()
        cleanup(tmp, a.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
