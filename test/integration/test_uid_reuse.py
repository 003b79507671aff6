"""A UID names one message for ever (DESIGN.md, "Rules added after the
first wave"): whatever a split brain, a demote, a rejoin or a
reconciliation brings, no node ever shows two different messages under
one UID of one mailbox and UIDVALIDITY; every conflict converges; and a
mailbox that took acknowledged mail after the other side deleted it
survives.

An IMAP observer watches every node the whole time: it records every
(uid, GUID) it sees per mailbox and UIDVALIDITY on each node, the GUID
being the SHA-256 of the bytes IMAP returns, and fails the test when one
UID ever names two GUIDs.
"""
import hashlib
import imaplib
import json
import re
import sqlite3
import threading
import time

from conftest import DOMAIN, HOST, PASSWORD, free_port, run, run_ok
from test_hard_failover import deliver, pair
from test_reconcile import wait_for_log
from test_replication import (SYNC_DEADLINE, cluster, listing, lmtp_one,
                              message, secret, status)

__all__ = ["cluster", "secret"]

UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
FETCH_UID = re.compile(rb"UID (\d+)")


class Observer(threading.Thread):
    """Polls every node's mailboxes of one user over IMAP (EXAMINE, so it
    changes nothing) and remembers, per node, mailbox name and
    UIDVALIDITY, which GUID each UID named.  A node that is down or
    restarting is skipped for that round."""

    def __init__(self, nodes, user="alice", interval=0.25):
        super().__init__(daemon=True)
        self.nodes = list(nodes.items()) if isinstance(nodes, dict) \
            else list(nodes)
        self.user = user
        self.interval = interval
        self.seen = {}              # (node, mailbox, uidvalidity, uid) -> guid
        self.violations = []
        self.reported = set()
        self.rounds = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            self.observe()
            self.stopping.wait(self.interval)

    def observe(self):
        """One look at every node (also called by the test at points it
        cares about)."""
        for label, node in self.nodes:
            if node.imap_port is None or not node.running():
                continue
            try:
                self.observe_node(label, node)
            except (OSError, EOFError, imaplib.IMAP4.error):
                pass                # down or restarting: next round
        with self.lock:
            self.rounds += 1

    def observe_node(self, label, node):
        c = imaplib.IMAP4(HOST, node.imap_port, timeout=10)
        try:
            c.login(self.user, PASSWORD)
            typ, boxes = c.list()
            names = []
            for line in boxes or []:
                if line is None:
                    continue
                m = re.search(rb'"[^"]*" (.*)$', line)
                if m:
                    names.append(m.group(1).decode().strip('"'))
            for name in names:
                typ, _ = c.select('"%s"' % name, readonly=True)
                if typ != "OK":
                    continue
                uv = c.untagged_responses.get("OK", [])
                uidv = None
                for item in uv:
                    m = UIDVALIDITY.search(item)
                    if m:
                        uidv = int(m.group(1))
                typ, data = c.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
                for item in data or []:
                    if not isinstance(item, tuple):
                        continue
                    m = FETCH_UID.search(item[0])
                    if m:
                        self.record(label, name, uidv, int(m.group(1)),
                                    hashlib.sha256(item[1]).hexdigest())
            c.logout()
        finally:
            try:
                c.shutdown()
            except OSError:
                pass

    def record(self, label, name, uidv, uid, guid):
        key = (label, name, uidv, uid)
        with self.lock:
            was = self.seen.setdefault(key, guid)
            if was != guid and (key, guid) not in self.reported:
                self.reported.add((key, guid))
                self.violations.append(
                    "node %s mailbox %s UIDVALIDITY %s: UID %d named %s "
                    "and then %s" % (label, name, uidv, uid, was[:16],
                                     guid[:16]))

    def settle(self):
        """Waits for two more full rounds (so the final state is seen)."""
        with self.lock:
            want = self.rounds + 2
        end = time.monotonic() + SYNC_DEADLINE
        while time.monotonic() < end:
            with self.lock:
                if self.rounds >= want:
                    return
            time.sleep(0.05)

    def finish(self):
        self.settle()
        self.stopping.set()
        self.join(30)
        assert not self.violations, "\n".join(self.violations)


def mid(tag):
    """The Message-ID message(tag) carries: how a test names a message
    (LMTP adds trace headers, so the GUID is not the body's hash)."""
    return "<%s@test>" % tag


def uids_of(node, mailbox="INBOX"):
    """{uid: Message-ID} of a mailbox, read from the store."""
    db = sqlite3.connect("file:%s/mailrepd.db?mode=ro" % node.data,
                         uri=True, timeout=10)
    try:
        rows = db.execute(
            "SELECT m.uid, b.message_id FROM message m JOIN blob b ON "
            "b.id = m.blob_id JOIN mailbox mb ON mb.id = m.mailbox_id "
            "WHERE mb.name = ?", (mailbox,)).fetchall()
    finally:
        db.close()
    return dict(rows)


def uidnext_of(node, mailbox="INBOX"):
    db = sqlite3.connect("file:%s/mailrepd.db?mode=ro" % node.data,
                         uri=True, timeout=10)
    try:
        return db.execute("SELECT uidnext FROM mailbox WHERE name = ?",
                          (mailbox,)).fetchone()[0]
    finally:
        db.close()


def expunge_uid(node, uid, mailbox="INBOX"):
    c = node.imap("alice")
    assert c.select(mailbox)[0] == "OK"
    assert c.uid("STORE", str(uid), "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert c.expunge()[0] == "OK"
    c.logout()


def demote(a, b):
    """A running master A becomes a replica of B."""
    p = run_ok("demote", "--data", a.data, "--replicate-from",
               "%s:%d" % (HOST, b.repl_port))
    assert "is a replica of" in p.stdout, p.stdout


def settled(*nodes):
    """Waits until every node's store is the same and none has an open
    conflict; returns the listing."""
    end = time.monotonic() + SYNC_DEADLINE * 2
    while time.monotonic() < end:
        got = [listing(n.data) for n in nodes]
        if all(g == got[0] for g in got) and all(
                status(n.data)["conflicts_open"] == 0 for n in nodes):
            return got[0]
        time.sleep(0.1)
    raise AssertionError("not settled:\n%s" % "\n".join(
        "%s %r conflicts_open=%d\nlog:\n%s" % (
            n.data, listing(n.data)[2], status(n.data)["conflicts_open"],
            n.log_text()[-3000:]) for n in nodes))


def check_ok(*nodes):
    for node in nodes:
        p = run("check", "--data", node.data)
        assert p.returncode == 0, p.stdout + p.stderr


def test_expunged_uid_is_not_reused_after_split_brain(server, secret):
    """B is promoted while A is still a master; X reaches A at UID 2 and
    Y reaches B at UID 2; a client on A expunges UID 2; A is demoted.  A
    must never show Y at UID 2: Y moves above both sides' UIDNEXT on
    both nodes, and X stays expunged."""
    a, b = pair(server, secret)
    obs = Observer({"A": a, "B": b})
    obs.start()
    deliver(a, "base")
    settled(a, b)
    run_ok("promote", "--data", b.data)
    wait_for_log(b, "sync.promote")
    assert lmtp_one(a.port, "alice@" + DOMAIN,
                    message("x-on-a"))[0].startswith("250")
    assert lmtp_one(b.port, "alice@" + DOMAIN,
                    message("y-on-b"))[0].startswith("250")
    assert uids_of(a)[2] == mid("x-on-a") and uids_of(b)[2] == mid("y-on-b")
    obs.observe()                   # the observer has seen X at UID 2
    expunge_uid(a, 2)
    obs.observe()
    uidvalidity = listing(a.data)[1]
    demote(a, b)
    settled(a, b)
    obs.finish()
    for node in (a, b):
        got = uids_of(node)
        assert 2 not in got, (node.data, got)
        assert sorted(got.values()) == sorted([mid("base"),
                                               mid("y-on-b")]), got
        assert all(u == 1 or u >= 3 for u in got), got
    assert listing(a.data)[1] == uidvalidity       # no UIDVALIDITY change
    assert status(a.data)["conflicts_open"] == 0
    # A follows B from now on.
    deliver(b, "after")
    settled(a, b)
    check_ok(a, b)


def test_streamed_append_below_uidnext_is_renumbered(cluster):
    """The same rule while streaming: a replica, run on its own for a
    while, delivered X at UID 2 and expunged it; back under its master,
    which meanwhile took Y at UID 2, it resumes the log (no
    reconciliation) and must not show Y at UID 2."""
    master, _ = cluster(0)
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("shared"))[0].startswith("250")
    rep = cluster.replica(master, 0)
    local = rep.__class__(rep.tmp, rep.data, [], imap=True)
    obs = Observer([("M", master), ("R", rep), ("R", local)])
    obs.start()
    settled(master, rep)
    rep.stop()
    local.start()
    assert lmtp_one(local.port, "alice@" + DOMAIN,
                    message("x-local"))[0].startswith("250")
    obs.observe()
    expunge_uid(local, 2)
    obs.observe()
    local.stop()
    y = message("y-master")
    assert lmtp_one(master.port, "alice@" + DOMAIN, y)[0].startswith("250")
    rep.start()
    settled(master, rep)
    obs.finish()
    assert "sync.reconcile.start" not in rep.log_text(since=True)
    got = uids_of(rep)
    assert 2 not in got and mid("y-master") in got.values(), got
    assert all(u == 1 or u >= 3 for u in got), got
    assert uids_of(master) == got
    check_ok(master, rep)


def follow(node, master):
    """Restarts node as a replica of master (its other options kept)."""
    node.stop() if node.running() else None
    node.args = strip_replicate_from(node.args) + [
        "--replicate-from", "%s:%d" % (HOST, master.repl_port)]
    node.start()


def test_two_replicas_rejoin_one_after_the_other(server, secret):
    """R2 is down while 5 messages reach M and R1; M dies; R2 is
    promoted; R1 rejoins, then M rejoins.  Every conflict converges: the
    5 are held once on every node, under the UIDs R2 gave them, and no
    conflict stays open."""
    ports = {n: free_port() for n in ("M", "R1", "R2")}

    def node(name, users=None, follows=None):
        args = ["--repl-listen", "%s:%d" % (HOST, ports[name]),
                "--repl-secret-file", secret, "--name", name]
        if follows:
            args += ["--replicate-from", "%s:%d" % (HOST, ports[follows])]
        kw = {} if users is None else {"users": users}
        n = server(imap=True, args=args, **kw)
        n.repl_port = ports[name]
        return n

    m = node("M")
    r1 = node("R1", users=(), follows="M")
    r2 = node("R2", users=(), follows="M")
    obs = Observer({"M": m, "R1": r1, "R2": r2})
    obs.start()
    for i in range(3):
        deliver(m, "base%d" % i)
    settled(m, r1, r2)
    r2.stop()
    for i in range(5):
        deliver(m, "five%d" % i)
    settled(m, r1)
    m.kill9()
    r2.start()
    run_ok("promote", "--data", r2.data)
    wait_for_log(r2, "sync.promote")
    follow(r1, r2)
    settled(r1, r2)
    follow(m, r2)
    settled(m, r1, r2)
    obs.finish()
    want = sorted(mid("base%d" % i) for i in range(3)) + \
        sorted(mid("five%d" % i) for i in range(5))
    for n in (m, r1, r2):
        got = uids_of(n)
        assert sorted(got.values()) == sorted(want), (n.data, got)
    time.sleep(6)           # a push round: nothing is renumbered again
    assert " again=1" not in r2.log_text(), r2.log_text()[-3000:]
    check_ok(m, r1, r2)


def test_check_reports_duplicates_left_by_renumbering(server, secret):
    """`check` reports a message held twice in one mailbox when
    renumbering left the copy behind (an open conflict's copy beside the
    same message under its new UID), and not a message a user appended
    twice."""
    srv = server(imap=True)
    body = message("twice")
    c = srv.raw("alice")
    c.append("INBOX", body)
    c.append("INBOX", body)
    c.close()
    srv.stop()
    check_ok(srv)                   # the user's own duplicate is fine
    db = sqlite3.connect(str(srv.data / "mailrepd.db"))
    mb = db.execute("SELECT uniqueid FROM mailbox WHERE name = "
                    "'INBOX' AND user_id = (SELECT id FROM user WHERE "
                    "name = 'alice')").fetchone()[0]
    guid = db.execute("SELECT guid FROM blob").fetchone()[0]
    db.execute("INSERT INTO conflict (time, user, mailbox, mailbox_name, "
               "uid, local_guid, master_guid, op, master_seq) VALUES "
               "(0, 'alice', ?, 'INBOX', 1, ?, zeroblob(32), "
               "'message.local', 0)", (mb, guid))
    db.commit()
    db.close()
    p = run("check", "--data", srv.data)
    assert p.returncode != 0, p.stdout + p.stderr
    assert "twice" in (p.stdout + p.stderr), p.stdout + p.stderr


def pair_with_projects(server, secret, n):
    """A master A and a replica B, watched, both holding alice's
    Projects with n messages (old0...)."""
    a, b = pair(server, secret)
    obs = Observer({"A": a, "B": b})
    obs.start()
    c = a.imap("alice")
    assert c.create("Projects")[0] == "OK"
    c.logout()
    for i in range(n):
        assert lmtp_one(a.port, "alice+Projects@" + DOMAIN,
                        message("old%d" % i))[0].startswith("250")
    settled(a, b)
    return a, b, obs


def test_mail_into_a_folder_deleted_on_the_other_side_survives(server,
                                                               secret):
    """B (promoted) deletes Projects; A, still a master, takes 3 LMTP
    deliveries and 2 APPENDs into Projects; A is demoted.  The 5 are
    visible on both nodes afterwards, each once, in a Projects that
    exists again, and the conflict is recorded; what B's client deleted
    stays deleted."""
    a, b, obs = pair_with_projects(server, secret, 2)
    assert len(uids_of(b, "Projects")) == 2
    run_ok("promote", "--data", b.data)
    wait_for_log(b, "sync.promote")
    c = b.imap("alice")
    assert c.delete("Projects")[0] == "OK"
    c.logout()
    new = []
    for i in range(3):
        body = message("lmtp%d" % i)
        assert lmtp_one(a.port, "alice+Projects@" + DOMAIN,
                        body)[0].startswith("250")
        new.append(mid("lmtp%d" % i))
    r = a.raw("alice")
    for i in range(2):
        body = message("append%d" % i)
        r.append("Projects", body)
        new.append(mid("append%d" % i))
    r.close()
    demote(a, b)
    settled(a, b)
    obs.finish()
    for n in (a, b):
        got = uids_of(n, "Projects")
        assert sorted(got.values()) == sorted(new), (n.data, got)
    listed = json.loads(run_ok("conflicts", "list", "--json", "--data",
                               b.data).stdout)
    listed += json.loads(run_ok("conflicts", "list", "--json", "--data",
                                a.data).stdout)
    assert any(k["mailbox"] == "Projects" for k in listed), listed
    check_ok(a, b)


def strip_replicate_from(args):
    """args without a --replicate-from and its value."""
    out, skip = [], False
    for x in args:
        if skip:
            skip = False
        elif x == "--replicate-from":
            skip = True
        else:
            out.append(x)
    return out


def test_deleted_folder_survives_hard_failover_beside_a_new_one(server,
                                                                 secret):
    """The same after a hard failover, and B made a new Projects after
    deleting the old one: the old one survives beside it under another
    name, holding what A took; B's new Projects keeps its own."""
    a, b, obs = pair_with_projects(server, secret, 1)
    b.stop()
    for i in range(3):
        assert lmtp_one(a.port, "alice+Projects@" + DOMAIN,
                        message("lost%d" % i))[0].startswith("250")
    a.kill9()
    b.start()
    run_ok("promote", "--data", b.data)
    wait_for_log(b, "sync.promote")
    c = b.imap("alice")
    assert c.delete("Projects")[0] == "OK"
    assert c.create("Projects")[0] == "OK"
    c.logout()
    assert lmtp_one(b.port, "alice+Projects@" + DOMAIN,
                    message("new-on-b"))[0].startswith("250")
    a.args = strip_replicate_from(a.args) + [
        "--replicate-from", "%s:%d" % (HOST, b.repl_port)]
    a.start()
    wait_for_log(b, "sync.reconcile.revive")
    settled(a, b)
    obs.finish()
    boxes = [x[1] for x in listing(b.data)[1] if x[0] == "alice"]
    aside = [x for x in boxes if x.startswith("Projects-")]
    assert len(aside) == 1, boxes
    for n in (a, b):
        assert sorted(uids_of(n, aside[0]).values()) == sorted(
            mid("lost%d" % i) for i in range(3)), n.data
        assert list(uids_of(n, "Projects").values()) == [mid("new-on-b")]
    check_ok(a, b)
