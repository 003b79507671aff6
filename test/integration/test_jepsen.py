"""A randomized fault test in the spirit of Jepsen: replication safety
under every failover path an operator or a network can take.

Two or three real nodes (each with --repl-listen, so any can be
promoted) replicate through TCP proxies the test controls, one per
directed link (jepsen_net.py).  Each round interleaves, from a seeded
RNG, client operations on whichever node is master -- LMTP deliveries
(some left in the middle of DATA across the next faults), IMAP APPEND,
STORE, MOVE, EXPUNGE, CREATE, DELETE, RENAME -- with faults: kill -9,
SIGSTOP/SIGCONT, link cut/stall/delay/heal, promote, demote (and moving
a replica to another master), drain (its exit status recorded),
SIGTERM restart, and restore of a node from an older copy of its data
directory (copies are taken whenever a node is stopped).  Then
everything is healed (processes continued, links healed, nodes started,
one master chosen, every other node made to follow it), replication
gets a bounded time to settle, and jepsen_history.py checks the
invariants it lists: no acknowledged message lost, no UID naming two
messages, no mailbox that took acknowledged mail silently gone, drain
exit 0 only when its replicas had everything, `mailrepd check` clean.

IMAP sessions observe every mailbox of every node during the run and
after the heal; every (uid, message) a session was shown feeds the UID
checks.  A restore from backup starts a new incarnation of that node's
observations and excuses the acknowledged messages that only the
restored node held (the operator threw them away); nothing else is
excused but what a client expunged or deleted.

Seeded and repeatable up to timing: JEPSEN_SEED (or the list
JEPSEN_SEEDS, each SEED, SEED:ROUNDS or SEED:ROUNDS@LIFE, which starts
at that life) and JEPSEN_ROUNDS, the rounds
per seed.  A cluster lives JEPSEN_LIFE rounds, then a fresh one starts;
JEPSEN_FIRST_LIFE starts at a later life (a failure prints the `make
jepsen` line that replays it).  JEPSEN_NODES forces 2 or 3 nodes;
JEPSEN_KEEP_GOING=1 goes on with a fresh cluster after a failing round
and reports every failure at the end; JEPSEN_VERBOSE=1 prints the
history of passing lives too.  A failing round's data directories, logs,
`status --json` and `conflicts list` of every node, taken as they were
when it failed, are kept under JEPSEN_KEEP_DIR (by default
jepsen-failures in the temporary directory, which pytest's clean-up of
old runs never touches); the report names the directory.  `make check` runs the fixed seeds below;
`make jepsen ROUNDS=N SEED=S` runs long (it sets JEPSEN_ROUNDS and
JEPSEN_SEED; the other settings pass through, as JEPSEN_FIRST_LIFE=L
on its command line or in the environment).
"""
import collections
import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time
import traceback

import pytest

from conftest import (DOMAIN, HOST, USERS, IMAPError, IMAPRaw, LMTPClient,
                      LMTPError, PASSWORD, Server, dot_stuff, free_port,
                      parse_fetch, run, sanitizer_report)
from jepsen_history import History, check_final, marker_of
from jepsen_net import Network
from test_replication import listing, secret

__all__ = ["secret"]

# make check: seed 20 restores masters from old copies (round 5: two
# replicas bring back what the restored master lacks), 11 rejoins two
# replicas after a split, 15 fails over after a burst (each found a bug
# of the first replication code within the rounds given after the colon);
# 23 from life 1 renumbers one message on two masters in turn before the
# first comes back (it lost the message on every node in about half the
# runs).
SEEDS = os.environ.get("JEPSEN_SEED", os.environ.get(
    "JEPSEN_SEEDS", "20:6 11:3 15:2 23:2@1")).split()
ROUNDS = int(os.environ.get("JEPSEN_ROUNDS", "0"))      # 0: as SEEDS say
LIFE = int(os.environ.get("JEPSEN_LIFE", "10"))
FIRST_LIFE = int(os.environ.get("JEPSEN_FIRST_LIFE", "0"))
NODES = int(os.environ.get("JEPSEN_NODES", "0"))     # 0: the RNG picks
KEEP_GOING = os.environ.get("JEPSEN_KEEP_GOING") == "1"
KEEP_DIR = os.environ.get("JEPSEN_KEEP_DIR") or os.path.join(
    tempfile.gettempdir(), "jepsen-failures")
VERBOSE = os.environ.get("JEPSEN_VERBOSE") == "1"   # print every history

STEPS = (8, 14)             # steps per round
FAULT_SHARE = 0.35          # of the steps
CLIENT_TIMEOUT = 5.0        # seconds a client waits for a reply
STOP_DEADLINE = 10.0        # seconds SIGTERM may take
SETTLE = 30.0               # seconds replication gets after the heal
STABLE = 0.5                # seconds a settled state must stay the same
BACKUPS = 3                 # copies of a data directory kept per node
LOG_LINES = 12              # warnings of each node's log in a report
PORT_TRIES = 3              # starts of a node whose port was taken
BOXES = ("Work", "Archive", "Projects", "Trips")
FLAGS = ("\\Seen", "\\Flagged", "$Work")
# Client operations and their weights (a step is a fault instead with
# FAULT_SHARE; fault() weighs the faults that apply).
OPS = (("deliver", 30), ("deliver_begin", 4), ("burst", 3), ("append", 12),
       ("flag", 6), ("expunge", 7), ("move", 7), ("create", 6),
       ("delete", 4), ("rename", 3), ("observe", 6), ("sleep", 6))


class LifeOver(Exception):
    """The cluster cannot go on (a node would not start)."""


Row = collections.namedtuple("Row", "uid marker flags")
Backup = collections.namedtuple("Backup", "path role upstream name")
Pending = collections.namedtuple("Pending", "node inc user marker client "
                                 "rest tag")


def weighted(rng, options):
    """One name of [(weight, name)]."""
    total = sum(w for w, _ in options)
    x = rng.uniform(0, total)
    for w, name in options:
        x -= w
        if x <= 0:
            return name
    return options[-1][1]


def uid_set(text):
    """'3,5:7' -> [3, 5, 6, 7]."""
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition(":")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def quoted(name):
    return '"%s"' % name


class Node:
    """One mailrepd: its Server, the role the test gave it, its copies."""

    def __init__(self, idx, tmp, data):
        self.idx, self.name = idx, "n%d" % idx
        self.repl_port = None           # drawn by the Cluster
        self.srv = Server(tmp, data, imap=True)
        self.role, self.upstream = "master", None
        self.state = "stopped"          # running, paused, stopped
        self.inc = 0                    # restores so far
        self.backups = []

    @property
    def data(self):
        return self.srv.data


class Cluster:
    """A life of 2-3 nodes, the network between them, the clients."""

    def __init__(self, tmp, template, secret, seed, life):
        self.tmp, self.template, self.secret = tmp, template, secret
        self.rng = random.Random("jepsen/%d/%d" % (seed, life))
        self.hist = History(seed, life)
        n = self.rng.choice((2, 3, 3))
        n = NODES or n
        self.nodes = [Node(i, tmp / ("n%d" % i), tmp / ("n%d" % i) / "data")
                      for i in range(n)]
        self.net = Network()
        self.links = {(a.idx, b.idx): self.net.add("%s>%s" % (a.name, b.name))
                      for a in self.nodes for b in self.nodes if a is not b}
        for n in self.nodes:        # after the links hold their ports
            self.move_repl_port(n)
        self.sessions = {}
        self.pending = []
        self.nbackup = 0
        self.guard_seen = set()

    # --- processes --------------------------------------------------------

    def args(self, node):
        a = ["--repl-listen", "%s:%d" % (HOST, node.repl_port),
             "--repl-secret-file", self.secret, "--name", node.name,
             "--drain-timeout", "2"]
        if node.role == "replica":
            a += ["--replicate-from", self.upstream_addr(node,
                                                         node.upstream)]
        return a

    def upstream_addr(self, node, master):
        return "%s:%d" % (HOST, self.links[(node.idx, master.idx)].port)

    def setup(self):
        first = self.nodes[0]
        first.data.parent.mkdir(parents=True)
        shutil.copytree(self.template, first.data)
        self.start(first)
        for n in self.nodes[1:]:
            n.data.parent.mkdir(parents=True)
            n.role, n.upstream = "replica", first
            self.start(n)
        self.hist.note("cluster of %d: n0 master, %s follow it" % (
            len(self.nodes), ", ".join(n.name for n in self.nodes[1:])))
        if not self.settle():
            raise LifeOver("the new cluster did not converge")
        self.observe_all()

    def start(self, node):
        if node.role == "replica" and node.upstream.role != "master":
            masters = [n for n in self.nodes if n.role == "master"]
            if masters:
                node.upstream = self.rng.choice(masters)
        for attempt in range(PORT_TRIES):
            node.srv.args = self.args(node)
            try:
                node.srv.start()
                break
            except pytest.fail.Exception as e:
                node.srv.proc = None
                if "Address already in use" not in node.srv.log_text(
                        since=True) or attempt == PORT_TRIES - 1:
                    self.hist.violation("crash", "%s did not start: %s" % (
                        node.name, str(e)[-2000:]))
                    raise LifeOver("%s did not start" % node.name)
                self.move_repl_port(node)
        node.state = "running"

    def move_repl_port(self, node):
        """Another process took the node's replication port while it
        was down: a new one, and the links to it follow."""
        moved = node.repl_port is not None
        node.repl_port = free_port()
        for (_, dst), link in self.links.items():
            if dst == node.idx:
                link.target = node.repl_port
        if moved:
            self.hist.note("%s listens for replicas on a new port" %
                           node.name)

    def gone(self, node, keep_copy=True):
        """The node's process ended: reap it, drop its sessions, copy
        its data directory, check its log.  Returns " (copy bN)" or ""."""
        node.srv.proc = None
        node.state = "stopped"
        self.drop_sessions(node)
        bad = sanitizer_report(node.srv.log_text())
        if bad:
            self.hist.violation("crash", "%s log: %s" % (node.name, bad))
        return " (copy %s)" % self.backup(node) if keep_copy else ""

    def kill9(self, node, keep_copy=True):
        p = node.srv.proc
        p.kill()
        p.wait()
        return self.gone(node, keep_copy)

    def stop(self, node):
        """SIGTERM: must exit 0 within STOP_DEADLINE."""
        p = node.srv.proc
        if node.state == "paused":
            p.send_signal(signal.SIGCONT)
        p.terminate()
        try:
            p.wait(STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            self.hist.violation("crash", "%s ignored SIGTERM for %.0f s" % (
                node.name, STOP_DEADLINE))
        if p.returncode not in (0, -signal.SIGKILL):
            self.hist.violation("crash", "%s exited %d on SIGTERM" % (
                node.name, p.returncode))
        return self.gone(node)

    def backup(self, node):
        """A copy of a stopped node's data directory, for restores;
        returns its name."""
        self.nbackup += 1
        name = "b%d" % self.nbackup
        path = self.tmp / "backups" / name
        shutil.copytree(node.data, path)
        node.backups.append(Backup(path, node.role, node.upstream, name))
        if len(node.backups) > BACKUPS:
            old = node.backups.pop(0)
            shutil.rmtree(old.path, ignore_errors=True)
        return name

    def check_alive(self):
        for n in self.nodes:
            if n.state != "stopped" and n.srv.proc.poll() is not None:
                self.hist.violation("crash", "%s died on its own (status "
                                    "%d); log tail:\n%s" % (
                                        n.name, n.srv.proc.returncode,
                                        n.srv.log_text()[-3000:]))
                self.hist.note("%s died%s" % (n.name, self.gone(n)))

    def teardown(self):
        """Every process continued and stopped, every socket closed."""
        for s in self.sessions.values():
            s.close()
        for p in self.pending:
            p.client.close()
        for n in self.nodes:
            p = n.srv.proc
            if p is None:
                continue
            if n.state == "paused":
                p.send_signal(signal.SIGCONT)
            p.terminate()
            try:
                p.wait(STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            n.srv.proc = None
        self.net.close()

    # --- clients ----------------------------------------------------------

    def drop_sessions(self, node):
        for key in [k for k in self.sessions if k[0] == node.idx]:
            self.sessions.pop(key).close()

    def imap(self, node, user):
        """A logged-in IMAPRaw on node (kept for the next operation)."""
        key = (node.idx, user)
        if key not in self.sessions:
            s = IMAPRaw(node.srv.imap_port, timeout=CLIENT_TIMEOUT)
            _, done = s.cmd('LOGIN "%s" "%s"' % (user, PASSWORD))
            if not done.startswith("OK"):
                s.close()
                raise IMAPError("LOGIN -> %s" % done)
            self.sessions[key] = s
        return self.sessions[key]

    def forget(self, node, user):
        s = self.sessions.pop((node.idx, user), None)
        if s:
            s.close()

    def examine(self, node, user, box, write=False):
        """SELECT (write) or EXAMINE box and fetch every message's UID,
        flags and marker; records what it saw.  None when refused."""
        s = self.imap(node, user)
        untagged, done = s.cmd("%s %s" % ("SELECT" if write else "EXAMINE",
                                           quoted(box)))
        if not done.startswith("OK"):
            return None
        text = "\n".join(untagged)
        uidv = int(re.search(r"\[UIDVALIDITY (\d+)\]", text).group(1))
        uidnext = re.search(r"\[UIDNEXT (\d+)\]", text)
        uidnext = int(uidnext.group(1)) if uidnext else None
        exists = int(re.search(r"^\* (\d+) EXISTS", text, re.M).group(1))
        rows = []
        if exists:
            untagged, done = s.cmd("UID FETCH 1:* (UID FLAGS BODY.PEEK["
                                   "HEADER.FIELDS (MESSAGE-ID)])")
            if not done.startswith("OK"):
                return None
            for line in untagged:
                if not re.match(r"^\* \d+ FETCH ", line):
                    continue
                _, items = parse_fetch(line)
                body = [v for k, v in items.items() if k.startswith("BODY")]
                if "UID" in items and body:
                    rows.append(Row(items["UID"], marker_of(body[0]),
                                    items.get("FLAGS", [])))
        self.hist.observe(node.name, node.inc, user, box, uidv,
                          [(r.uid, r.marker) for r in rows], uidnext)
        return rows

    def observe_node(self, node):
        """Every mailbox of every user on node, as IMAP shows them:
        {"boxes": {user: names}, "msgs": [(user, box, uid, marker)]}."""
        view = {"boxes": {}, "msgs": []}
        for user in USERS:
            s = self.imap(node, user)
            names = set()
            for line in s.cmd('LIST "" "*"')[0]:
                m = re.match(r'^\* LIST \(([^)]*)\) (?:"[^"]*"|NIL) (.+)$',
                             line)
                if m and "\\Noselect" not in m.group(1):
                    names.add(m.group(2).strip('"'))
            view["boxes"][user] = names
            for box in sorted(names):
                for r in self.examine(node, user, box) or ():
                    view["msgs"].append((user, box, r.uid, r.marker))
        return view

    def observe_all(self):
        for n in self.nodes:
            if n.state == "running":
                try:
                    self.observe_node(n)
                except (OSError, IMAPError):
                    self.drop_sessions(n)

    def body(self, marker, user):
        pad = "".join("%s line %d\r\n" % (marker, i)
                      for i in range(self.rng.randint(0, 40)))
        return ("From: <s@remote.test>\r\nTo: <%s@%s>\r\nSubject: %s\r\n"
                "Message-ID: <%s@jepsen.test>\r\n\r\nbody %s\r\n%s" % (
                    user, DOMAIN, marker, marker, marker, pad)).encode()

    def lmtp_connect(self, node):
        """(LMTP client after LHLO, None) or (None, why not)."""
        try:
            c = LMTPClient(node.srv.port, timeout=CLIENT_TIMEOUT)
        except (OSError, LMTPError) as e:
            return None, "refused: %s" % type(e).__name__
        try:
            reply = c.greeting[-1]
            if reply.startswith("220"):
                reply = c.cmd("LHLO client.test")[-1]
        except (OSError, LMTPError) as e:
            reply = "refused: %s" % type(e).__name__
        if reply.startswith("2"):
            return c, None
        c.close()
        return None, reply

    @staticmethod
    def lmtp_envelope(c, user):
        """MAIL, RCPT, DATA: None at 354, else why not (nothing was
        delivered)."""
        try:
            for line in ("MAIL FROM:<s@remote.test>",
                         "RCPT TO:<%s@%s>" % (user, DOMAIN), "DATA"):
                reply = c.cmd(line)[-1]
                if reply[0] not in "23":
                    return "refused at %s: %s" % (line.split()[0], reply)
        except (OSError, LMTPError) as e:
            return "refused: %s" % type(e).__name__
        return None

    @staticmethod
    def lmtp_data(c, data):
        """Sends (the rest of) DATA; the reply, or 'maybe: why'."""
        try:
            c.send(data)
            return c.reply()[-1]
        except (OSError, LMTPError) as e:
            return "maybe: %s" % str(e)[:60]

    def lmtp_open(self, node, user):
        """A connection at 354, or (None, why not)."""
        c, why = self.lmtp_connect(node)
        if c is not None:
            why = self.lmtp_envelope(c, user)
            if why:
                c.close()
                c = None
        return c, why

    def delivered(self, node, marker, reply, what="deliver"):
        """Records a delivery and its outcome."""
        tag = self.hist.event(node.name, "%s %s %s" % (
            what, self.hist.sent[marker][0], marker), reply[:40])
        self.outcome(marker, reply, tag)

    def outcome(self, marker, reply, tag):
        """Acknowledged (LMTP 250, IMAP OK), unknown ("maybe: ..."), or
        else refused."""
        if reply.startswith(("250", "OK")):
            self.hist.acknowledged(marker, tag)
        elif not reply.startswith("maybe"):
            self.hist.refuse(marker, tag)

    # --- client operations ------------------------------------------------

    def op(self):
        name = weighted(self.rng, [(w, n) for n, w in OPS])
        user = self.rng.choice(USERS)
        running = [n for n in self.nodes if n.state == "running"]
        masters = [n for n in running if n.role == "master"]
        node = None
        if masters and self.rng.random() < 0.9:
            node = self.rng.choice(masters)
        elif running:
            node = self.rng.choice(running)
        if name in ("observe", "sleep"):
            getattr(self, "op_" + name)()
        elif node is None:
            self.hist.event("-", "%s %s" % (name, user), "no node up")
        else:
            try:
                getattr(self, "op_" + name)(node, user)
            except (OSError, IMAPError) as e:
                self.forget(node, user)
                self.hist.event(node.name, "%s %s" % (name, user),
                                "error %s" % str(e)[:60])

    def op_observe(self):
        self.hist.event("-", "observe")
        self.observe_all()

    def op_sleep(self):
        t = self.rng.choice((0.05, 0.2, 0.5))
        self.hist.event("-", "sleep %.2f" % t)
        time.sleep(t)

    def op_deliver(self, node, user):
        m = self.hist.new_marker()
        self.hist.sending(m, user, "INBOX")
        c, why = self.lmtp_open(node, user)
        reply = why or self.lmtp_data(c, dot_stuff(self.body(m, user)))
        if c:
            c.close()
        self.delivered(node, m, reply)

    def op_burst(self, node, user):
        """5-25 deliveries over one connection: enough for renumbering
        and the mass-delete guard to matter."""
        c, why = self.lmtp_connect(node)
        done = []
        for _ in range(self.rng.randint(5, 25)):
            m = self.hist.new_marker()
            self.hist.sending(m, user, "INBOX")
            reply = why or self.lmtp_envelope(c, user) or \
                self.lmtp_data(c, dot_stuff(self.body(m, user)))
            done.append((m, reply))
            if not reply.startswith("250"):
                break
        if c:
            c.close()
        ok = sum(r.startswith("250") for _, r in done)
        tag = self.hist.event(node.name, "burst %s %s-%s" % (
            user, done[0][0], done[-1][0]), "%d x 250%s" % (
                ok, "" if ok == len(done) else ", then " + done[-1][1]))
        for m, reply in done:
            self.outcome(m, reply, tag)

    def op_deliver_begin(self, node, user):
        """An LMTP delivery left in the middle of DATA: it ends a few
        steps later (or at the heal), across whatever faults came."""
        m = self.hist.new_marker()
        self.hist.sending(m, user, "INBOX")
        c, why = self.lmtp_open(node, user)
        if why:
            self.delivered(node, m, why, "deliver-begin")
            return
        data = dot_stuff(self.body(m, user))
        half = len(data) // 2
        try:
            c.send(data[:half])
        except OSError as e:
            c.close()
            self.delivered(node, m, "refused: %s" % type(e).__name__,
                           "deliver-begin")
            return
        tag = self.hist.event(node.name, "deliver-begin %s %s" % (user, m),
                              "in DATA")
        self.pending.append(Pending(node, node.inc, user, m, c,
                                    data[half:], tag))

    def finish_pending(self, all_of_them=False):
        """Ends the in-flight deliveries whose node is not paused."""
        keep = []
        for p in self.pending:
            if p.node.state == "paused" or (
                    not all_of_them and self.rng.random() < 0.5):
                keep.append(p)
                continue
            self.delivered(p.node, p.marker, self.lmtp_data(p.client,
                                                            p.rest),
                           "deliver-end")
            p.client.close()
        self.pending = keep

    def op_append(self, node, user):
        box = self.rng.choice(("INBOX",) + BOXES)
        m = self.hist.new_marker()
        self.hist.sending(m, user, box)
        msg = self.body(m, user)
        try:
            s = self.imap(node, user)
        except (OSError, IMAPError) as e:
            self.forget(node, user)
            self.delivered(node, m, "refused: %s" % str(e)[:40],
                           "append %s" % box)
            return
        t = s.tag()
        try:
            s.send(("%s APPEND %s (\\Seen) {%d+}\r\n" % (
                t, quoted(box), len(msg))).encode() + msg + b"\r\n")
            _, done = s.read_until(t)
        except (OSError, IMAPError) as e:
            self.forget(node, user)
            self.delivered(node, m, "maybe: %s" % str(e)[:40],
                           "append %s" % box)
            return
        u = re.search(r"\[APPENDUID (\d+) (\d+)\]", done)
        self.delivered(node, m, done, "append %s" % box)
        if u:
            self.hist.observe(node.name, node.inc, user, box,
                              int(u.group(1)), [(int(u.group(2)), m)])

    def pick(self, node, user, box, most):
        """SELECTs box and picks 1..most of its messages, half of the
        time among the newest (where a split brain's UIDs collide); []
        if none."""
        rows = [r for r in self.examine(node, user, box, write=True) or ()
                if r.marker]
        if self.rng.random() < 0.5:
            rows = rows[-most:]
        k = min(len(rows), self.rng.randint(1, most))
        return self.rng.sample(rows, k)

    def op_flag(self, node, user):
        box = self.rng.choice(("INBOX",) + BOXES)
        rows = self.pick(node, user, box, 2)
        flag, how = self.rng.choice(FLAGS), self.rng.choice("+-")
        if not rows:
            self.hist.event(node.name, "flag %s %s" % (user, box), "empty")
            return
        _, done = self.imap(node, user).cmd("UID STORE %s %sFLAGS (%s)" % (
            ",".join(str(r.uid) for r in rows), how, flag))
        self.hist.event(node.name, "flag %s %s %s%s %s" % (
            user, box, how, flag, " ".join(r.marker for r in rows)),
            done[:40])

    def op_expunge(self, node, user):
        box = self.rng.choice(("INBOX",) + BOXES)
        rows = self.pick(node, user, box, 2)
        if not rows:
            self.hist.event(node.name, "expunge %s %s" % (user, box),
                            "empty")
            return
        uids = ",".join(str(r.uid) for r in rows)
        markers = [r.marker for r in rows]
        s = self.imap(node, user)
        _, done = s.cmd("UID STORE %s +FLAGS.SILENT (\\Deleted)" % uids)
        if done.startswith("OK"):
            try:
                _, done = s.cmd("UID EXPUNGE %s" % uids)
            except (OSError, IMAPError) as e:
                self.forget(node, user)
                done = "maybe: %s" % str(e)[:40]
        tag = self.hist.event(node.name, "expunge %s %s %s" % (
            user, box, " ".join(markers)), done[:40])
        if done.startswith(("OK", "maybe")):
            self.hist.remove(markers, "expunged %s on %s" % (tag,
                                                              node.name))
            self.hist.client_expunges[user] += len(markers)

    def op_move(self, node, user):
        src = self.rng.choice(("INBOX",) + BOXES)
        dst = self.rng.choice([b for b in ("INBOX",) + BOXES if b != src])
        rows = self.pick(node, user, src, 3)
        if not rows:
            self.hist.event(node.name, "move %s %s" % (user, src), "empty")
            return
        markers = [r.marker for r in rows]
        s = self.imap(node, user)
        try:
            untagged, done = s.cmd("UID MOVE %s %s" % (
                ",".join(str(r.uid) for r in rows), quoted(dst)))
        except (OSError, IMAPError) as e:
            self.forget(node, user)
            untagged, done = [], "maybe: %s" % str(e)[:40]
        self.hist.event(node.name, "move %s %s>%s %s" % (
            user, src, dst, " ".join(markers)), done[:40])
        if done.startswith("maybe"):
            self.hist.moved.update(markers)
        if not done.startswith("OK"):
            return
        self.hist.moved_to(user, markers, dst)
        by_uid = {r.uid: r.marker for r in rows}
        for line in untagged:
            u = re.search(r"\[COPYUID (\d+) ([\d:,]+) ([\d:,]+)\]", line)
            if u:
                pairs = zip(uid_set(u.group(2)), uid_set(u.group(3)))
                self.hist.observe(node.name, node.inc, user, dst,
                                  int(u.group(1)),
                                  [(d, by_uid.get(s)) for s, d in pairs])

    def op_create(self, node, user):
        box = self.rng.choice(BOXES)
        _, done = self.imap(node, user).cmd("CREATE %s" % quoted(box))
        self.hist.event(node.name, "create %s %s" % (user, box), done[:40])

    def op_delete(self, node, user):
        """DELETE; what the client saw in the mailbox just before is
        what it deleted."""
        box = self.rng.choice(BOXES)
        rows = self.examine(node, user, box) or []
        s = self.imap(node, user)
        s.cmd("UNSELECT")
        try:
            _, done = s.cmd("DELETE %s" % quoted(box))
        except (OSError, IMAPError) as e:
            self.forget(node, user)
            done = "maybe: %s" % str(e)[:40]
        markers = [r.marker for r in rows if r.marker]
        tag = self.hist.event(node.name, "delete %s %s (%s)" % (
            user, box, " ".join(markers)), done[:40])
        if done.startswith(("OK", "maybe")):
            self.hist.remove(markers, "deleted with %s %s on %s" % (
                box, tag, node.name))
            self.hist.client_expunges[user] += len(markers)
            self.hist.deleted_box(user, box)

    def op_rename(self, node, user):
        old = self.rng.choice(BOXES)
        new = self.rng.choice([b for b in BOXES if b != old])
        _, done = self.imap(node, user).cmd("RENAME %s %s" % (
            quoted(old), quoted(new)))
        self.hist.event(node.name, "rename %s %s>%s" % (user, old, new),
                        done[:40])
        if done.startswith("OK"):
            self.hist.renamed_box(user, old, new)

    # --- faults -----------------------------------------------------------

    def fault(self):
        up = [n for n in self.nodes if n.state == "running"]
        paused = [n for n in self.nodes if n.state == "paused"]
        masters = [n for n in self.nodes if n.role == "master"]
        options = [(3, "link")]
        if up or paused:
            options.append((3, "kill9"))
        if len(up) > 1:
            options.append((2, "pause"))
        if paused:
            options.append((4, "resume"))
        if any(l.mode != "ok" for l in self.links.values()):
            options.append((3, "heal_link"))
        if any(n.role == "replica" for n in up):
            options.append((2, "promote"))
        if self.moves(up, masters):
            options.append((2, "demote"))
        if any(n.role == "master" for n in up):
            options.append((2, "drain"))
        if any(n.state == "stopped" for n in self.nodes):
            options.append((5, "start"))
        if up:
            options.append((1.5, "restart"))
        if any(n.backups for n in self.nodes):
            options.append((1.5, "restore"))
        getattr(self, "fault_" + weighted(self.rng, options))()

    def moves(self, up, masters):
        """(node, master) pairs a demote may do: a running master to
        follow another master, or a replica to change masters."""
        return [(n, m) for n in up for m in masters if m is not n and
                (n.role == "master" or n.upstream is not m)]

    def choose(self, candidates, node=lambda c: c):
        """One of candidates; half of the time, when there is one, one
        whose node has a delivery in flight (a transaction that then
        spans the fault)."""
        busy = [c for c in candidates
                if any(p.node is node(c) for p in self.pending)]
        if busy and self.rng.random() < 0.5:
            return self.rng.choice(busy)
        return self.rng.choice(candidates)

    def fault_link(self):
        active = [(n.idx, n.upstream.idx) for n in self.nodes
                  if n.role == "replica"]
        key = self.rng.choice(active if active and self.rng.random() < 0.8
                              else sorted(self.links))
        mode = self.rng.choice(("cut", "stall", "delay"))
        delay = self.rng.choice((0.05, 0.2, 0.5)) if mode == "delay" else 0
        self.net.set(self.links[key], mode, delay)
        self.hist.event("net", "%s %s" % (self.links[key].describe(),
                                          self.links[key].name))

    def fault_heal_link(self):
        link = self.rng.choice([l for l in self.links.values()
                                if l.mode != "ok"])
        self.net.heal(link)
        self.hist.event("net", "heal %s" % link.name)

    def fault_kill9(self):
        node = self.choose([n for n in self.nodes if n.state != "stopped"])
        self.hist.event(node.name, "FAULT kill -9" + self.kill9(node))

    def fault_pause(self):
        node = self.choose([n for n in self.nodes if n.state == "running"])
        node.srv.proc.send_signal(signal.SIGSTOP)
        node.state = "paused"
        self.drop_sessions(node)
        self.hist.event(node.name, "FAULT SIGSTOP")

    def fault_resume(self, node=None):
        node = node or self.rng.choice([n for n in self.nodes
                                        if n.state == "paused"])
        node.srv.proc.send_signal(signal.SIGCONT)
        node.state = "running"
        self.hist.event(node.name, "FAULT SIGCONT")

    def fault_promote(self, node=None):
        node = node or self.rng.choice([n for n in self.nodes
                                        if n.state == "running" and
                                        n.role == "replica"])
        p = run("promote", "--data", node.data)
        self.hist.event(node.name, "FAULT promote", "exit %d" % p.returncode)
        if p.returncode == 0:
            node.role, node.upstream = "master", None

    def fault_demote(self):
        up = [n for n in self.nodes if n.state == "running"]
        masters = [n for n in self.nodes if n.role == "master"]
        node, master = self.choose(self.moves(up, masters),
                                   lambda move: move[0])
        followers = [n for n in up if n.role == "replica" and
                     n.upstream is node]
        self.demote(node, master)
        for f in followers:         # as an operator would: no chains
            self.demote(f, master)

    def demote(self, node, master):
        was = node.role
        p = run("demote", "--replicate-from", self.upstream_addr(
            node, master), "--repl-secret-file", self.secret,
            "--data", node.data)
        self.hist.event(node.name, "FAULT %s to follow %s" % (
            "demote" if was == "master" else "move", master.name),
            "exit %d" % p.returncode)
        if p.returncode == 0:
            node.role, node.upstream = "replica", master

    def fault_drain(self):
        """`mailrepd drain`; exit 0 must mean that every replica the
        master knows, and that still follows it, holds all it held."""
        node = self.choose([n for n in self.nodes if n.state ==
                            "running" and n.role == "master"])
        p = run("drain", "--data", node.data)
        try:
            node.srv.proc.wait(STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            self.hist.violation("crash", "%s still runs after drain" %
                                node.name)
            node.srv.proc.kill()
            node.srv.proc.wait()
        copy = self.gone(node)
        tag = self.hist.event(node.name, "FAULT drain" + copy, "exit %d" %
                              p.returncode)
        if p.returncode == 0:
            self.drain_check(node, tag)

    def drain_check(self, node, tag):
        """A master knows its replicas by node id, not by name: a node
        restored from a copy is a new one (store.copy), which the master
        may never have met before the drain."""
        known = {r["node_id"] for r in status(node.data)["replicas"]}
        held = stored(node.data)
        for r in self.nodes:
            if r.role != "replica" or r.upstream is not node or \
                    status(r.data)["node_id"] not in known:
                continue
            missing = held - stored(r.data)
            if missing:
                self.hist.violation("drain-lied", "%s drain %s exit 0 but "
                                    "replica %s lacks %s" % (
                                        node.name, tag, r.name,
                                        " ".join(sorted(
                                            m for _, m in missing))))

    def fault_start(self):
        node = self.rng.choice([n for n in self.nodes
                                if n.state == "stopped"])
        self.start(node)
        self.hist.event(node.name, "FAULT start as %s" % self.role_of(node))

    def fault_restart(self):
        node = self.rng.choice([n for n in self.nodes
                                if n.state == "running"])
        copy = self.stop(node)
        self.start(node)
        self.hist.event(node.name, "FAULT SIGTERM%s, start as %s" % (
            copy, self.role_of(node)))

    def role_of(self, node):
        if node.role == "master":
            return "master"
        return "replica of %s" % node.upstream.name

    def fault_restore(self):
        """Restores a node from an older copy of its data directory.
        What only that node held is lost, and excused; the rest must
        come back."""
        node = self.rng.choice([n for n in self.nodes if n.backups])
        b = self.rng.choice(node.backups)
        if node.state != "stopped":
            self.kill9(node, keep_copy=False)
        others = set()
        for n in self.nodes:
            if n is not node:
                others |= stored(n.data)
        shutil.rmtree(node.data)
        shutil.copytree(b.path, node.data)
        node.role, node.upstream = b.role, b.upstream
        node.inc += 1
        kept = stored(node.data) | others
        survive = self.hist.must_survive()
        lost = sorted(m for m, (user, _, _) in survive.items()
                      if (user, m) not in kept)
        tag = self.hist.event(node.name, "FAULT restore copy %s, "
                              "start as %s" % (b.name, self.role_of(node)),
                              "loses %s" % (" ".join(lost) or "nothing"))
        self.hist.restore_lost(lost, tag)
        self.start(node)

    # --- rounds -----------------------------------------------------------

    def round(self):
        for _ in range(self.rng.randint(*STEPS)):
            self.check_alive()
            if self.rng.random() < FAULT_SHARE:
                self.fault()
            else:
                self.op()
            if self.pending and self.rng.random() < 0.3:
                self.finish_pending()
        self.check_alive()
        self.observe_all()          # each side of a split, before the heal

    def heal(self):
        """Every process continued, every link healed, every node
        started; one master, which every other node follows."""
        self.hist.note("heal")
        for n in self.nodes:
            if n.state == "paused":
                self.fault_resume(n)
        for l in self.links.values():
            if l.mode != "ok":
                self.net.heal(l)
        self.finish_pending(all_of_them=True)
        t0 = time.monotonic()
        for n in self.nodes:
            if n.state == "stopped":
                self.start(n)
                self.hist.event(n.name, "start as %s" % self.role_of(n))
        masters = [n for n in self.nodes if n.role == "master"]
        if not masters:
            self.fault_promote(self.rng.choice(self.nodes))
            masters = [n for n in self.nodes if n.role == "master"]
        master = self.rng.choice(masters)
        for n in self.nodes:
            if n is not master and (n.role == "master" or
                                    n.upstream is not master):
                self.demote(n, master)
        settled = self.settle()
        self.hist.note("settled in %.1f s" % (time.monotonic() - t0))
        return settled

    def settle(self):
        """Waits until every node holds the same, with no open
        conflict and no paused replica; resumes what the mass-delete
        guard paused (as an operator would, after judging the pause)."""
        end = time.monotonic() + SETTLE
        last, asked = None, 0.0
        while True:
            now = time.monotonic()
            views = [listing(n.data) for n in self.nodes]
            same = all(v == views[0] for v in views)
            if same or now - asked > 2:
                asked = now
                sts = [status(n.data) for n in self.nodes]
                paused = [(n, st["paused"]) for n, st in zip(self.nodes,
                                                             sts)
                          if st["paused"]]
                for n, why in paused:
                    self.guard_paused(n, why)
                if same and not paused and all(
                        st["conflicts_open"] == 0 for st in sts):
                    if last == views[0]:
                        return True
                    last = views[0]
                    time.sleep(STABLE)
                    continue
            if now > end:
                sts = [status(n.data) for n in self.nodes]
                self.hist.violation("converge", "not the same after %.0f "
                                    "s:\n%s" % (SETTLE, self.differences(
                                        views, sts)))
                return False
            time.sleep(0.2)

    def differences(self, views, sts):
        """A short account of how the nodes differ."""
        out = []
        ref = set(views[0][2])
        for n, v, st in zip(self.nodes, views, sts):
            msgs = set(v[2])
            out.append("  %s %s: %d messages, %d mailboxes, paused=%s, "
                       "conflicts_open=%d, +%d -%d against %s" % (
                           n.name, self.role_of(n), len(msgs), len(v[1]),
                           st["paused"], st["conflicts_open"],
                           len(msgs - ref), len(ref - msgs),
                           self.nodes[0].name))
        return "\n".join(out)

    def guard_paused(self, node, why):
        """A guard pause is right only when clients removed at least as
        much as it counted; then an operator resumes it."""
        m = re.search(r"(\d+) of user (\S+?)'s (\d+) messages", why)
        if m:
            counted, user = int(m.group(1)), m.group(2)
            made = self.hist.client_expunges[user]
        else:
            m = re.search(r"(\d+) mailbox deletes", why)
            counted = int(m.group(1)) if m else 0
            made = self.hist.client_box_deletes
        if counted > made and (node.name, why) not in self.guard_seen:
            self.guard_seen.add((node.name, why))
            self.hist.violation("guard", "%s paused: %s; clients removed "
                                "%d" % (node.name, why, made))
        p = run("replica", "resume", "--allow-deletes", "--data",
                node.data)
        self.hist.note("%s guard paused (%s): replica resume "
                       "--allow-deletes -> exit %d" % (node.name, why,
                                                       p.returncode))

    def final_checks(self, converged):
        """The invariants on the healed cluster."""
        final = {}
        for n in self.nodes:
            self.drop_sessions(n)
            final[n.name] = self.observe_node(n)
        check_final(self.hist, final)
        for n in self.nodes:
            p = run("check", "--data", n.data)
            if p.returncode != 0 or "0 problems" not in p.stdout:
                self.hist.violation("check", "%s: %s%s" % (
                    n.name, p.stdout[-1500:], p.stderr[-500:]))
            bad = sanitizer_report(n.srv.log_text())
            if bad:
                self.hist.violation("crash", "%s log: %s" % (n.name, bad))
        self.hist.note("checked: %d acknowledged, %d removed by clients, "
                       "%d lost by restores%s" % (
                           len(self.hist.acked), len(self.hist.removed),
                           len(self.hist.lost_by_restore),
                           "" if converged else ", NOT converged"))


def status(data):
    p = run("status", "--json", "--data", data)
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(p.stdout)


def stored(data):
    """{(user, marker)} of every message in a store (running or not)."""
    p = run("messages", "--json", "--data", data)
    assert p.returncode == 0, p.stdout + p.stderr
    return {(m["user"], marker_of(m["message_id"] or ""))
            for m in json.loads(p.stdout)}


def keep(cluster, seed, life, rnd):
    """Copies a failing round's nodes as they are (running ones paused
    meanwhile, so each copy is one instant of its store) to a directory
    of its own under KEEP_DIR: data directory, log, and what `status
    --json` and `conflicts list` say of the live node.  Returns its
    path."""
    dest = os.path.join(KEEP_DIR, "seed%d-life%d-round%d-%d" % (
        seed, life, rnd, os.getpid()))
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    running = [n for n in cluster.nodes if n.state == "running"]
    for n in running:
        n.srv.proc.send_signal(signal.SIGSTOP)
    try:
        for n in cluster.nodes:
            if n.data.exists():
                shutil.copytree(n.data, os.path.join(dest, n.name))
            if n.srv.log.exists():
                shutil.copy(n.srv.log, os.path.join(dest, n.name + ".log"))
    finally:
        for n in running:
            n.srv.proc.send_signal(signal.SIGCONT)
    for n in cluster.nodes:
        if not n.data.exists():
            continue
        for what in (("status", "--json"), ("conflicts", "list")):
            p = run(*what, "--data", n.data)
            with open(os.path.join(dest, "%s.%s" % (n.name, what[0])),
                      "w") as f:
                f.write(p.stdout + p.stderr)
    with open(os.path.join(dest, "history"), "w") as f:
        f.write(cluster.hist.text() + "\n")
    return dest


def report(cluster, seed, life, rnd, error=None):
    """The failure text: seed, round, replay settings, violations with
    the history lines about their messages, the whole history."""
    h = cluster.hist
    # make jepsen sets JEPSEN_SEED and JEPSEN_ROUNDS from SEED and ROUNDS;
    # the other settings pass through, and these two shape the life.
    shape = "".join(" %s=%s" % (k, os.environ[k])
                    for k in ("JEPSEN_LIFE", "JEPSEN_NODES")
                    if os.environ.get(k))
    out = ["jepsen: seed %d, life %d (a cluster of %d), round %d failed" % (
        seed, life, len(cluster.nodes), rnd),
        "replay: make jepsen SEED=%d ROUNDS=%d JEPSEN_FIRST_LIFE=%d%s" % (
            seed, rnd + 1, life, shape)]
    if error:
        out.append("error: " + error)
    for r, kind, text in h.violations:
        out.append("- %s (round %d): %s" % (kind, r, text))
        for m in sorted(set(re.findall(r"\bm\d{5}\b", text)))[:4]:
            out.extend("      " + l for l in h.about(m))
    try:
        out.append("kept: " + keep(cluster, seed, life, rnd))
    except Exception:
        out.append("kept: nothing, " + traceback.format_exc())
    out.append("history:")
    out.append(h.text())
    for n in cluster.nodes:
        lines = [l for l in n.srv.log_text().splitlines()
                 if " warn " in l or " error " in l]
        out.append("%s log %s, last warnings of %d:" % (n.name, n.srv.log,
                                                       len(lines)))
        out.extend("  " + l[:220] for l in lines[-LOG_LINES:])
    return "\n".join(out)


def run_life(tmp, template, secret, seed, life, rounds):
    """Runs up to `rounds` rounds on a new cluster; returns (rounds
    run, failure text or None)."""
    c = Cluster(tmp / ("life%d" % life), template, secret, seed, life)
    rnd = 0
    try:
        c.setup()
        for rnd in range(rounds):
            t0 = time.monotonic()
            c.hist.round, c.hist.step = rnd, 0
            c.round()
            converged = c.heal()
            c.final_checks(converged)
            print("jepsen: seed %d life %d round %d: %d steps, %d "
                  "violations, %.1f s" % (seed, life, rnd, c.hist.step,
                                          len(c.hist.violations),
                                          time.monotonic() - t0))
            if c.hist.violations:
                return rnd + 1, report(c, seed, life, rnd)
        if VERBOSE:
            print(c.hist.text())
        return rounds, None
    except LifeOver as e:
        return rnd + 1, report(c, seed, life, rnd, str(e))
    except Exception:
        return rnd + 1, report(c, seed, life, rnd, traceback.format_exc())
    finally:
        c.teardown()


@pytest.mark.parametrize("spec", SEEDS)
def test_jepsen(spec, tmp_path, template_data, secret):
    seed, _, rest = spec.partition(":")
    rounds, _, first = rest.partition("@")
    seed, rounds = int(seed), ROUNDS or int(rounds or 3)
    failures, done, life = [], 0, int(first) if first else FIRST_LIFE
    t0 = time.monotonic()
    while done < rounds:
        n, failure = run_life(tmp_path, template_data, secret, seed, life,
                              min(LIFE, rounds - done))
        done += n
        life += 1
        if failure:
            failures.append(failure)
            if not KEEP_GOING:
                break
            # Printed now too: a long run stopped early loses nothing.
            print(failure, flush=True)
    print("jepsen: seed %d, %d rounds in %.0f s, %d failed" % (
        seed, done, time.monotonic() - t0, len(failures)))
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)
