#!/usr/bin/env python3
"""bench/repl_bench.py — replication lag and catch-up (issue 5).

Starts a master and a replica of ./mailrepd (or --mailrepd / $MAILREPD)
on 127.0.0.1 in a temporary directory, with a 0600 secret file, and
measures:

  trickle   lag of one message at a time: from the LMTP 250 on the master
            to the replica's IMAP IDLE "* N EXISTS" for it (user "probe",
            its INBOX selected on the replica in IDLE); p50/p99 over
            --trickle messages, one every --gap seconds
  load      the same probes while other threads deliver to user "load" at
            --load-share (default 0.5) of the master's maximum LMTP rate,
            measured first with bench/lmtp_load (c=8, 4 KiB)
  catchup   the replica stopped, --catchup messages delivered to the
            master (bench/lmtp_load, c=8, 4 KiB), the replica started;
            messages/s from its start until its applied position (read
            with `mailrepd status --json --data DIR` on its directory)
            equals the master's log head, and from its first applied
            position change (start-up and handshake excluded); the
            replica's RSS, sampled at each poll, and its peak (VmHWM)
  throughput  the master's LMTP rate with the replica connected
            (bench/lmtp_load, 4 KiB, --throughput messages at c=1, then
            at c=8), with the master's --repl-sync-timeout set to
            --sync-timeout MS (0: asynchronous, the default); run it once
            with 0 and once with a timeout to compare, and the master's
            sync counters (mailrepd status) are reported with it

  --cyrus-bin DIR  then the same trickle and catch-up with Cyrus
            (cyrus-imapd 3.6): two instances in the temporary directory
            (`master` each, cyrus.conf and imapd.conf written here), the
            master with sync_log, `sync_client -r` (rolling) to the
            replica's sync_server; users created over IMAP as admin.  Lag
            is from the master's LMTP 250 to the replica's STATUS INBOX
            showing it (polled every ms: Cyrus IDLE needs idled); catch-up
            stops sync_client, delivers --catchup messages, starts it.
            Needs root (Cyrus runs as user cyrus).  DIR: Debian's
            /usr/lib/cyrus/bin, or one unpacked with `dpkg-deb -x` from
            `apt-get download cyrus-imapd cyrus-replication` where those
            cannot be installed (they conflict with dovecot-imapd).

Prints one JSON line per figure on stdout and a summary on stderr.
Only 127.0.0.1 is contacted; every loop is bounded.  Figures only.
"""
import argparse
import imaplib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HOST = "127.0.0.1"
PASSWORD = "bench-pass"
DOMAIN = "example.com"
BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)


def say(*a):
    print("repl_bench:", *a, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_port(port, proc, deadline=20.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("server exited with %d" % proc.returncode)
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("port %d never accepted" % port)


def stop_proc(proc):
    """SIGTERM, then SIGKILL after 20 s, to a server we started."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Node:
    def __init__(self, mailrepd, tmp, name, args):
        self.mailrepd = mailrepd
        self.data = os.path.join(tmp, name)
        self.name = name
        self.lmtp = free_port()
        self.imap = free_port()
        self.args = args
        self.log = os.path.join(tmp, name + ".log")
        self.proc = None

    def start(self):
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [self.mailrepd, "serve", "--data", self.data,
             "--lmtp", "%s:%d" % (HOST, self.lmtp),
             "--imap", "%s:%d" % (HOST, self.imap),
             "--name", self.name] + self.args,
            stdout=logf, stderr=logf)
        logf.close()
        wait_port(self.imap, self.proc)
        wait_port(self.lmtp, self.proc)

    def stop(self):
        stop_proc(self.proc)
        self.proc = None

    def status(self):
        p = subprocess.run([self.mailrepd, "status", "--json", "--data",
                            self.data], capture_output=True, text=True,
                           timeout=30)
        if p.returncode != 0:
            return None
        return json.loads(p.stdout)


def user_add(mailrepd, data, name):
    subprocess.run([mailrepd, "user", "add", name, "--data", data],
                   input=PASSWORD + "\n", text=True, check=True,
                   capture_output=True, timeout=30)


def message(tag, size=4096):
    head = ("From: <s@remote.test>\r\nTo: <probe@%s>\r\nSubject: %s\r\n"
            "Message-ID: <%s@bench>\r\n\r\n" % (DOMAIN, tag, tag))
    pad = ("x" * 76 + "\r\n") * max(0, (size - len(head)) // 78)
    return (head + pad).encode()


class LMTP:
    """A minimal LMTP client: one connection, one transaction at a time."""

    def __init__(self, port):
        self.s = socket.create_connection((HOST, port), timeout=30)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.s.makefile("rb")
        self.reply()
        self.cmd(b"LHLO bench")

    def reply(self):
        lines = []
        while True:
            line = self.f.readline()
            if not line:
                raise RuntimeError("LMTP connection closed")
            lines.append(line)
            if line[3:4] != b"-":
                return lines

    def cmd(self, c):
        self.s.sendall(c + b"\r\n")
        r = self.reply()
        if not r[-1][:1] in (b"2", b"3"):
            raise RuntimeError("LMTP %r: %r" % (c, r))
        return r

    def deliver(self, rcpt, body):
        """Pipelined MAIL/RCPT/DATA; returns the time of the final 250."""
        self.s.sendall(b"MAIL FROM:<s@remote.test>\r\nRCPT TO:<%s>\r\n"
                       b"DATA\r\n" % rcpt.encode())
        for want in (b"250", b"250", b"354"):
            r = self.reply()
            if not r[-1].startswith(want):
                raise RuntimeError("LMTP: %r" % r)
        self.s.sendall(body.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        r = self.reply()
        t = time.monotonic()
        if not r[-1].startswith(b"250"):
            raise RuntimeError("LMTP DATA: %r" % r)
        return t

    def close(self):
        try:
            self.s.sendall(b"QUIT\r\n")
        except OSError:
            pass
        self.s.close()


class Idler:
    """The replica's probe INBOX in IDLE; notes when each EXISTS arrives."""

    def __init__(self, port, user):
        self.c = imaplib.IMAP4(HOST, port)
        self.c.login(user, PASSWORD)
        typ, d = self.c.select("INBOX", readonly=True)
        self.exists = int(d[0])
        self.seen = {}          # exists count -> monotonic time
        self.cond = threading.Condition()
        self.c.send(b"i1 IDLE\r\n")
        line = self.c.readline()
        if not line.startswith(b"+"):
            raise RuntimeError("IDLE refused: %r" % line)
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            try:
                line = self.c.readline()
            except OSError:
                return
            if not line:
                return
            now = time.monotonic()
            parts = line.split()
            if len(parts) >= 3 and parts[0] == b"*" and \
                    parts[2].upper() == b"EXISTS":
                n = int(parts[1])
                with self.cond:
                    for k in range(self.exists + 1, n + 1):
                        self.seen.setdefault(k, now)
                    self.exists = max(self.exists, n)
                    self.cond.notify_all()

    def wait_for(self, n, deadline=10.0):
        end = time.monotonic() + deadline
        with self.cond:
            while n not in self.seen:
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.seen[n]

    def close(self):
        self.stop = True
        try:
            self.c.send(b"DONE\r\n")
            self.c.shutdown()
        except OSError:
            pass


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return None
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def probe(master, idler, n, gap, tag):
    """n probe messages, one at a time; returns the lags in ms."""
    lm = LMTP(master.lmtp)
    lags = []
    lost = 0
    try:
        for i in range(n):
            want = idler.exists + 1
            t250 = lm.deliver("probe@" + DOMAIN,
                              message("%s-%d-%f" % (tag, i, time.time())))
            seen = idler.wait_for(want)
            if seen is None:
                lost += 1
                # resynchronise on what the replica has
                idler.exists = max(idler.exists, want)
                continue
            lags.append(max(0.0, seen - t250) * 1000.0)
            time.sleep(gap)
    finally:
        lm.close()
    return lags, lost


def lmtp_load(port, messages, conns=8, size=4096, user="load",
              domain=True):
    p = subprocess.run(
        [os.path.join(BENCH, "lmtp_load"), "--port", str(port),
         "--connections", str(conns), "--messages", str(messages),
         "--size", str(size), "--pipelining",
         "--users", "%s@%s" % (user, DOMAIN) if domain else user,
         "--json"],
        capture_output=True, text=True, timeout=900)
    return json.loads(p.stdout.strip().splitlines()[-1])


class Paced:
    """Threads delivering to user "load" at `rate` msg/s in total."""

    def __init__(self, port, rate, threads=4):
        self.rate = rate
        self.stop = False
        self.sent = 0
        self.errors = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run,
                                         args=(port, rate / threads, i),
                                         daemon=True)
                        for i in range(threads)]
        self.t0 = time.monotonic()
        for t in self.threads:
            t.start()

    def run(self, port, rate, idx):
        lm = LMTP(port)
        k = 0
        t0 = time.monotonic() + idx / (rate * len(self.threads))
        try:
            while not self.stop and k < 10 ** 6:
                due = t0 + k / rate
                d = due - time.monotonic()
                if d > 0:
                    time.sleep(d)
                try:
                    lm.deliver("load@" + DOMAIN,
                               message("load-%d-%d" % (idx, k)))
                    with self.lock:
                        self.sent += 1
                except (OSError, RuntimeError):
                    with self.lock:
                        self.errors += 1
                    lm = LMTP(port)
                k += 1
        finally:
            lm.close()

    def finish(self):
        self.stop = True
        for t in self.threads:
            t.join(30)
        return self.sent / (time.monotonic() - self.t0)


def emit(d):
    print(json.dumps(d), flush=True)


def cpu_of(pid):
    """User + system CPU seconds of a process so far."""
    with open("/proc/%d/stat" % pid) as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid, field="VmRSS"):
    """A process's resident memory (or its peak, VmHWM) in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def applied_of(node):
    st = node.status()
    if st is None or st.get("role") != "replica":
        return None
    return (st.get("master") or {}).get("applied")


CYRUS_BIN = "/usr/lib/cyrus/bin"


class CyrusNode:
    """One Cyrus instance (cyrus-imapd 3.6) in tmp/NAME, run by `master`.

    Every daemon gets -C with this instance's imapd.conf (master does not
    pass its own on).  Passwords are not checked (sasl_pwcheck_method:
    alwaystrue): 127.0.0.1 only.  bindir holds imapd, sync_server and
    sync_client (cyrus-imapd and cyrus-replication); lmtpd, ctl_cyrusdb
    and master come from cyrus-common in CYRUS_BIN."""

    def __init__(self, tmp, name, bindir, role, sync_port):
        self.dir = os.path.join(tmp, name)
        self.name = name
        self.bindir = bindir
        self.imap = free_port()
        self.lmtp = free_port()
        self.sync_port = sync_port
        self.role = role
        self.conf = os.path.join(self.dir, "imapd.conf")
        self.proc = None
        for d in ("config", "spool", "run/socket", "run/lock", "run/proc"):
            os.makedirs(os.path.join(self.dir, d))
        r = self.dir
        conf = ["configdirectory: %s/config" % r,
                "partition-default: %s/spool" % r,
                "defaultpartition: default",
                "proc_path: %s/run/proc" % r,
                "mboxname_lockpath: %s/run/lock" % r,
                "lmtpsocket: %s/run/socket/lmtp" % r,
                "idlesocket: %s/run/socket/idle" % r,
                "notifysocket: %s/run/socket/notify" % r,
                "admins: cyrus", "allowplaintext: yes",
                "sasl_pwcheck_method: alwaystrue",
                "sasl_mech_list: PLAIN", "virtdomains: no",
                "syslog_prefix: cyrus-bench-%s" % name]
        if role == "master":
            # INBOX made on delivery; on the replica only by sync_server
            # (one made there at login would be replaced, its messages
            # lost)
            conf += ["autocreate_post: 1", "autocreate_quota: 0",
                     "sync_log: 1", "sync_host: 127.0.0.1",
                     "sync_port: %d" % sync_port, "sync_authname: cyrus",
                     "sync_password: %s" % PASSWORD, "sync_try_imap: 0",
                     # the log is read again at once (default: 1 s)
                     "sync_repeat_interval: 0"]
        with open(self.conf, "w") as f:
            f.write("\n".join(conf) + "\n")
        c = " -C " + self.conf
        svc = ['  imap cmd="%s/imapd%s" listen="%s:%d" prefork=1' %
               (bindir, c, HOST, self.imap),
               '  lmtp cmd="%s/lmtpd%s -a" listen="%s:%d" prefork=1' %
               (CYRUS_BIN, c, HOST, self.lmtp)]
        if role == "replica":
            svc.append('  syncserver cmd="%s/sync_server%s" listen="%s:%d" '
                       'prefork=1' % (bindir, c, HOST, sync_port))
        with open(os.path.join(self.dir, "cyrus.conf"), "w") as f:
            f.write('START {\n  recover cmd="%s/ctl_cyrusdb%s -r"\n}\n'
                    'SERVICES {\n%s\n}\nEVENTS {\n}\nDAEMON {\n}\n' %
                    (CYRUS_BIN, c, "\n".join(svc)))
        shutil.chown(tmp, "cyrus", "mail")
        for root, dirs, files in os.walk(self.dir):
            for x in dirs + files:
                shutil.chown(os.path.join(root, x), "cyrus", "mail")
        shutil.chown(self.dir, "cyrus", "mail")

    def start(self):
        self.proc = subprocess.Popen(
            [os.path.join(CYRUS_BIN, "master"), "-C", self.conf, "-M",
             os.path.join(self.dir, "cyrus.conf"), "-p",
             os.path.join(self.dir, "master.pid")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        wait_port(self.imap, self.proc)
        wait_port(self.lmtp, self.proc)

    def stop(self):
        stop_proc(self.proc)
        self.proc = None

    def imap_login(self, user):
        c = imaplib.IMAP4(HOST, self.imap)
        c.login(user, PASSWORD)
        return c


def as_cyrus():
    import pwd
    pw = pwd.getpwnam("cyrus")
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)


class SyncClient:
    """`sync_client -r` (rolling replication) of a Cyrus master."""

    def __init__(self, master):
        self.master = master
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [os.path.join(self.master.bindir, "sync_client"), "-C",
             self.master.conf, "-r"], preexec_fn=as_cyrus,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)

    def pids(self):
        """sync_client -r goes into the background: find it by its
        command line, which names this master's imapd.conf."""
        want = [os.path.join(self.master.bindir, "sync_client"), "-C",
                self.master.conf, "-r"]
        found = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    argv = f.read().decode(errors="replace").split("\0")
            except OSError:
                continue
            if argv[:4] == want:
                found.append(int(d))
        return found

    def stop(self):
        if self.proc:
            self.proc.wait(20)      # the parent exits at once
        for _ in range(200):
            pids = self.pids()
            if not pids:
                break
            for p in pids:
                try:
                    os.kill(p, 15)
                except OSError:
                    pass
            time.sleep(0.1)
        self.proc = None


def cyrus_count(c):
    """Messages in INBOX; 0 while it does not exist (not synced yet)."""
    typ, d = c.status("INBOX", "(MESSAGES)")
    if typ != "OK":
        return 0
    return int(d[0].split(b"MESSAGES ")[1].split(b")")[0])


def cyrus_wait(c, n, deadline):
    """Polls STATUS every ms until INBOX holds n messages; time or None."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if cyrus_count(c) >= n:
            return time.monotonic()
        time.sleep(0.001)
    return None


def cyrus_bench(a, tmp):
    """The same trickle and catch-up figures for Cyrus sync_client -r."""
    sport = free_port()
    cm = CyrusNode(tmp, "cyrus-master", a.cyrus_bin, "master", sport)
    cr = CyrusNode(tmp, "cyrus-replica", a.cyrus_bin, "replica", sport)
    sc = SyncClient(cm)
    try:
        cm.start()
        cr.start()
        adm = cm.imap_login("cyrus")
        for u in ("probe", "load"):
            adm.create("user." + u)
        adm.logout()
        sc.start()
        probe_c = cr.imap_login("probe")
        # the first sync (users, mailboxes) and its login
        lm = LMTP(cm.lmtp)
        lm.deliver("probe", message("cyrus-warm"))
        if cyrus_wait(probe_c, 1, 60) is None:
            raise RuntimeError("Cyrus replica never got a message")
        lags = []
        for i in range(a.trickle):
            have = cyrus_count(probe_c)
            t250 = lm.deliver("probe", message("cyrus-%d-%f" %
                                               (i, time.time())))
            seen = cyrus_wait(probe_c, have + 1, 10)
            if seen is not None:
                lags.append((seen - t250) * 1000.0)
            time.sleep(a.gap)
        lm.close()
        r = {"figure": "cyrus_trickle", "messages": len(lags),
             "lost": a.trickle - len(lags), "gap_s": a.gap,
             "poll": "STATUS every 1 ms",
             "p50_ms": round(pct(lags, 50), 2),
             "p99_ms": round(pct(lags, 99), 2),
             "max_ms": round(max(lags), 2)}
        emit(r)
        say("cyrus trickle", r)

        if "catchup" in a.only.split(","):
            sc.stop()
            res = lmtp_load(cm.lmtp, a.cyrus_catchup or a.catchup,
                            user="load", domain=False)
            say("cyrus: delivered %d messages while sync_client was "
                "stopped (%.0f msg/s)" % (res["messages"],
                                          res["messages_per_s"]))
            load_c = cr.imap_login("load")
            base = cyrus_count(load_c)
            t0 = time.monotonic()
            sc.start()
            t_first = None
            n = base
            end = t0 + 900
            while time.monotonic() < end:
                n = cyrus_count(load_c)
                if t_first is None and n > base:
                    t_first, first_n = time.monotonic(), n
                if n >= base + res["messages"]:
                    break
                time.sleep(0.05)
            t1 = time.monotonic()
            r = {"figure": "cyrus_catchup", "messages": res["messages"],
                 "seconds": round(t1 - t0, 2),
                 "messages_per_s": round((n - base) / (t1 - t0), 1),
                 "done": n >= base + res["messages"]}
            if t_first is not None and t1 > t_first:
                r["messages_per_s_after_first"] = round(
                    (n - first_n) / (t1 - t_first), 1)
            emit(r)
            say("cyrus catchup", r)
            load_c.logout()
        probe_c.logout()
    finally:
        sc.stop()
        cr.stop()
        cm.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mailrepd", default=os.environ.get(
        "MAILREPD", os.path.join(ROOT, "mailrepd")))
    ap.add_argument("--trickle", type=int, default=300)
    ap.add_argument("--gap", type=float, default=0.02,
                    help="seconds between probes (default 0.02)")
    ap.add_argument("--load-share", type=float, default=0.5)
    ap.add_argument("--max-messages", type=int, default=3000,
                    help="messages for the max-rate measurement")
    ap.add_argument("--catchup", type=int, default=20000)
    ap.add_argument("--throughput", type=int, default=2000,
                    help="messages per connection count (default 2000)")
    ap.add_argument("--sync-timeout", type=int, default=0,
                    help="the master's --repl-sync-timeout MS (default 0)")
    ap.add_argument("--only", default="trickle,load,catchup")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--cyrus-bin", default=None,
                    help="directory with Cyrus imapd, sync_server and "
                    "sync_client: run the same trickle and catch-up "
                    "with Cyrus rolling replication too (as root)")
    ap.add_argument("--cyrus-catchup", type=int, default=0,
                    help="messages for Cyrus's catch-up (default: "
                    "--catchup; its LMTP is slower)")
    a = ap.parse_args()
    only = set(a.only.split(","))
    subprocess.run(["make", "-s", "-C", BENCH, "lmtp_load"], check=True,
                   stdout=sys.stderr)

    tmp = tempfile.mkdtemp(prefix="mailrepd-repl.")
    secret = os.path.join(tmp, "repl.secret")
    with open(os.open(secret, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    rport = free_port()
    master = Node(a.mailrepd, tmp, "master", [
        "--repl-listen", "%s:%d" % (HOST, rport),
        "--repl-secret-file", secret,
        "--repl-sync-timeout", str(a.sync_timeout)])
    replica = Node(a.mailrepd, tmp, "replica", [
        "--replicate-from", "%s:%d" % (HOST, rport),
        "--repl-secret-file", secret])
    for u in ("probe", "load"):
        user_add(a.mailrepd, master.data, u)
    idler = None
    try:
        master.start()
        replica.start()
        # wait until the replica has the users
        end = time.monotonic() + 30
        head = master.status()["log_head"]
        while applied_of(replica) != head and time.monotonic() < end:
            time.sleep(0.05)
        idler = Idler(replica.imap, "probe")

        if "trickle" in only:
            probe(master, idler, 20, a.gap, "warm")
            lags, lost = probe(master, idler, a.trickle, a.gap, "trickle")
            r = {"figure": "trickle", "messages": len(lags), "lost": lost,
                 "gap_s": a.gap, "p50_ms": round(pct(lags, 50), 2),
                 "p99_ms": round(pct(lags, 99), 2),
                 "max_ms": round(max(lags), 2)}
            emit(r)
            say("trickle", r)

        if "load" in only:
            mx = lmtp_load(master.lmtp, a.max_messages)
            emit({"figure": "max_lmtp", **mx})
            say("master max LMTP rate (c=8, 4 KiB): %.1f msg/s" %
                mx["messages_per_s"])
            rate = mx["messages_per_s"] * a.load_share
            paced = Paced(master.lmtp, rate)
            time.sleep(1.0)
            lags, lost = probe(master, idler, a.trickle, a.gap, "load")
            got = paced.finish()
            r = {"figure": "load", "target_msg_s": round(rate, 1),
                 "achieved_msg_s": round(got, 1), "errors": paced.errors,
                 "messages": len(lags), "lost": lost,
                 "p50_ms": round(pct(lags, 50), 2),
                 "p99_ms": round(pct(lags, 99), 2),
                 "max_ms": round(max(lags), 2)}
            emit(r)
            say("load", r)

        if "throughput" in only:
            for conns in (1, 8):
                res = lmtp_load(master.lmtp, a.throughput, conns)
                r = {"figure": "throughput", "sync_timeout_ms":
                     a.sync_timeout, "connections": conns,
                     "messages": res["messages"],
                     "failures": res["failures"],
                     "messages_per_s": res["messages_per_s"],
                     "p50_ms": res["p50_ms"], "p99_ms": res["p99_ms"]}
                emit(r)
                say("throughput", r)
            time.sleep(1.5)     # the counters reach the store each second
            r = {"figure": "sync_counters", **master.status()["sync"]}
            emit(r)
            say("sync counters", r)

        if "catchup" in only:
            idler.close()
            idler = None
            end = time.monotonic() + 120
            head = master.status()["log_head"]
            while applied_of(replica) != head and time.monotonic() < end:
                time.sleep(0.1)
            replica.stop()
            base = applied_of(replica)
            res = lmtp_load(master.lmtp, a.catchup)
            head = master.status()["log_head"]
            say("delivered %d messages while the replica was down "
                "(%.0f msg/s); replica at %s, master head %d" % (
                    res["messages"], res["messages_per_s"], base, head))
            mcpu0 = cpu_of(master.proc.pid)
            t0 = time.monotonic()
            replica.start()
            t_first = None
            first_pos = base
            applied = base
            end = t0 + 600
            rss_max = 0
            while time.monotonic() < end:
                applied = applied_of(replica)
                rss_max = max(rss_max, rss_kib(replica.proc.pid) or 0)
                now = time.monotonic()
                if t_first is None and applied is not None and \
                        applied != base:
                    t_first, first_pos = now, applied
                if applied == head:
                    break
                time.sleep(0.05)
            t1 = time.monotonic()
            rcpu = cpu_of(replica.proc.pid)
            mcpu = cpu_of(master.proc.pid) - mcpu0
            recs = head - base
            r = {"figure": "catchup", "messages": res["messages"],
                 "records": recs, "seconds": round(t1 - t0, 2),
                 "messages_per_s": round(res["messages"] / (t1 - t0), 1),
                 "done": applied == head,
                 "replica_cpu_s": round(rcpu, 2),
                 "master_cpu_s": round(mcpu, 2),
                 "replica_rss_max_kib": rss_max,
                 "replica_rss_peak_kib": rss_kib(replica.proc.pid,
                                                 "VmHWM")}
            if t_first is not None and t1 > t_first:
                r["messages_per_s_after_first"] = round(
                    (head - first_pos) * res["messages"] / max(recs, 1) /
                    (t1 - t_first), 1)
            emit(r)
            say("catchup", r)
    finally:
        if idler:
            idler.close()
        replica.stop()
        master.stop()
    try:
        if a.cyrus_bin:
            cyrus_bench(a, tmp)
    finally:
        if a.keep:
            say("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
