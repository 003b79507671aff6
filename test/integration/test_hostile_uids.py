"""A replica that holds the replication secret but names UIDs it cannot
justify, against a real master (the scripted replica of repl_peer.py,
over the real TLS-PSK channel).

A replica's word moves the master's numbering in three places: a PUSH
(a copy to renumber) and a RELOCATE (a message of the master's that the
replica cannot take at its uid) say the replica's UIDNEXT, above which
the master gives the new UIDs, and a reconciliation's inventory says
each mailbox's UIDNEXT there, which the master's UIDNEXT is raised to.
A UIDNEXT at the end of the 32-bit UID space (RFC 3501: UIDs are
non-zero 32-bit numbers) would leave the mailbox no UID for the next
delivery on every node; one far past the master's own names UIDs no
split could have given out.  The master must refuse it: log why, keep
its data (its messages, their UIDs and the mailbox's UIDNEXT), drop the
link, and go on serving.  A RELOCATE that names a message the master
does not hold at that uid is refused and moves nothing; the master
tells that replica alone (NEVER_HELD), so its conflict can close.
"""
import hashlib
import os
import struct
import time

from conftest import DOMAIN
from repl_peer import (FRAME_DEADLINE, INV_END, INV_MAILBOX, NEVER_HELD,
                       PUSH, PUSH_DATA, RECONCILE, RELOCATE, ScriptedReplica,
                       frame, messages, push, query, string, u64, wait_log,
                       wait_messages)
from test_replication import (SECRET, cluster, lmtp_one,  # noqa: F401
                              message, secret, wait_same)

THEIRS = (b"From: <s@remote.test>\r\nTo: <alice@example.com>\r\n"
          b"Subject: theirs\r\n\r\nonly the replica had this\r\n")
TOP = 0xFFFFFFFF


def inbox(data):
    """Alice's INBOX's (uniqueid, uidvalidity, uidnext) and {uid: guid}
    of every message (no one else has any)."""
    box, = query(data, "SELECT m.uniqueid, m.uidvalidity, m.uidnext FROM "
                 "mailbox m JOIN user u ON u.id = m.user_id WHERE "
                 "u.name = 'alice' AND m.name = 'INBOX'")
    return box, dict(query(data, "SELECT m.uid, b.guid FROM message m "
                           "JOIN blob b ON b.id = m.blob_id"))


def log_head(data):
    """The last replication-log record ever written: the purge of what
    every replica has (every 5 s) drops rows, never this."""
    return query(data, "SELECT coalesce((SELECT seq FROM sqlite_sequence "
                 "WHERE name = 'replog'), 0)")[0][0]


def relocate(box, uid, guid, above):
    return box + struct.pack(">I", uid) + guid + struct.pack(">I", above)


def inv_mailbox(box, uidvalidity, uidnext, name="INBOX"):
    """alice's INV_MAILBOX with a digest that matches nothing."""
    return (box + b"\0" * 32 + string(name) + b"\1" + string("alice") +
            u64(uidvalidity) + string("") + u64(uidnext) + u64(0))


def refused(master, r, logged, since):
    """The master logged why and dropped the scripted replica."""
    assert r.tls.closed(), "the master kept the link"
    return wait_log(master, logged, since)


def still_serves(master, before):
    """Nothing of the master's changed, and the next delivery takes the
    UID after its own."""
    box, guids = inbox(master.data)
    assert (box, guids) == before, (box, guids, before)
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("after"))[0].startswith("250")
    _, after = inbox(master.data)
    assert sorted(after) == sorted(guids) + [box[2]], after


def one_message(cluster):
    master, _ = cluster(0)
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("mine"))[0].startswith("250")
    return master, inbox(master.data)


# (what the replica says its UIDNEXT is) -> why the master refuses
ABOVE = {
    "the end of the UID space": TOP,
    "the last UID": TOP - 1,
    "room for two": TOP - 2,
    "far past the master's": 1 << 30,
}


def each_refused(master, before, what, send, start=None):
    """Each implausible UIDNEXT of ABOVE in turn, from a scripted
    replica (start() makes it: a reconciling one by default) that
    send(r, above) says it in frame what: refused each time, and the
    master keeps what it had."""
    for case, above in sorted(ABOVE.items()):
        r = start() if start else ScriptedReplica(
            SECRET, master.repl_port).reconciling()
        try:
            since = len(master.log_text())
            send(r, above)
            text = refused(master, r, "bad " + what, since)
            assert "uidnext=%d" % above in text, (case, text)
        finally:
            r.close()
        assert inbox(master.data) == before, case
    still_serves(master, before)


def test_push_above_the_plausible_is_refused(cluster):
    master, before = one_message(cluster)
    (box, _, _), _ = before

    # One write: the link may be gone before a second.
    each_refused(master, before, "PUSH", lambda r, above: r.tls.send(
        frame(PUSH, push(box, 1, THEIRS, above=above)) +
        frame(PUSH_DATA, THEIRS)))


def test_relocate_above_the_plausible_is_refused(cluster):
    master, before = one_message(cluster)
    (box, _, _), guids = before
    each_refused(master, before, "RELOCATE", lambda r, above: r.tls.send_frame(
        RELOCATE, relocate(box, 1, guids[1], above)))


def test_inventory_uidnext_above_the_plausible_is_refused(cluster):
    master, before = one_message(cluster)
    (box, uidvalidity, _), _ = before

    def start():
        r = ScriptedReplica(SECRET, master.repl_port)
        r.hello()
        t, _ = r.tls.read_frame()
        assert t == RECONCILE
        return r

    def send(r, uidnext):
        r.tls.send(frame(INV_MAILBOX, inv_mailbox(box, uidvalidity,
                                                  uidnext)) + frame(INV_END))
    each_refused(master, before, "INV_MAILBOX", send, start)


def test_push_of_a_uid_past_its_uidnext_is_refused(cluster):
    """A copy pushed at a uid at or past the UIDNEXT its PUSH says: no
    replica holds one there.  Refused: once the master took it in, the
    record that moves it off that uid near the end of the UID space was
    one every replica refused, and replication stopped there for good."""
    master, replicas = cluster(1)
    rep, = replicas
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("mine"))[0].startswith("250")
    wait_same(master, rep)
    before = inbox(master.data)
    (box, _, _), _ = before
    for uid, above in ((TOP - 1, 5), (7, 7)):
        r = ScriptedReplica(SECRET, master.repl_port).reconciling()
        try:
            since = len(master.log_text())
            r.tls.send(frame(PUSH, push(box, uid, THEIRS, above=above)) +
                       frame(PUSH_DATA, THEIRS))
            refused(master, r, "bad PUSH", since)
        finally:
            r.close()
        assert inbox(master.data) == before, uid
    still_serves(master, before)
    wait_same(master, rep)
    assert inbox(rep.data)[0][2] == inbox(master.data)[0][2]
    assert "warn conflict" not in rep.log_text()


def test_a_plausible_uidnext_is_taken(cluster):
    """A replica that gave out UIDs while split off (a few past the
    master's) is believed: the renumbered pair lands above them.  A
    mailbox only the replica has, which the master takes in, keeps its
    UIDNEXT however far it went, short of the end of the UID space."""
    master, before = one_message(cluster)
    (box, _, _), guids = before
    r = ScriptedReplica(SECRET, master.repl_port).reconciling()
    try:
        since = len(master.log_text())
        r.tls.send_frame(PUSH, push(box, 1, THEIRS, above=40))
        r.tls.send_frame(PUSH_DATA, THEIRS)
        wait_log(master, "new_uid=", since)
    finally:
        r.close()
    after = wait_messages(master.data,
                          lambda m: [u for u, _ in m] == [40, 41])
    assert sorted(g for _, g in after) == sorted(
        [guids[1].hex().upper(), hashlib.sha256(THEIRS).hexdigest().upper()])
    far = ABOVE["far past the master's"]
    r = ScriptedReplica(SECRET, master.repl_port)
    try:
        since = len(master.log_text())
        r.hello()
        t, _ = r.tls.read_frame()
        assert t == RECONCILE
        r.tls.send_frame(INV_MAILBOX, inv_mailbox(os.urandom(16), 77, far,
                                                  "Far"))
        r.tls.send_frame(INV_END)
        wait_log(master, "sync.reconcile.adopt", since)
    finally:
        r.close()
    end = time.monotonic() + FRAME_DEADLINE     # logged, then committed
    while query(master.data, "SELECT uidnext FROM mailbox WHERE name = "
                "'Far'") != [(far,)]:
        assert time.monotonic() < end, "Far was not taken in"
        time.sleep(0.05)


def test_relocate_of_another_message_is_refused(cluster):
    """RELOCATE names the uid of a message the master holds, with
    another GUID (a message the master never had there), or a uid the
    master never gave: refused, nothing moves, and no record tells the
    replicas (an expunge of a pair the master never held made every
    replica record a conflict on its copy, and one of a uid never given
    raised their UIDNEXT, so the next delivery was renumbered).  The
    link stays: a replica may ask a new master about a message of its
    old master's."""
    master, replicas = cluster(1)
    rep, = replicas
    for tag in ("one", "two"):
        assert lmtp_one(master.port, "alice@" + DOMAIN,
                        message(tag))[0].startswith("250")
    wait_same(master, rep)
    before = inbox(master.data)
    (box, _, uidnext), guids = before
    head = log_head(master.data)
    # The last: a mailbox the master has not (one only the replica's old
    # master had), of which an expunge reached every replica.
    for where, uid, guid in ((box, 1, guids[2]), (box, 2, os.urandom(32)),
                             (box, uidnext + 5, guids[1]),
                             (os.urandom(16), 1, guids[1])):
        r = ScriptedReplica(SECRET, master.repl_port).reconciling()
        try:
            since = len(master.log_text())
            r.tls.send_frame(RELOCATE, relocate(where, uid, guid, 3))
            text = wait_log(master, "refused", since)
            assert "sync.relocate" in text and "uid=%d " % uid in text, text
            # The replica that asked is told, and only it.
            t = None
            while t != NEVER_HELD:
                t, p = r.tls.read_frame()
            assert p == where + struct.pack(">I", uid) + guid, uid
        finally:
            r.close()
        assert inbox(master.data) == before, uid
        assert log_head(master.data) == head, uid
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("three"))[0].startswith("250")
    wait_same(master, rep)
    assert [u for u, _ in messages(rep.data)] == [1, 2, 3]
    assert "warn conflict" not in rep.log_text()
