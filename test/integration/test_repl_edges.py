"""The edges of replication where mail could be lost or moved for no
reason, each driven on purpose by a scripted peer (repl_peer.py):

- a master's records about users, mailboxes and messages the replica
  does not have (a user deleted twice, a rename or delete of a mailbox
  it never had, a subscription or mailbox of an unknown user, flags
  and an expunge of a uid it never held) change nothing there, are
  acknowledged, and the stream goes on (the mass-delete guard once
  refused every batch with a user.del of a user the replica lacks, so
  replication stopped for good); the expunged uid is never handed to
  another message there;
- a replica's RELOCATE of a uid past the UID space, of a message the
  master no longer holds at that uid, or of the same message twice
  moves nothing twice and loses nothing on the master;
- a replica's PUSH of the very message the master holds at that uid
  (the same bytes) is no conflict: nothing is renumbered or doubled.
"""
import hashlib
import os
import sqlite3
import struct

from conftest import HOST, free_port
from repl_peer import (PUSH, PUSH_DATA, RELOCATE, ScriptedMaster,
                       ScriptedReplica, messages, wait_log, wait_messages)
from test_hostile_peer import inbox_guids, push
from test_replication import (SECRET, cluster, lmtp_one,  # noqa: F401
                              message, secret)


def body(tag):
    return (b"From: <s@remote.test>\r\nSubject: %s\r\n\r\nbody %s\r\n" %
            (tag, tag))


def guid(b):
    return hashlib.sha256(b).digest()


def query(data, sql, *args):
    db = sqlite3.connect("file:%s/mailrepd.db?mode=ro" % data, uri=True,
                         timeout=10)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def state(data):
    """Everything a record about something absent could wrongly change:
    users, mailboxes, subscriptions, messages, quarantine."""
    return (query(data, "SELECT name FROM user ORDER BY name"),
            query(data, "SELECT hex(uniqueid), name, uidvalidity FROM "
                  "mailbox ORDER BY name"),
            query(data, "SELECT name FROM subscription ORDER BY name"),
            messages(data),
            query(data, "SELECT count(*) FROM quarantine"))


def test_records_for_what_the_replica_lacks(server, secret):
    port = free_port()
    m = ScriptedMaster(port, SECRET)
    try:
        rep = server(users=(), args=[
            "--replicate-from", "%s:%d" % (HOST, port),
            "--repl-secret-file", secret, "--name", "r0"])
        m.start(m.accept())
        inbox = os.urandom(16)
        one = body(b"one")
        m.batch(("user.add", dict(user="alice", value="x")),
                ("mailbox.create", dict(user="alice", mailbox=inbox,
                                        name="INBOX", uid=7, flags=1)),
                ("message.append", dict(mailbox=inbox, uid=1, body=one)))
        before = state(rep.data)
        nowhere = os.urandom(16)
        m.batch(("user.del", dict(user="ghost", reason="operator")),
                ("mailbox.rename", dict(mailbox=nowhere, name="Elsewhere")),
                ("mailbox.delete", dict(mailbox=nowhere, name="Gone")),
                ("user.subscribe", dict(user="ghost", name="News",
                                        flags=1)),
                ("mailbox.create", dict(user="ghost", mailbox=nowhere,
                                        name="INBOX", uid=9, flags=1)),
                ("message.flags", dict(mailbox=inbox, uid=5,
                                       guid=guid(b"x"), flags=1)),
                ("message.expunge", dict(mailbox=inbox, uid=6,
                                         guid=guid(b"y"))))
        assert state(rep.data) == before
        # The master's message that left uid 6 took it: no message of
        # the replica's own numbering may ever get it.
        assert query(rep.data, "SELECT uidnext FROM mailbox") == [(7,)]
        # The stream goes on from there.
        two = body(b"two")
        m.batch(("message.append", dict(mailbox=inbox, uid=7, body=two)))
        assert messages(rep.data) == [(1, guid(one).hex().upper()),
                                      (7, guid(two).hex().upper())]
        assert rep.running()
    finally:
        m.tls.close()


def relocate(box, uid, g, above):
    return box + struct.pack(">I", uid) + g + struct.pack(">I", above)


def test_relocate_moves_nothing_twice_and_loses_nothing(cluster):
    master, _ = cluster(0)
    for tag in ("first", "second"):
        assert lmtp_one(master.port, "alice@example.com",
                        message(tag))[0].startswith("250")
    (box, g1), (_, g2) = inbox_guids(master.data)
    before = messages(master.data)
    r = ScriptedReplica(SECRET, master.repl_port).reconciling()
    try:
        # A uid past the UID space: refused, nothing moves.
        since = len(master.log_text())
        r.tls.send_frame(RELOCATE, relocate(box, 0xFFFFFFFF, g1, 10))
        wait_log(master, "sync.relocate", since)
        # uid 2 holds another message than the one named: it stays.
        since = len(master.log_text())
        r.tls.send_frame(RELOCATE, relocate(box, 2, g1, 10))
        # uid 1, the message named: it moves above the replica's 10.
        r.tls.send_frame(RELOCATE, relocate(box, 1, g1, 10))
        wait_log(master, "new_uid=10", since)
        moved = wait_messages(master.data, lambda x: [u for u, _ in x] ==
                              [2, 10])
        assert sorted(g for _, g in moved) == sorted(g for _, g in before)
        # The same request again (a reconnect, a second replica): the
        # message moved already and moves no further.
        r.tls.send_frame(RELOCATE, relocate(box, 1, g1, 20))
        r.tls.send_frame(RELOCATE, relocate(box, 2, g2, 10))
        wait_messages(master.data, lambda x: [u for u, _ in x] == [10, 11])
    finally:
        r.close()
    assert master.running()
    got = messages(master.data)
    assert sorted(g for _, g in got) == sorted(g for _, g in before)
    assert [u for u, _ in got] == [10, 11]


def test_a_pushed_copy_of_the_same_message_is_no_conflict(cluster):
    master, _ = cluster(0)
    mine = message("mine")
    assert lmtp_one(master.port, "alice@example.com",
                    mine)[0].startswith("250")
    (box, g), = inbox_guids(master.data)
    before = messages(master.data)
    c = master.imap("alice")
    c.select("INBOX", readonly=True)
    typ, data = c.uid("FETCH", "1", "(BODY.PEEK[])")
    c.logout()
    raw = data[0][1]
    assert guid(raw) == g
    r = ScriptedReplica(SECRET, master.repl_port).reconciling()
    try:
        since = len(master.log_text())
        r.tls.send_frame(PUSH, push(box, 1, raw, guid=g))
        r.tls.send_frame(PUSH_DATA, raw)
        text = wait_log(master, "sync.renumber", since)
        assert "uid=1" in text, text
    finally:
        r.close()
    assert messages(master.data) == before
    assert master.running()
