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
  moves nothing twice and loses nothing on the master; a relay (a
  replica with replicas of its own) moves and expunges nothing they ask;
- a replica's RELOCATE of a message of a master it followed before,
  which its new master never held at that uid, closes its conflict by
  itself (the master says so) with nothing lost and no uid given twice;
- a replica's PUSH of the very message the master holds at that uid
  (the same bytes) is no conflict: nothing is renumbered or doubled,
  and a conflict the replica kept open on it (another master it
  followed lacked it) settles; a replica promoted with a conflict open
  settles it, and its old master, made its replica, converges with it;
- a reconciliation compares a mailbox in chunks that the frame cuts
  (messages with kilobytes of keywords) without skipping or doubling a
  message at a cut.
"""
import os
import struct
import time

import pytest

from conftest import DOMAIN, HOST, free_port, run
from repl_peer import (ACK, END, EXPUNGED, MAILBOX_ID_LEN, NEVER_HELD, PULL,
                       PUSH, PUSH_DATA, RELOCATE, ScriptedMaster,
                       ScriptedReplica, frame, messages, push,
                       scripted_master_for, wait_log, wait_messages)
from test_hostile_peer import inbox_guids
from test_reconcile import deliver_many, inbox_subjects, wait_purged
from test_replica_apply import body, guid, query
from test_replication import (SECRET, SYNC_DEADLINE,  # noqa: F401
                              cluster, lmtp_one, message, secret, status,
                              wait_same)


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
    m, rep = scripted_master_for(
        lambda args: server(users=(), args=args), secret)
    try:
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


# Keywords of about 3.6 KiB on a message (config.h STORE_MAX_KEYWORDS is
# 4 KiB): an INV_MSGS frame (config.h SYNC_MAX_FRAME, 33 KiB) holds about
# nine such messages, far fewer than SYNC_RECON_CHUNK.
BIG_KEYWORDS = ["kw%02d_%s" % (i, "x" * 56) for i in range(60)]


def test_reconciliation_compares_chunks_that_fill_a_frame(cluster):
    """A mailbox whose messages carry keywords of kilobytes is compared
    in chunks cut by the frame, not by the count: every message on
    either side of each cut is compared once, the one message only the
    replica has reaches the master, the flags the master changed while
    apart reach the replica, and both stores end the same."""
    master, _ = cluster(0)
    master.args += ["--repl-log-retention", "0"]
    master.stop()
    master.start()
    deliver_many(master.port, "alice@" + DOMAIN, 30, "big")
    c = master.imap("alice")
    c.select("INBOX")
    assert c.uid("STORE", "1:*", "+FLAGS",
                  "(%s)" % " ".join(BIG_KEYWORDS))[0] == "OK"
    c.logout()
    rep = cluster.replica(master, 0)
    wait_same(master, rep)
    applied = status(rep.data)["master"]["applied"]
    rep.stop()
    local = rep.__class__(rep.tmp, rep.data, [])
    local.start()
    assert lmtp_one(local.port, "alice@" + DOMAIN,
                    message("replica-only"))[0].startswith("250")
    local.stop()
    c = master.imap("alice")
    c.select("INBOX")
    assert c.uid("STORE", "9,18,27", "+FLAGS", "(\\Flagged)")[0] == "OK"
    c.logout()
    wait_purged(master, applied)
    since = len(master.log_text())
    rep.start()
    wait_log(master, "sync.reconcile.done", since, deadline=SYNC_DEADLINE)
    wait_same(master, rep)
    got = inbox_subjects(master)
    assert got == inbox_subjects(rep)
    assert sorted(s for _, s in got) == sorted(
        ["big%d" % i for i in range(30)] + ["replica-only"]), got
    assert got[-1] == (32, "replica-only"), got[-3:]
    for node in (master, rep):
        check = run("check", "--data", node.data)
        assert check.returncode == 0, check.stdout + check.stderr


def test_a_relay_moves_and_expunges_nothing_its_replicas_ask(cluster):
    """A replica that relays its master's log to replicas of its own
    (both --replicate-from and --repl-listen) numbers nothing: a
    RELOCATE or EXPUNGED from below is logged and left to the master,
    so the relay never diverges from it; the mail stays everywhere."""
    master, _ = cluster(0)
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("relayed"))[0].startswith("250")
    port = free_port()
    relay = cluster.replica(master, 0, ["--repl-listen",
                                        "%s:%d" % (HOST, port)])
    wait_same(master, relay)
    (box, g), = inbox_guids(relay.data)
    before = messages(relay.data)
    r = ScriptedReplica(SECRET, port).reconciling()
    try:
        since = len(relay.log_text())
        r.tls.send_frame(RELOCATE, relocate(box, 1, g, 50))
        wait_log(relay, "its master must move it", since)
        r.tls.send_frame(EXPUNGED, box + struct.pack(">I", 1) + g + b"\0")
        wait_log(relay, "its master must expunge it", since)
        # A mailbox the master has not: nothing to expunge anywhere.
        since = len(master.log_text())
        m = ScriptedReplica(SECRET, master.repl_port,
                            name="other").reconciling()
        try:
            m.tls.send_frame(EXPUNGED, os.urandom(16) +
                             struct.pack(">I", 1) + g + b"\0")
            m.tls.send_frame(EXPUNGED, box + struct.pack(">I", 1) + g +
                             b"\x09")
            wait_log(master, "bad EXPUNGED", since)
        finally:
            m.close()
    finally:
        r.close()
    assert messages(relay.data) == before
    assert messages(master.data) == before
    assert relay.running() and master.running()
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("after"))[0].startswith("250")
    wait_same(master, relay)


def open_conflicts(data):
    return query(data, "SELECT op, uid, hex(master_guid) FROM conflict "
                 "WHERE resolved != 1 ORDER BY id")


def wait_settled(data):
    """Waits until the store keeps no conflict open (SYNC_DEADLINE)."""
    end = time.monotonic() + SYNC_DEADLINE
    while open_conflicts(data) and time.monotonic() < end:
        time.sleep(0.05)
    assert open_conflicts(data) == []


def follow_another(master, rep):
    """Restarts the replica as one of a scripted master (another master
    of the master's mailbox that it follows for a while) and reconciles
    with it: (that master, the index of the replica's --replicate-from
    value in its arguments, the value it had)."""
    rep.stop()
    port = free_port()
    where = rep.args.index("--replicate-from") + 1
    home = rep.args[where]
    rep.args[where] = "%s:%d" % (HOST, port)
    old = ScriptedMaster(port, SECRET)
    old.mailbox = inbox_guids(master.data)[0][0]
    try:
        rep.start()
        old.accept()
        old.reconcile()
        old.reconciled()
    except BaseException:
        old.tls.close()
        raise
    return old, where, home


def come_back(rep, where, home, watch, pattern):
    """Starts the (stopped) replica on its own master again, home the
    value of its --replicate-from at index where; waits for pattern in
    watch's log, then for no conflict open on the replica."""
    rep.args[where] = home
    since = len(watch.log_text())
    rep.start()
    wait_log(watch, pattern, since)
    wait_settled(rep.data)


STALE_CASES = {
    # The master expunged uid 3's message; the other master gave uid 3
    # to another message, which the replica cannot place there.
    "reused": (("first", "second", "third"), 3,
               lambda old, stale: [("message.append", dict(
                   mailbox=old.mailbox, uid=3, body=stale))]),
    # The master never gave uid 3; the other master gave it, expunged it
    # and offered it again, which the replica refuses.
    "expunged": (("first", "second"), None,
                 lambda old, stale: [
                     ("message.append", dict(mailbox=old.mailbox, uid=3,
                                             body=stale)),
                     ("message.expunge", dict(mailbox=old.mailbox, uid=3,
                                              guid=guid(stale))),
                     ("message.append", dict(mailbox=old.mailbox, uid=3,
                                             body=stale))]),
}


@pytest.mark.parametrize("case", sorted(STALE_CASES))
def test_a_stale_conflict_settles_by_itself(cluster, case):
    """A replica holds a conflict on a message of a master it followed
    for a while (here a scripted one, restored from a copy older than an
    expunge): uid 3 there names a message the replica cannot place at
    uid 3, so it asks that master to move it (RELOCATE) or to expunge it
    (EXPUNGED).  Back on a master that never held that message at that
    uid, the request changes nothing there; the master says so and the
    replica's conflict settles by itself, with no operator, nothing lost
    and no uid naming two messages."""
    tags, expunge, records = STALE_CASES[case]
    master, (rep,) = cluster(1)
    for tag in tags:
        assert lmtp_one(master.port, "alice@" + DOMAIN,
                        message(tag))[0].startswith("250")
    if expunge:
        c = master.imap("alice")
        c.select("INBOX")
        c.uid("STORE", str(expunge), "+FLAGS", "(\\Deleted)")
        c.expunge()
        c.logout()
    wait_same(master, rep)
    before = messages(master.data)
    # The replica follows the other master for a while.
    old, where, home = follow_another(master, rep)
    stale = body(b"only on the other master")
    try:
        recs = records(old, stale)
        if recs[:-1]:
            old.batch(*recs[:-1])
        kind, kw = recs[-1]
        old.record(kind, seq=old.pos + 1, **kw)
        old.tls.send_frame(END, struct.pack(">Q", old.pos + 1) +
                           b"\0" * 32)
        end = time.monotonic() + SYNC_DEADLINE
        while open_conflicts(rep.data) == [] and time.monotonic() < end:
            time.sleep(0.05)
        assert open_conflicts(rep.data) == [
            ("message." + case, 3, guid(stale).hex().upper())]
    finally:
        old.tls.close()
    rep.stop()
    come_back(rep, where, home, rep, "sync.never_held")
    assert messages(master.data) == before
    # Mail still flows, and the uid given twice takes no new message.
    for tag in ("fourth", "fifth"):
        assert lmtp_one(master.port, "alice@" + DOMAIN,
                        message(tag))[0].startswith("250")
    wait_same(master, rep)
    got = messages(rep.data)
    assert got == messages(master.data)
    assert len(got) == len(before) + 2 and 3 not in [u for u, _ in got]
    assert open_conflicts(rep.data) == [] and rep.running()


def test_a_uid_a_reconciliation_skipped_is_no_message_held(cluster):
    """A reconciliation raises the master's UIDNEXT to a replica's (UIDs
    it gave out while it followed another master stay taken), past UIDs
    this master never gave.  A RELOCATE of such a uid (a replica's
    conflict with that other master) names no message this master ever
    held: the master says so to the replica that asked (NEVER_HELD) and
    logs nothing.  It once took the uid for one whose tombstone it had
    purged and logged its expunge, so a replica that held that very
    message from the other master, and had not yet handed it over
    (--conflict-policy keep), expunged it: it survived only in that
    replica's quarantine."""
    master, (rep,) = cluster(1, ["--conflict-policy", "keep"])
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("first"))[0].startswith("250")
    wait_same(master, rep)
    # The replica follows another master for a while, which gives uid
    # 5 of the same mailbox to a message this master never sees.
    old, where, home = follow_another(master, rep)
    theirs = body(b"only on the other master")
    try:
        old.batch(("message.append", dict(mailbox=old.mailbox, uid=5,
                                          body=theirs)))
    finally:
        old.tls.close()
    rep.stop()
    # Back on this master: the reconciliation raises its UIDNEXT past 5
    # and asks for the message (PULL); under policy keep it stays at 5
    # there, an open conflict, until an operator resolves it.
    rep.args[where] = home
    since = len(master.log_text())
    rep.start()
    wait_log(master, "sync.reconcile.done", since, deadline=SYNC_DEADLINE)
    end = time.monotonic() + SYNC_DEADLINE
    while query(master.data, "SELECT uidnext FROM mailbox WHERE "
                "uniqueid = ?", old.mailbox) != [(6,)]:
        assert time.monotonic() < end, "UIDNEXT was not raised"
        time.sleep(0.05)
    held = (5, guid(theirs).hex().upper())
    assert held in messages(rep.data)
    r = ScriptedReplica(SECRET, master.repl_port).reconciling()
    try:
        # A RELOCATE of a uid past UIDNEXT after it is refused in any
        # case: once it is, the one before it is done.
        since = len(master.log_text())
        r.tls.send(frame(RELOCATE, relocate(old.mailbox, 5, guid(theirs),
                                            6)) +
                   frame(RELOCATE, relocate(old.mailbox, 11, guid(theirs),
                                            6)))
        wait_log(master, "uid=11 ", since)
        told = []
        while not told or told[-1][MAILBOX_ID_LEN:][:4] != b"\0\0\0\x0b":
            t, p = r.tls.read_frame()
            if t == NEVER_HELD:
                told.append(p)
        # Whatever the master logged has reached the replica once the
        # next delivery has: the message is still there at its uid.
        assert lmtp_one(master.port, "alice@" + DOMAIN,
                        message("second"))[0].startswith("250")
        wait_messages(rep.data, lambda got: got[-1][0] == 6)
        assert held in messages(rep.data)
        assert query(rep.data, "SELECT count(*) FROM quarantine") == [(0,)]
        assert query(master.data, "SELECT count(*) FROM replog WHERE "
                     "uid = 5") == [(0,)]
        # The replica that asked is told, and only it.
        assert told[0] == old.mailbox + struct.pack(">I", 5) + guid(theirs)
    finally:
        r.close()
    assert rep.running() and master.running()


def pulled_by_another(master, rep):
    """The replica follows another master for a while (a scripted one),
    which lacks the replica's uid 1 and asks for it (PULL) but never
    answers the copy it is pushed: the replica keeps an open conflict
    on a message its real master holds at that very uid.  Returns the
    index of the replica's --replicate-from value and the value it had;
    the replica is stopped."""
    (box, g), = inbox_guids(rep.data)
    old, where, home = follow_another(master, rep)
    try:
        old.tls.send_frame(PULL, box + struct.pack(">I", 1) + g)
        end = time.monotonic() + SYNC_DEADLINE
        while open_conflicts(rep.data) == [] and time.monotonic() < end:
            time.sleep(0.05)
        assert [(op, uid) for op, uid, _ in open_conflicts(rep.data)] == \
            [("message.local", 1)]
    finally:
        old.tls.close()
    rep.stop()
    return where, home


def test_a_pushed_copy_the_master_holds_there_settles(cluster):
    """A replica's open conflict on a copy its master holds at that very
    uid (the master it asked before never answered; here it follows a
    master that already had the message) settles: the master's word on
    the message reaches the replica, and nothing moves.  The master took
    the push for no conflict and said nothing, so the conflict stayed
    open for good with both stores the same (a failure of the randomized
    test's convergence)."""
    master, (rep,) = cluster(1)
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("first"))[0].startswith("250")
    wait_same(master, rep)
    before = messages(master.data)
    where, home = pulled_by_another(master, rep)
    come_back(rep, where, home, master, "sync.renumber")
    assert messages(master.data) == before
    wait_same(master, rep)
    assert messages(rep.data) == before and rep.running()


def test_a_promoted_replica_settles_its_own_conflicts(cluster, secret):
    """A replica promoted while it keeps a conflict open (its master
    lacked its copy and had not answered yet) has no master to answer
    it: the copy is its own message now.  The conflict settles at the
    promotion; the old master, made its replica, reconciles and the two
    converge with nothing lost.  Before, the conflict stayed open on the
    new master for good, with both stores the same."""
    port = free_port()
    master, (rep,) = cluster(1, ["--repl-listen", "%s:%d" % (HOST, port)])
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("first"))[0].startswith("250")
    wait_same(master, rep)
    before = messages(master.data)
    pulled_by_another(master, rep)
    rep.start()
    assert run("promote", "--data", rep.data).returncode == 0
    end = time.monotonic() + SYNC_DEADLINE
    while status(rep.data)["role"] != "master":
        assert time.monotonic() < end, "not promoted"
        time.sleep(0.05)
    assert open_conflicts(rep.data) == []
    assert run("demote", "--data", master.data, "--replicate-from",
               "%s:%d" % (HOST, port), "--repl-secret-file",
               secret).returncode == 0
    assert lmtp_one(rep.port, "alice@" + DOMAIN,
                    message("second"))[0].startswith("250")
    wait_same(rep, master)
    got = messages(master.data)
    assert got[:1] == before and len(got) == 2
    assert open_conflicts(rep.data) == open_conflicts(master.data) == []
    assert rep.running() and master.running()


def batch_past_requests(m, *recs):
    """ScriptedMaster.batch(), but the replica's requests (EXPUNGED,
    RELOCATE, PUSH) that come before the ACK are read and dropped."""
    seq = m.pos
    for kind, kw in recs:
        seq = m.record(kind, seq=seq + 1, **kw)
    m.tls.send_frame(END, struct.pack(">Q", seq) + b"\0" * 32)
    while True:
        t, p = m.tls.read_frame()
        if t == ACK:
            assert p == struct.pack(">Q", seq), p
            m.pos = seq
            return
        assert t in (EXPUNGED, RELOCATE, PUSH, PUSH_DATA), t


def test_a_mailbox_delete_waits_for_no_conflict_without_a_copy(server,
                                                                secret):
    """A replica refused the master's message at a uid it had expunged
    (a message.expunged conflict: it keeps no copy) and asked the master
    to expunge it too; the master's client deleted the mailbox
    meanwhile.  The delete applies (nothing of the replica's is in the
    mailbox) and the conflict is over with it.  It was held for the
    conflict, and the conflict never settled (the master no longer had
    the mailbox to answer about): the mailbox stayed on the replica and
    the conflict open for good."""
    m, rep = scripted_master_for(
        lambda args: server(users=(), args=args), secret)
    try:
        m.start(m.accept())
        box, inbox = os.urandom(16), os.urandom(16)
        stale = body(b"stale")
        m.batch(("user.add", dict(user="alice", value="x")),
                ("mailbox.create", dict(user="alice", mailbox=inbox,
                                        name="INBOX", uid=7, flags=1)),
                ("mailbox.create", dict(user="alice", mailbox=box,
                                        name="Box", uid=8, flags=1)),
                ("message.append", dict(mailbox=box, uid=1, body=stale)),
                ("message.expunge", dict(mailbox=box, uid=1,
                                         guid=guid(stale))))
        batch_past_requests(m, ("message.append", dict(
            mailbox=box, uid=1, body=stale)))
        assert open_conflicts(rep.data) == [
            ("message.expunged", 1, guid(stale).hex().upper())]
        batch_past_requests(m, ("mailbox.delete", dict(mailbox=box,
                                                       name="Box")))
        assert query(rep.data, "SELECT name FROM mailbox") == [("INBOX",)]
        assert open_conflicts(rep.data) == []
        assert rep.running()
    finally:
        m.tls.close()
