#!/usr/bin/env python3
"""bench/soak.py — does the store stay a bounded size under churn?

Standard library only.  Starts a mailrepd master and one replica (and,
with --dovecot, a Dovecot from bench/dovecot.sh beside them), then for
--minutes runs the same loop against each server at full speed: deliver
--batch messages over LMTP, flag some over IMAP, mark the oldest
\\Deleted and EXPUNGE once INBOX holds more than --keep, and every tenth
round create a mailbox, copy messages into it and delete it.  Retention
is compressed to --retention seconds (tombstones, resolved conflicts,
the replication log; quarantine 0 days), so that hours of a real store's
life pass in minutes.

Every --every seconds it prints one table row per server: rounds done,
messages held, database and WAL bytes (for Dovecot the bytes of its mail
directory: maildir and indexes), the rows of mailrepd's growing tables
(`mailrepd status --json`) and the RSS of the server's process tree.
Figures, never pass/fail.

    bench/soak.py --minutes 30 [--dovecot] [--mailrepd ./mailrepd]
"""

import argparse
import imaplib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
import proctree  # noqa: E402
from repl_bench import LMTP, free_port, wait_port  # noqa: E402

HOST = "127.0.0.1"
PASSWORD = "soak-pass"
SECRET = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
TABLES = ("message", "expunged", "mailbox_gone", "replog", "quarantine",
          "blob", "held")


class Mailrepd:
    """One mailrepd serve on its own data directory."""

    def __init__(self, binary, tmp, name, args):
        self.binary = binary
        self.name = name
        self.data = os.path.join(tmp, name)
        self.lmtp = free_port()
        self.imap = free_port()
        self.args = args
        self.log = os.path.join(tmp, name + ".log")
        self.proc = None
        self.user = "soak"

    def start(self):
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(
                [self.binary, "serve", "--data", self.data,
                 "--lmtp", "%s:%d" % (HOST, self.lmtp),
                 "--imap", "%s:%d" % (HOST, self.imap),
                 "--name", self.name] + self.args,
                stdout=logf, stderr=logf)
        wait_port(self.lmtp, self.proc)
        wait_port(self.imap, self.proc)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)

    def sample(self):
        p = subprocess.run([self.binary, "status", "--json", "--data",
                            self.data], capture_output=True, text=True,
                           timeout=120)
        st = json.loads(p.stdout) if p.returncode == 0 else {}
        rows = st.get("tables", {})
        return {"db": st.get("db_bytes", 0), "wal": st.get("wal_bytes", 0),
                "rows": rows,
                "rss": proctree.measure([self.proc.pid])["rss_kib"]}


class Dovecot:
    """Dovecot from bench/dovecot.sh, user1 in the clear."""

    def __init__(self, tmp):
        self.name = "dovecot"
        self.dir = os.path.join(tmp, "dovecot")
        self.user = "user1"
        os.makedirs(self.dir)

    def start(self):
        env = dict(os.environ, BENCH_USERS="1", BENCH_PASSWORD=PASSWORD)
        # Dovecot keeps the script's stdout: a file, not a pipe.
        out_path = os.path.join(self.dir, "start.out")
        with open(out_path, "w") as out_f:
            subprocess.run([os.path.join(BENCH, "dovecot.sh"), "start",
                            self.dir], stdout=out_f, env=env, check=True,
                           timeout=120)
        with open(out_path) as out_f:
            out = out_f.read()
        kv = dict(re.findall(r"(\w+)=(\d+)", out))
        self.lmtp = int(kv["lmtp_port"])
        self.imap = int(kv["imap_port"])
        self.pid = int(kv["pid"])

    def stop(self):
        subprocess.run([os.path.join(BENCH, "dovecot.sh"), "stop",
                        self.dir], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)

    def sample(self):
        mail = 0
        for root, _, files in os.walk(self.dir):
            if "/mail" not in root and "/home" not in root:
                continue
            for f in files:
                try:
                    mail += os.lstat(os.path.join(root, f)).st_size
                except OSError:
                    pass
        return {"db": mail, "wal": 0, "rows": {},
                "rss": proctree.measure([self.pid])["rss_kib"]}


def message(tag, size):
    head = ("From: <s@remote.test>\r\nTo: <soak@soak.test>\r\n"
            "Subject: soak %s\r\nMessage-ID: <%s@soak>\r\n\r\n" % (tag, tag))
    pad = ("y" * 76 + "\r\n") * max(0, (size - len(head)) // 78)
    return (head + pad).encode()


def churn(server, args, stop, counts):
    """The loop against one server until stop is set."""
    lmtp = LMTP(server.lmtp)
    imap = imaplib.IMAP4(HOST, server.imap)
    imap.login(server.user, PASSWORD)
    n = 0
    while not stop.is_set():
        for _ in range(args.batch):
            n += 1
            lmtp.deliver(server.user + "@soak.test",
                         message("%s-%d" % (server.name, n), args.size))
        typ, data = imap.select("INBOX")
        held = int(data[0])
        imap.store("%d:*" % max(1, held - args.batch // 2), "+FLAGS",
                   "(\\Seen $Soak)")
        if held > args.keep:
            imap.store("1:%d" % (held - args.keep), "+FLAGS.SILENT",
                       "(\\Deleted)")
            imap.expunge()
        counts[server.name] = counts.get(server.name, 0) + 1
        if counts[server.name] % 10 == 0:
            imap.create("Soak")
            imap.copy("1:%d" % min(held, args.batch), "Soak")
            imap.delete("Soak")
    imap.logout()
    lmtp.s.close()


def row(name, rounds, smp):
    r = smp["rows"]
    return "| %s | %s | %d | %s | %.1f | %.2f | %s | %.1f |" % (
        time.strftime("%H:%M:%S"), name, rounds,
        r.get("message", "-"), smp["db"] / 1048576.0,
        smp["wal"] / 1048576.0,
        " / ".join(str(r.get(t, "-")) for t in TABLES[1:]),
        smp["rss"] / 1024.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mailrepd", default=os.path.join(ROOT, "mailrepd"))
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--every", type=float, default=60)
    ap.add_argument("--retention", type=int, default=120)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--keep", type=int, default=200)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--dovecot", action="store_true")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="soak")
    os.chmod(tmp, 0o755)  # Dovecot's mail user reaches its maildirs
    secret = os.path.join(tmp, "secret")
    with open(secret, "w") as f:
        f.write(SECRET + "\n")
    os.chmod(secret, 0o600)
    keep = ["--tombstone-retention", str(args.retention),
            "--conflict-retention", str(args.retention),
            "--repl-log-retention", str(args.retention),
            "--quarantine-days", "0", "--repl-secret-file", secret]
    repl_port = free_port()
    master = Mailrepd(args.mailrepd, tmp, "master",
                      keep + ["--repl-listen", "%s:%d" % (HOST, repl_port)])
    # The churn deletes most of the user's mail and a mailbox every ten
    # rounds: the replica's mass-delete guard is told that is expected.
    replica = Mailrepd(args.mailrepd, tmp, "replica",
                       keep + ["--replicate-from",
                               "%s:%d" % (HOST, repl_port),
                               "--guard-max-expunge-percent", "100",
                               "--guard-max-mailbox-deletes", "1000000"])
    subprocess.run([args.mailrepd, "user", "add", "soak", "--data",
                    master.data], input=PASSWORD + "\n", text=True,
                   check=True, capture_output=True)
    servers = [master]
    dovecot = Dovecot(tmp) if args.dovecot else None
    stop = threading.Event()
    threads = []
    try:
        master.start()
        replica.start()
        if dovecot:
            dovecot.start()
            servers.append(dovecot)
        run(servers, replica, args, stop, threads)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        for s in (replica, master) + ((dovecot,) if dovecot else ()):
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def run(servers, replica, args, stop, threads):
    """Starts the loops and prints a row per server every args.every."""
    counts = {}
    threads += [threading.Thread(target=churn, args=(s, args, stop, counts),
                                 daemon=True) for s in servers]
    for t in threads:
        t.start()
    print("| time | server | rounds | messages | db MiB | WAL MiB | "
          "expunged / mailbox_gone / replog / quarantine / blob / held rows | "
          "RSS MiB |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    end = time.monotonic() + args.minutes * 60
    while time.monotonic() < end and all(t.is_alive() for t in threads):
        time.sleep(min(args.every, max(0, end - time.monotonic())))
        for s in servers + [replica]:
            print(row(s.name, counts.get(s.name, 0), s.sample()),
                  flush=True)


if __name__ == "__main__":
    main()
