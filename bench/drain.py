#!/usr/bin/env python3
"""Drain time and soft-failover downtime (issue 6).  Figures, never
pass/fail; 127.0.0.1 only; standard library only.

    bench/drain.py idle [N...]      N idle sessions (half LMTP, half IMAP),
                                    SIGQUIT to exit (default 100 1000)
    bench/drain.py load [--conns C] [--runs R]
                                    a master with a replica attached, C LMTP
                                    connections delivering 4 KiB messages
                                    back to back; SIGQUIT to exit, per run
    bench/drain.py failover [--conns C] [--runs R]
                                    the same pair under the same load, then
                                    contrib/failover.sh: downtime = from the
                                    last 250 the old master gave to the first
                                    250 the new one gave, seen by clients
                                    that deliver continuously and, on a
                                    refusal (connect refused, 421, 451), try
                                    the other node every 5 ms

MAILREPD names the binary (default ./mailrepd).  fsync is on (the
durability rule); every data directory is a new temporary one.
"""
import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

MAILREPD = os.environ.get("MAILREPD", "./mailrepd")
HERE = os.path.dirname(os.path.abspath(__file__))
FAILOVER = os.path.join(HERE, "..", "contrib", "failover.sh")
HOST = "127.0.0.1"
PASSWORD = "bench password 1"
RETRY_S = 0.005
BODY = b"Subject: drain bench\r\n\r\n" + (b"z" * 78 + b"\r\n") * 51  # 4 KiB


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc, deadline=20.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            sys.exit("mailrepd exited early (status %d)" % proc.returncode)
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    sys.exit("port %d not ready" % port)


class Node:
    """One `mailrepd serve` in a temporary directory."""

    def __init__(self, root, name, secret, extra):
        self.data = os.path.join(root, name)
        self.lmtp, self.repl = free_port(), free_port()
        self.log = open(os.path.join(root, name + ".log"), "ab")
        self.opts = ["--lmtp", "%s:%d" % (HOST, self.lmtp),
                     "--repl-listen", "%s:%d" % (HOST, self.repl),
                     "--repl-secret-file", secret, "--name", name,
                     "--max-connections", "200"] + extra
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [MAILREPD, "serve", "--data", self.data] + self.opts,
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.lmtp, self.proc)

    def log_text(self):
        with open(self.log.name, "rb") as f:
            return f.read().decode(errors="replace")


def pair(root):
    """A master (with user 'load') and one replica attached, streaming."""
    secret = os.path.join(root, "secret")
    with open(secret, "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    os.chmod(secret, 0o600)
    a = Node(root, "a", secret, [])
    subprocess.run([MAILREPD, "user", "add", "load", "--data", a.data],
                   input=(PASSWORD + "\n").encode(), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    a.start()
    b = Node(root, "b", secret, ["--replicate-from", "%s:%d" % (HOST,
                                                                a.repl)])
    b.start()
    end = time.monotonic() + 20
    while "sync.replica.connected" not in a.log_text():
        if time.monotonic() > end:
            sys.exit("replica did not connect")
        time.sleep(0.02)
    return a, b


class Lmtp:
    """One LMTP connection: deliver() returns True on 250."""

    def __init__(self, port):
        self.s = socket.create_connection((HOST, port), timeout=10)
        self.f = self.s.makefile("rb")
        self.reply()
        self.s.sendall(b"LHLO bench\r\n")
        if not self.reply().startswith(b"250"):
            raise OSError("LHLO refused")

    def reply(self):
        while True:
            line = self.f.readline()
            if not line:
                raise OSError("closed")
            if line[3:4] != b"-":
                return line

    def deliver(self):
        self.s.sendall(b"MAIL FROM:<b@bench.test>\r\nRCPT TO:<load@x.test>"
                       b"\r\nDATA\r\n")
        if not self.reply().startswith(b"250"):
            return False
        if not self.reply().startswith(b"250"):
            return False
        if not self.reply().startswith(b"354"):
            return False
        self.s.sendall(BODY + b".\r\n")
        return self.reply().startswith(b"250")

    def close(self):
        self.s.close()


class Client(threading.Thread):
    """Delivers continuously; on a refusal moves to the next port of
    ports (one only: stop instead).  Records (time, port) of each 250."""

    def __init__(self, ports, stop):
        super().__init__(daemon=True)
        self.ports, self.stop = ports, stop
        self.ok = []
        self.i = 0

    def run(self):
        c = None
        while not self.stop.is_set():
            port = self.ports[self.i % len(self.ports)]
            try:
                if c is None:
                    c = Lmtp(port)
                if c.deliver():
                    self.ok.append((time.monotonic(), port))
                    continue
            except OSError:
                pass
            if c is not None:
                c.close()
                c = None
            if len(self.ports) == 1:
                return
            self.i += 1
            time.sleep(RETRY_S)
        if c is not None:
            c.close()


def drain_load(conns):
    root = tempfile.mkdtemp(prefix="drainload")
    try:
        a, b = pair(root)
        stop = threading.Event()
        cl = [Client([a.lmtp], stop) for _ in range(conns)]
        for c in cl:
            c.start()
        time.sleep(1.0)
        t0 = time.monotonic()
        a.proc.send_signal(signal.SIGQUIT)
        rc = a.proc.wait(60)
        ms = (time.monotonic() - t0) * 1000
        stop.set()
        for c in cl:
            c.join(10)
        n = sum(len(c.ok) for c in cl)
        rate = sum(1 for c in cl for t, _ in c.ok if t0 - 1 <= t < t0)
        b.proc.terminate()
        b.proc.wait(30)
        return {"status": rc, "ms": ms, "delivered": n, "rate": rate}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def failover(conns):
    root = tempfile.mkdtemp(prefix="failover")
    try:
        a, b = pair(root)
        stop = threading.Event()
        cl = [Client([a.lmtp, b.lmtp], stop) for _ in range(conns)]
        for c in cl:
            c.start()
        time.sleep(1.0)
        env = dict(os.environ, MAILREPD=os.path.abspath(MAILREPD))
        t0 = time.monotonic()
        p = subprocess.run(["sh", FAILOVER, a.data, b.data,
                            "%s:%d" % (HOST, b.repl)] + a.opts, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        script_ms = (time.monotonic() - t0) * 1000
        a.proc.wait(30)
        time.sleep(1.0)
        stop.set()
        for c in cl:
            c.join(10)
        last_a = max(t for c in cl for t, port in c.ok if port == a.lmtp)
        after = [t for c in cl for t, port in c.ok if port == b.lmtp]
        first_b = min(after) if after else float("nan")
        # The old master, now a replica of b: until it streams again.
        log = os.path.join(a.data, "serve.log")
        end = time.monotonic() + 30
        rejoin_ms = float("nan")
        while time.monotonic() < end:
            with open(log, "rb") as f:
                if b"sync.streaming" in f.read():
                    rejoin_ms = (time.monotonic() - t0) * 1000
                    break
            time.sleep(0.01)
        with open(os.path.join(a.data, "mailrepd.pid")) as f:
            os.kill(int(f.read()), signal.SIGTERM)
        b.proc.terminate()
        b.proc.wait(30)
        return {"status": p.returncode, "downtime_ms":
                (first_b - last_a) * 1000, "script_ms": script_ms,
                "rejoin_ms": rejoin_ms, "after": len(after),
                "out": p.stdout.decode(errors="replace")}
    finally:
        time.sleep(0.5)
        shutil.rmtree(root, ignore_errors=True)


def idle(n):
    d = tempfile.mkdtemp(prefix="drain")
    lp, ip = free_port(), free_port()
    with open(d + "/log", "w") as log:
        p = subprocess.Popen([MAILREPD, "serve", "--data", d + "/data",
                              "--lmtp", "%s:%d" % (HOST, lp),
                              "--imap", "%s:%d" % (HOST, ip),
                              "--max-connections", str(n + 16)],
                             stdout=log, stderr=subprocess.STDOUT)
    wait_port(lp, p)
    socks = []
    for i in range(n):
        s = socket.create_connection((HOST, ip if i % 2 else lp))
        s.recv(4096)
        socks.append(s)
    t0 = time.monotonic()
    p.send_signal(signal.SIGQUIT)
    rc = p.wait(60)
    ms = (time.monotonic() - t0) * 1000
    bye = sum(1 for s in socks if s.recv(4096)[:1] in (b"*", b"4"))
    print("drain idle_sessions=%d status=%d ms=%.0f goodbyes=%d" % (
        n, rc, ms, bye))
    shutil.rmtree(d, ignore_errors=True)


def summary(name, values):
    values = sorted(values)
    print("%s median=%.0f min=%.0f max=%.0f runs=%d" % (
        name, statistics.median(values), values[0], values[-1],
        len(values)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=("idle", "load", "failover"))
    ap.add_argument("n", nargs="*", type=int)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--runs", type=int, default=5)
    o = ap.parse_args()
    if o.mode == "idle":
        for n in o.n or [100, 1000]:
            idle(n)
        return
    ms = []
    for i in range(o.runs):
        if o.mode == "load":
            r = drain_load(o.conns)
            print("drain load conns=%d status=%d ms=%.0f delivered=%d "
                  "msg_per_s_before=%d" % (o.conns, r["status"], r["ms"],
                                           r["delivered"], r["rate"]))
            ms.append(r["ms"])
        else:
            r = failover(o.conns)
            print("failover conns=%d status=%d downtime_ms=%.0f "
                  "script_ms=%.0f rejoin_ms=%.0f delivered_after=%d" % (
                      o.conns, r["status"], r["downtime_ms"],
                      r["script_ms"], r["rejoin_ms"], r["after"]))
            if r["status"] != 0:
                print(r["out"])
            ms.append(r["downtime_ms"])
        sys.stdout.flush()
    summary("drain_ms" if o.mode == "load" else "downtime_ms", ms)


if __name__ == "__main__":
    main()
