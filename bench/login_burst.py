#!/usr/bin/env python3
"""Login burst: does a crowd of wrong passwords slow everyone else down?

    bench/login_burst.py [--seconds S] [--attackers N] [--logins-per-s R]
                         [--mailrepd PATH]... [--no-dovecot] [--json FILE]

For each server in turn (every --mailrepd binary, default ./mailrepd or
$MAILREPD, then Dovecot unless --no-dovecot), on 127.0.0.1, for S seconds
(default 20):
  - N connections (default 200) send `LOGIN user20 wrong` again and again,
    reconnecting when the server hangs up; each from its own loopback
    address (127.0.2.x, 127.0.3.x...), so that no per-address penalty
    throttles the crowd as a whole;
  - R correct logins a second (default 100), each a new connection from
    127.0.0.1 (users user1..user19 in turn): LOGIN, LOGOUT.  These users
    logged in once before the burst (regular users whose clients
    reconnect), unless --cold;
  - one logged-in client (user "fetch") sends NOOP every 20 ms, in its own
    process.  Its latency counts from when each NOOP was due, so a stall
    shows in every NOOP that should have run during it.

Printed: NOOP p50/p99/max, correct logins done / tried, their p50/p99
(from when each was due), wrong-password refusals, and temporary
failures (NO [UNAVAILABLE]).  Figures only, never pass or fail.

mailrepd stores PBKDF2-SHA256 hashes (100,000 rounds); Dovecot is started
by bench/dovecot.sh with BENCH_SCHEME=SHA512-CRYPT (5,000 rounds) and its
defaults otherwise (auth cache off, auth_failure_delay 2 s).  Standard
library only; every data directory is a new temporary one.
"""
import argparse
import json
import multiprocessing
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HOST = "127.0.0.1"
PASSWORD = "bench-pass"
USERS = ["user%d" % i for i in range(1, 20)]
ATTACKED = "user20"
VICTIM = "fetch"
NOOP_EVERY = 0.02
IO_TIMEOUT = 60.0


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p / 100))]


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, deadline=20.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    sys.exit("port %d never accepted" % port)


# --- the servers ------------------------------------------------------------

class Mailrepd:
    def __init__(self, binary, tmp):
        self.name = "mailrepd" if binary in ("./mailrepd", "mailrepd") \
            else "mailrepd (%s)" % binary
        self.binary = binary
        self.data = os.path.join(tmp, "data")
        self.proc = None

    def start(self):
        for u in USERS + [ATTACKED, VICTIM]:
            subprocess.run([self.binary, "user", "add", u, "--data",
                            self.data], input=(PASSWORD + "\n").encode(),
                           check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        self.port = free_port()
        self.log = open(self.data + ".log", "wb")
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--data", self.data, "--imap",
             "%s:%d" % (HOST, self.port), "--allow-plaintext-auth", "yes",
             "--max-connections", "1000"],
            stdout=self.log, stderr=self.log)
        wait_port(self.port)

    def stop(self):
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
            self.log.close()


class Dovecot:
    name = "Dovecot (SHA512-CRYPT)"

    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "dovecot")
        self.script = os.path.join(HERE, "dovecot.sh")

    def start(self):
        env = dict(os.environ, BENCH_USERS="20", BENCH_PASSWORD=PASSWORD,
                   BENCH_SCHEME="SHA512-CRYPT")
        out = subprocess.run([self.script, "start", self.dir], env=env,
                             check=True, stdout=subprocess.PIPE,
                             text=True).stdout
        fields = dict(f.split("=") for f in out.split())
        self.port = int(fields["imap_port"])

    def stop(self):
        subprocess.run([self.script, "stop", self.dir], check=False)


# --- the logged-in client, in its own process -------------------------------

def read_tagged(sock, buf, tag):
    """Reads until the line tagged `tag`; returns (line, rest of buffer)."""
    while True:
        while b"\r\n" in buf:
            line, buf = buf.split(b"\r\n", 1)
            if line.startswith(tag + b" "):
                return line, buf
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError("connection closed")
        buf += chunk


def victim(port, seconds, out):
    """Logs in, then NOOPs on a fixed schedule; puts the latencies."""
    sock = socket.create_connection((HOST, port), timeout=IO_TIMEOUT)
    buf = b""
    sock.sendall(b"v0 LOGIN %s %s\r\n" % (VICTIM.encode(), PASSWORD.encode()))
    line, buf = read_tagged(sock, buf, b"v0")
    if not line.startswith(b"v0 OK"):
        out.put(("error", line.decode("latin-1")))
        return
    out.put(("ready", None))
    lat = []
    start = due = time.monotonic()
    n = 0
    while due < start + seconds:
        now = time.monotonic()
        if now < due:
            time.sleep(due - now)
        n += 1
        tag = b"n%d" % n
        sock.sendall(tag + b" NOOP\r\n")
        line, buf = read_tagged(sock, buf, tag)
        lat.append(time.monotonic() - due)
        due += NOOP_EVERY
        while due < time.monotonic() - NOOP_EVERY:  # slots missed
            lat.append(time.monotonic() - due)
            due += NOOP_EVERY
    sock.close()
    out.put(("latencies", lat))


# --- attackers and correct logins: one selector loop ------------------------

class Conn:
    """One client connection: kind is "attack" or "login"."""

    def __init__(self, kind, user, password, source, due):
        self.kind = kind
        self.user = user
        self.password = password
        self.source = source
        self.due = due
        self.buf = b""
        self.ntag = 0
        self.greeted = False
        self.sock = None


class Load:
    def __init__(self, port, attackers, rate):
        self.port = port
        self.sel = selectors.DefaultSelector()
        self.attackers = attackers
        self.rate = rate
        self.refusals = 0
        self.unavailable = 0
        self.tried = 0
        self.logged_in = 0
        self.login_lat = []
        self.errors = 0
        self.stopping = False

    def open(self, c):
        c.sock = socket.socket()
        c.sock.setblocking(False)
        if c.source:
            c.sock.bind((c.source, 0))
        try:
            c.sock.connect((HOST, self.port))
        except BlockingIOError:
            pass
        c.buf = b""
        c.greeted = False
        self.sel.register(c.sock, selectors.EVENT_READ, c)

    def close(self, c):
        self.sel.unregister(c.sock)
        c.sock.close()
        c.sock = None

    def send_login(self, c):
        c.ntag += 1
        try:
            c.sock.sendall(b"a%d LOGIN %s \"%s\"\r\n" % (
                c.ntag, c.user.encode(), c.password.encode()))
        except OSError:
            self.closed(c)

    def closed(self, c):
        """The server hung up (BYE after failures): reconnect attackers."""
        self.close(c)
        if c.kind == "attack" and not self.stopping:
            self.open(c)
        elif c.kind == "login":
            self.errors += 1

    def line(self, c, line):
        if not c.greeted:
            c.greeted = True
            self.send_login(c)
            return
        if not line.startswith(b"a%d " % c.ntag):
            return
        if b" NO [UNAVAILABLE]" in line:
            self.unavailable += 1
        if c.kind == "attack":
            if b" NO " in line and b"UNAVAILABLE" not in line:
                self.refusals += 1
            if not self.stopping:
                self.send_login(c)
            return
        if b" OK " in line:
            self.logged_in += 1
            self.login_lat.append(time.monotonic() - c.due)
            try:
                c.sock.sendall(b"z LOGOUT\r\n")
            except OSError:
                pass
        self.close(c)

    def readable(self, c):
        try:
            chunk = c.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.closed(c)
            return
        c.buf += chunk
        while c.sock is not None and b"\r\n" in c.buf:
            line, c.buf = c.buf.split(b"\r\n", 1)
            self.line(c, line)

    def run(self, seconds):
        self.stopping = False
        for i in range(self.attackers):
            src = "127.0.%d.%d" % (2 + i // 250, 1 + i % 250)
            self.open(Conn("attack", ATTACKED, "wrong", src, 0))
        start = time.monotonic()
        next_login = start
        k = 0
        while True:
            now = time.monotonic()
            if now >= start + seconds:
                break
            while next_login <= now:
                self.tried += 1
                self.open(Conn("login", USERS[k % len(USERS)], PASSWORD,
                               None, next_login))
                k += 1
                next_login += 1.0 / self.rate
            for key, _ in self.sel.select(max(0.0, min(
                    next_login - time.monotonic(), 0.05))):
                if key.data.sock is not None:
                    self.readable(key.data)
        self.stopping = True
        for key in list(self.sel.get_map().values()):
            self.close(key.data)


def warm_up(port):
    """Logs every user of the correct logins in once, one after another."""
    for u in USERS:
        with socket.create_connection((HOST, port), timeout=IO_TIMEOUT) as s:
            line, buf = read_tagged(s, b"", b"*")
            s.sendall(b"w LOGIN %s %s\r\n" % (u.encode(), PASSWORD.encode()))
            line, buf = read_tagged(s, buf, b"w")
            if not line.startswith(b"w OK"):
                sys.exit("warm-up login of %s failed: %r" % (u, line))
            s.sendall(b"z LOGOUT\r\n")


def measure(server, args):
    server.start()
    try:
        if not args.cold:
            warm_up(server.port)
        q = multiprocessing.Queue()
        v = multiprocessing.Process(target=victim,
                                    args=(server.port, args.seconds, q))
        v.start()
        kind, val = q.get(timeout=IO_TIMEOUT)
        if kind != "ready":
            sys.exit("%s: the NOOP client could not log in: %s"
                     % (server.name, val))
        load = Load(server.port, args.attackers, args.logins_per_s)
        load.run(args.seconds)
        kind, lat = q.get(timeout=IO_TIMEOUT + args.seconds)
        v.join()
    finally:
        server.stop()
    return {
        "server": server.name,
        "noop_n": len(lat),
        "noop_p50_ms": pct(lat, 50) * 1e3,
        "noop_p99_ms": pct(lat, 99) * 1e3,
        "noop_max_ms": max(lat) * 1e3,
        "logins_tried": load.tried,
        "logins_ok": load.logged_in,
        "login_p50_ms": pct(load.login_lat, 50) * 1e3,
        "login_p99_ms": pct(load.login_lat, 99) * 1e3,
        "wrong_refused": load.refusals,
        "unavailable": load.unavailable,
        "seconds": args.seconds,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--attackers", type=int, default=200)
    ap.add_argument("--logins-per-s", type=float, default=100.0)
    ap.add_argument("--mailrepd", action="append")
    ap.add_argument("--no-dovecot", action="store_true")
    ap.add_argument("--cold", action="store_true",
                    help="no warm-up logins before the burst")
    ap.add_argument("--json")
    args = ap.parse_args()
    binaries = args.mailrepd or [os.environ.get("MAILREPD", "./mailrepd")]
    rows = []
    for i, b in enumerate(binaries + ([] if args.no_dovecot else [None])):
        tmp = tempfile.mkdtemp(prefix="login-burst-")
        os.chmod(tmp, 0o755)    # Dovecot's users reach its directory
        try:
            server = Dovecot(tmp) if b is None else Mailrepd(b, tmp)
            rows.append(measure(server, args))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print("%d clients sending wrong passwords, %g correct logins/s%s, %g s"
          % (args.attackers, args.logins_per_s, " (cold)" if args.cold
             else " (users logged in once before)", args.seconds))
    print("%-28s %8s %8s %8s  %11s %8s %8s  %8s %6s" % (
        "server", "NOOP p50", "p99", "max", "logins ok", "p50", "p99",
        "refused", "UNAV"))
    for r in rows:
        print("%-28s %6.1fms %6.1fms %6.0fms  %5d/%-5d %6.1fms %6.0fms  "
              "%8d %6d" % (
                  r["server"][:28], r["noop_p50_ms"], r["noop_p99_ms"],
                  r["noop_max_ms"], r["logins_ok"], r["logins_tried"],
                  r["login_p50_ms"], r["login_p99_ms"], r["wrong_refused"],
                  r["unavailable"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
