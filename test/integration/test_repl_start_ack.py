"""The START that ends a reconciliation is acknowledged, and until then
the replica counts as reconciling.

A replica commits the position START names (the head the comparison
began at) and only then ACKs it.  Its master must not count the replica
as holding that position before the ACK: the replica's commit may fail
(an I/O error) or it may die first, and `mailrepd drain`, synchronous
mode and the purge of the log would then act on a position the replica
never had.  Nor is an ACK of a reconciliation's own batch (numbered 1,
2, ... for that run) a log position: it must release no reply held for
synchronous mode.  Scripted peers (repl_peer.py) play the other end.
"""
import re
import sqlite3
import threading

from conftest import DOMAIN, HOST, free_port
from repl_peer import (ACK, END, INV_END, INV_MAILBOX, INV_MSGS, INV_WANT,
                       ScriptedMaster, ScriptedReplica, messages,
                       u64, wait_log)
from test_drain import quit_and_wait
from test_hostile_peer import inv_mailbox
from test_replication import (SECRET, lmtp_one,  # noqa: F401
                              message, secret, status)

DRAIN = ["--drain-timeout", "2"]
SYNC_TIMEOUT_MS = 2000


def the_replica(data, name):
    rows = [r for r in status(data)["replicas"] if r["name"] == name]
    assert len(rows) == 1, rows
    return rows[0]


def node_applied(data):
    db = sqlite3.connect("file:%s/mailrepd.db?mode=ro" % data, uri=True,
                         timeout=10)
    try:
        return db.execute("SELECT applied FROM node").fetchone()[0]
    finally:
        db.close()


def test_a_replica_silent_after_start_is_not_caught_up(server, secret):
    """The scripted replica takes the whole comparison and its START
    but never acknowledges START: it stays reconciling in `status`, and
    a drain names it and exits 3 (failing over to it is not safe)."""
    port = free_port()
    master = server(args=["--repl-listen", "%s:%d" % (HOST, port),
                          "--repl-secret-file", secret] + DRAIN)
    for i in range(3):
        assert lmtp_one(master.port, "alice@" + DOMAIN,
                        message("m%d" % i))[0].startswith("250")
    head = status(master.data)["log_head"]
    r = ScriptedReplica(SECRET, port, name="silent").reconciling()
    try:
        assert r.until_start() == head
        wait_log(master, "sync.reconcile.done name=silent")
        row = the_replica(master.data, "silent")
        assert row["reconciling"], row
        since = len(master.log_text())
        assert quit_and_wait(master) == 3
        text = master.log_text()[since:]
        assert "drain.replica.behind name=silent" in text, text
        assert "reconciling=1" in text, text
    finally:
        r.close()


def test_start_acknowledged_streams_and_drains(server, secret):
    """Once the replica acknowledges START it streams the log, and a
    drain whose last batch it acknowledged exits 0."""
    port = free_port()
    master = server(args=["--repl-listen", "%s:%d" % (HOST, port),
                          "--repl-secret-file", secret] + DRAIN)
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("before"))[0].startswith("250")
    r = ScriptedReplica(SECRET, port, name="prompt").reconciling()
    try:
        head = r.until_start()
        since = len(master.log_text())
        r.tls.send_frame(ACK, u64(head))
        wait_log(master, "sync.replica.connected name=prompt", since)
        assert lmtp_one(master.port, "alice@" + DOMAIN,
                        message("after"))[0].startswith("250")
        while True:
            t, p = r.tls.read_frame()
            if t == END:
                break
        end = p[:8]
        assert end == u64(status(master.data)["log_head"]), (end, head)
        r.tls.send_frame(ACK, end)
        assert quit_and_wait(master) == 0
    finally:
        r.close()


def test_the_replica_acknowledges_start_after_its_commit(server, secret):
    """A real replica, reconciled by a scripted master: START's position
    is in its store when its ACK arrives, and it resumes from there."""
    port = free_port()
    m = ScriptedMaster(port, SECRET)
    try:
        rep = server(users=(), args=[
            "--replicate-from", "%s:%d" % (HOST, port),
            "--repl-secret-file", secret, "--name", "follower"])
        hello = m.accept()
        assert hello["applied"] == 0, hello
        m.pos = 7
        assert m.reconcile() == []
        m.reconciled()
        assert node_applied(rep.data) == 7
        m.passwd()
        m.batch(("user.add", dict(user="alice", value="x")))
        assert node_applied(rep.data) == 9
        assert messages(rep.data) == []
    finally:
        m.tls.close()


def test_reconciliation_acks_release_no_held_reply(server, secret):
    """A reconciliation numbers its records 1, 2, ... for that run; the
    replica's ACKs of them say nothing of the log.  Here the comparison
    sends more records than the log holds (the replica lists a mailbox
    deleted on the master again and again), so those numbers pass the
    position of a delivery made after it: in synchronous mode that
    delivery still waits for an ACK of the log, and times out."""
    port = free_port()
    master = server(imap=True, args=["--repl-listen", "%s:%d" % (HOST, port),
                                     "--repl-secret-file", secret])
    c = master.imap("alice")
    assert c.create("Gone")[0] == "OK"
    db = sqlite3.connect("file:%s/mailrepd.db?mode=ro" % master.data,
                         uri=True, timeout=10)
    try:
        box, uidvalidity = db.execute(
            "SELECT uniqueid, uidvalidity FROM mailbox WHERE name = "
            "'Gone'").fetchone()
    finally:
        db.close()
    assert c.delete("Gone")[0] == "OK"
    c.logout()
    master.stop()
    master.args += ["--repl-sync-timeout", str(SYNC_TIMEOUT_MS)]
    master.start()
    head = status(master.data)["log_head"]
    copies = head + 10
    r = ScriptedReplica(SECRET, port, name="many")
    try:
        r.hello()
        r.tls.read_frame()
        for _ in range(copies):
            r.tls.send_frame(INV_MAILBOX, inv_mailbox(
                box, "Gone", "alice", 1, uidvalidity))
        r.tls.send_frame(INV_END)

        def answer(t, p):
            # Each copy's messages: none.
            assert t == INV_WANT, t
            r.tls.send_frame(INV_MSGS, p[:16] + u64(0) + u64(0xffffffff) +
                             b"\1" + u64(0))
        assert r.until_start(answer) == head
        text = wait_log(master, "sync.reconcile.done name=many")
        records = int(re.search(r"done name=many .* records=(\d+)",
                                text).group(1))
        assert records > head + 1, (records, head)
        since = len(master.log_text())
        reply = []
        t = threading.Thread(target=lambda: reply.append(lmtp_one(
            master.port, "alice@" + DOMAIN, message("held"))))
        t.start()
        t.join(SYNC_TIMEOUT_MS / 1000 + 30)
        assert reply and reply[0][0].startswith("250"), reply
        text = master.log_text()[since:]
        assert "sync.timeout pos=%d" % (head + 1) in text, text
    finally:
        r.close()
