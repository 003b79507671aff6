"""A hostile replication peer, over the real TLS-PSK channel.

A scripted master (repl_peer.py, `openssl s_server` with the key the
secret derives) feeds a real replica one malformed case after another:
inflate errors, DATA without a record, sequence gaps, oversize batches,
bodies past the replica's memory bound, records that decode but name
what the store must refuse (an invalid mailbox or user name), a body whose bytes do not match
its GUID, bad START, oversize frames,
the master's refusal, unknown frames, a bad END, a bad reconciliation.
Each time the replica must refuse the frame, log why, keep what it had
applied (and nothing of the bad batch), and come back with the same
position; a good batch then applies.  A scripted replica
(`openssl s_client`) does the same to a real master: a HELLO of another
version or malformed, unknown frames, an ACK of no batch, oversize
frames, and bad PUSH frames during reconciliation.
"""
import hashlib
import os
import sqlite3
import struct
import zlib

from conftest import HOST, free_port, run
from repl_peer import (ACK, DATA, END, EXPUNGED, FRAME_DEADLINE, HELLO,
                       INV_END,
                       INV_MAILBOX, INV_MSGS,
                       INV_WANT, MAX_FRAME, NEVER_HELD, PING, PULL, PUSH,
                       PUSH_DATA,
                       RECONCILE, RECORD, REFUSE, RELOCATE, START, VERSION,
                       ScriptedMaster, ScriptedReplica, frame, head,
                       messages, push,
                       wait_messages,
                       record, string, u64, wait_log)
from test_replication import (SECRET, cluster, lmtp_one,  # noqa: F401
                              message, secret, wait_same)

BODY = (b"From: <s@remote.test>\r\nTo: <alice@example.com>\r\n"
        b"Subject: kept\r\n\r\nthe replica keeps this\r\n")


def bad_inflate(m):
    m.tls.send_frame(RECORD, b"\xff" * 40)


# config.h's SYNC_MAX_ITEM: what one frame may inflate to, at most (a
# master's DATA frame holds BLOB_CHUNK_SIZE, 64 KiB, of a body).
MAX_ITEM = 64 * 1024 + 8192


def body_in_one_chunk(m, size):
    """A message whose body of size bytes comes in one DATA frame."""
    body = b"z" * size
    m.record("message.append", mailbox=m.mailbox, uid=2,
             guid=hashlib.sha256(body).digest(), body_size=size)
    m.tls.send_frame(DATA, m.z(body))


def chunk_to_the_limit(m):
    """A DATA frame that inflates to exactly SYNC_MAX_ITEM bytes: more
    could have been cut off there, so it is refused like a longer one
    (taken, the body would wait for the rest, or fail its GUID)."""
    body_in_one_chunk(m, MAX_ITEM)


def chunk_past_the_limit(m):
    """A kilobyte that inflates to a megabyte (a zip bomb)."""
    body_in_one_chunk(m, 1 << 20)


def data_without_record(m):
    m.tls.send_frame(DATA, m.z(b"a body nobody announced\r\n"))


def sequence_gap(m):
    m.record("user.passwd", user="alice", value="x")
    m.record("user.passwd", seq=m.pos + 3, user="alice", value="x")


def oversize_batch(m):
    for i in range(257):
        m.record("user.passwd", seq=m.pos + 1 + i, user="alice", value="x")


def body_not_its_guid(m):
    m.record("message.append", body=b"X" + BODY[1:], mailbox=m.mailbox,
             uid=2, guid=hashlib.sha256(BODY).digest())


def data_past_body(m):
    m.record("message.append", mailbox=m.mailbox, uid=2,
             guid=hashlib.sha256(b"short").digest(), body_size=5)
    m.tls.send_frame(DATA, m.z(b"much longer than five"))


def record_mid_body(m):
    """A record while the last one's body is still coming."""
    m.record("message.append", mailbox=m.mailbox, uid=2,
             guid=hashlib.sha256(b"x" * 100).digest(), body_size=100)
    m.tls.send_frame(DATA, m.z(b"x" * 10))
    m.record("user.passwd", seq=m.pos + 2, user="alice", value="x")


def end_mid_body(m):
    """END while the batch's last body is still coming."""
    seq = m.record("message.append", mailbox=m.mailbox, uid=2,
                   guid=hashlib.sha256(b"x" * 100).digest(), body_size=100)
    m.tls.send_frame(DATA, m.z(b"x" * 10))
    m.tls.send_frame(END, u64(seq) + b"\0" * 32)


def empty_body_not_its_guid(m):
    m.record("message.append", mailbox=m.mailbox, uid=2,
             guid=hashlib.sha256(b"x").digest(), body_size=0)


def bad_record(m):
    m.tls.send_frame(RECORD, m.z(b"\0" * 16 + string("no.such.kind") +
                                 b"\0" * 40))


def end_mismatch(m):
    m.record("user.passwd", user="alice", value="x")
    m.tls.send_frame(END, u64(m.pos + 5) + b"\0" * 32)


def empty_batch(m):
    m.tls.send_frame(END, u64(m.pos) + b"\0" * 32)


# A batch's bodies may hold config.h's SYNC_BATCH_MEM + SPOOL_MEM_MAX
# (4 MiB + 64 KiB) of the replica's memory; each counts at most 64 KiB.
BIG_BODY = (b"y" * 1023 + b"\n") * 64


def bodies_past_memory(m):
    for i in range(4 * 16 + 2):
        m.record("message.append", body=BIG_BODY, seq=m.pos + 1 + i,
                 mailbox=m.mailbox, uid=2 + i)


def applied_alone(m, kind, **kw):
    """A batch of one record that decodes but must not apply."""
    seq = m.record(kind, **kw)
    m.tls.send_frame(END, u64(seq) + b"\0" * 32)


def mailbox_of_no_valid_name(m):
    applied_alone(m, "mailbox.create", user="alice", name="a//b",
                  mailbox=os.urandom(16), uid=5, flags=1)


def rename_to_no_valid_name(m):
    applied_alone(m, "mailbox.rename", mailbox=m.mailbox, name="/Top")


def user_of_no_valid_name(m):
    applied_alone(m, "user.add", user="no body@all", value="x")


def oversize_frame(m):
    m.tls.send(bytes([RECORD]) + struct.pack(">I", MAX_FRAME + 1))


def unknown_frame(m):
    m.tls.send_frame(ord("Z"), b"what is this")


def short_end(m):
    m.tls.send_frame(END, b"\0" * 8)


def short_never_held(m):
    m.tls.send_frame(NEVER_HELD, b"\0" * 5)


# Before START: (hello) -> the frames to send.
def bad_start_position(m, hello):
    m.tls.send_frame(START, head(m.node_id, m.epoch, m.pos + 7))


def short_start(m, hello):
    m.tls.send_frame(START, b"\0" * 20)


def start_without_node_id(m, hello):
    m.tls.send_frame(START, b"\0" * 5)


def record_before_start(m, hello):
    m.tls.send_frame(RECORD, m.z(record(m.pos + 1, "user.passwd",
                                        user="alice", value="x")))


def refused(m, hello):
    m.tls.send_frame(REFUSE, b"protocol version not supported")


# Logged to its first 100 bytes: the 100th is the b.
LONG_REASON = "refused " + "a" * 91 + "b" + "c" * 300


def refused_at_length(m, hello):
    m.tls.send_frame(REFUSE, LONG_REASON.encode())


def master_is_itself(m, hello):
    m.tls.send_frame(START, head(hello["node_id"], m.epoch, m.pos))


def bad_want(m, hello):
    m.tls.send_frame(RECONCILE, head(m.node_id, m.epoch, m.pos))
    m.tls.send_frame(INV_WANT, b"\0" * 3)


def short_reconcile(m, hello):
    m.tls.send_frame(RECONCILE, b"\0" * 20)


def bad_reconciled(m, hello):
    m.tls.send_frame(RECONCILE, head(m.node_id, m.epoch, m.pos))
    m.tls.send_frame(START, head(os.urandom(16), m.epoch, m.pos))


def bad_pull(m, hello):
    m.tls.send_frame(RECONCILE, head(m.node_id, m.epoch, m.pos))
    m.tls.send_frame(PULL, b"\0" * 5)


STREAM_CASES = [
    (bad_inflate, "bad stream frame"),
    (chunk_to_the_limit, "bad stream frame"),
    (chunk_past_the_limit, "bad stream frame"),
    (data_without_record, "bad stream frame"),
    (sequence_gap, "bad stream frame"),
    (oversize_batch, "bad stream frame"),
    (body_not_its_guid, "sync.body.corrupt"),
    (data_past_body, "bad stream frame"),
    (record_mid_body, "bad stream frame"),
    (end_mid_body, "batch end at"),
    (empty_body_not_its_guid, "sync.body.corrupt"),
    (bad_record, "bad stream frame"),
    (end_mismatch, "batch end at"),
    (empty_batch, "batch end at"),
    (bodies_past_memory, "bad stream frame"),
    (mailbox_of_no_valid_name, "sync.apply"),
    (rename_to_no_valid_name, "sync.apply"),
    (user_of_no_valid_name, "sync.apply"),
    (oversize_frame, "frame too long"),
    (unknown_frame, "bad stream frame"),
    (short_end, "bad stream frame"),
    (short_never_held, "bad NEVER_HELD"),
]

START_CASES = [
    (bad_start_position, "bad START"),
    (short_start, "bad START"),
    (start_without_node_id, "bad START"),
    (record_before_start, "unexpected frame"),
    (refused, "sync.refused"),
    (refused_at_length, 'ab"'),
    (master_is_itself, "sync.cycle"),
    (bad_want, "bad INV_WANT"),
    (short_reconcile, "bad RECONCILE"),
    (bad_reconciled, "bad START after reconciliation"),
    (bad_pull, "bad PULL"),
]


def test_replica_refuses_hostile_master(server, secret):
    port = free_port()
    m = ScriptedMaster(port, SECRET)
    try:
        rep = server(users=(), args=[
            "--replicate-from", "%s:%d" % (HOST, port),
            "--repl-secret-file", secret, "--name", "victim"])
        hello = m.accept()
        assert hello["version"] == VERSION and hello["name"] == "victim"
        m.start(hello)
        m.batch(("user.add", dict(user="alice", value="x")),
                ("mailbox.create", dict(user="alice", mailbox=m.mailbox,
                                        name="INBOX", uid=42, flags=1)),
                ("message.append", dict(mailbox=m.mailbox, uid=1,
                                        body=BODY)))
        kept = messages(rep.data)
        assert kept == [(1, hashlib.sha256(BODY).hexdigest().upper())]
        # Each stream case ends a connection; the next one meets a
        # case before START while there are some.
        starts = list(START_CASES)
        for case, logged in STREAM_CASES:
            since = len(rep.log_text())
            case(m)
            wait_log(rep, logged, since)
            if starts:
                case, logged = starts.pop(0)
                hello = m.accept()
                assert hello["applied"] == m.pos, (case.__name__, hello)
                since = len(rep.log_text())
                case(m, hello)
                wait_log(rep, logged, since)
            # It keeps its data and comes back from the same position.
            hello = m.accept()
            assert hello["applied"] == m.pos, (case.__name__, hello)
            assert messages(rep.data) == kept, case.__name__
            m.start(hello)
            m.passwd()
        assert not starts
        assert rep.running()
    finally:
        m.tls.close()


# --- a hostile replica against a real master -------------------------------

def reconciling(port):
    """A scripted replica the master reconciles (a new node): returns
    it after the master's RECONCILE, with its empty inventory sent."""
    return ScriptedReplica(SECRET, port).reconciling()


MASTER_CASES = {
    "version": (lambda port: _hello_case(port, version=VERSION - 1),
                "replica speaks another protocol version", REFUSE),
    "short hello": (lambda port: _hello_case(port, extra=None),
                    "bad HELLO", REFUSE),
    "long hello": (lambda port: _hello_case(port, extra=b"junk"),
                   "bad HELLO", REFUSE),
    "unknown frame": (lambda port: _after_reconcile(
        port, frame(ord("Z"), b"?")), "unexpected frame", None),
    "ack of no batch": (lambda port: _after_reconcile(
        port, frame(ACK, u64(99))), "ACK of no batch", None),
    "oversize frame": (lambda port: _after_reconcile(
        port, bytes([PING]) + struct.pack(">I", MAX_FRAME + 1)),
        "frame too long", None),
    "push too big": (lambda port: _after_reconcile(
        port, frame(PUSH, push(b"\0" * 16, 1, b"", size=1 << 40))),
        "bad PUSH", None),
    "push truncated": (lambda port: _after_reconcile(
        port, frame(PUSH, b"\0" * 20)), "bad PUSH", None),
    "push data alone": (lambda port: _after_reconcile(
        port, frame(PUSH_DATA, b"stray")), "PUSH_DATA out of place", None),
    "push body not its guid": (lambda port: _after_reconcile(
        port, frame(PUSH, push(b"\0" * 16, 1, BODY,
                               guid=hashlib.sha256(b"x").digest())) +
        frame(PUSH_DATA, BODY)), "sync.body.corrupt", None),
    "push twice": (lambda port: _after_reconcile(
        port, frame(PUSH, push(b"\0" * 16, 1, BODY)) +
        frame(PUSH, push(b"\0" * 16, 1, BODY))), "bad PUSH", None),
    "bad relocate": (lambda port: _after_reconcile(
        port, frame(RELOCATE, b"\0" * 10)), "bad RELOCATE", None),
    "expunged of uid 0": (lambda port: _after_reconcile(
        port, frame(EXPUNGED, b"\0" * 16 + b"\0" * 4 + b"\0" * 32 +
                    b"\0")), "bad EXPUNGED", None),
    "inventory after its end": (lambda port: _after_reconcile(
        port, frame(INV_MAILBOX, b"\0" * 10)), "unexpected frame", None),
    "bad inventory mailbox": (lambda port: _inventory_case(
        port, frame(INV_MAILBOX, inv_mailbox(b"\1" * 16, "X", "alice", 1,
                                             0))), "unexpected frame", None),
    "inventory chunk not asked for": (lambda port: _after_reconcile(
        port, frame(INV_MSGS, b"\0" * 16 + u64(0) + u64(5) + b"\1" +
                    u64(0))), "unexpected frame", None),
    "expunged for no reason": (lambda port: _after_reconcile(
        port, frame(EXPUNGED, b"\0" * 16 + struct.pack(">I", 1) +
                    b"\0" * 32 + b"\x7f")), "bad EXPUNGED", None),
    "hello at a negative position": (lambda port: _hello_case(
        port, applied=1 << 63), "bad HELLO", REFUSE),
}


def _hello_case(port, version=VERSION, extra=b"", applied=0):
    r = ScriptedReplica(SECRET, port)
    if extra is None:
        r.tls.send_frame(HELLO, bytes([VERSION]) + b"\0" * 10)
    else:
        r.hello(version, extra, applied=applied)
    return r


def _inventory_case(port, data):
    """A scripted replica that sends data in its inventory."""
    r = ScriptedReplica(SECRET, port)
    r.hello()
    t, _ = r.tls.read_frame()
    assert t == RECONCILE
    r.tls.send(data)
    return r


def _after_reconcile(port, data):
    r = reconciling(port)
    r.tls.send(data)
    return r


def test_master_refuses_hostile_replica(cluster):
    master, _ = cluster(0)
    assert lmtp_one(master.port, "alice@example.com",
                    message("kept"))[0].startswith("250")
    before = messages(master.data)
    for case in sorted(MASTER_CASES):
        run, logged, reply = MASTER_CASES[case]
        since = len(master.log_text())
        r = run(master.repl_port)
        try:
            if reply is not None:
                t, _ = r.tls.read_frame()
                assert t == reply, case
            assert r.tls.closed(), "%s: the master kept the connection" % (
                case)
            wait_log(master, logged, since)
        finally:
            r.close()
        assert messages(master.data) == before, case
    # It still serves, and a real replica follows it.
    assert lmtp_one(master.port, "alice@example.com",
                    message("after"))[0].startswith("250")
    rep = cluster.replica(master, 0)
    wait_same(master, rep)


def node_row(data):
    """The master's (node id, epoch) and {seq: hash} of its log."""
    db = sqlite3.connect("file:%s/mailrepd.db?mode=ro" % data, uri=True,
                         timeout=10)
    try:
        node = db.execute("SELECT node_id, epoch FROM node").fetchone()
        hashes = dict(db.execute("SELECT seq, hash FROM replog"))
    finally:
        db.close()
    return node, hashes


def test_master_refuses_a_replica_with_its_own_node_id(cluster):
    master, _ = cluster(0)
    (node_id, _), _ = node_row(master.data)
    r = ScriptedReplica(SECRET, master.repl_port, name="twin")
    try:
        since = len(master.log_text())
        r.node_id = node_id
        r.hello()
        t, p = r.tls.read_frame()
        assert t == REFUSE and b"this node's id" in p, (t, p)
        assert r.tls.closed()
        text = wait_log(master, "sync.replica.refused", since)
        assert "name=twin" in text
    finally:
        r.close()


def test_a_replica_that_comes_again_replaces_its_old_session(cluster):
    master, _ = cluster(0)
    old = reconciling(master.repl_port)
    new = ScriptedReplica(SECRET, master.repl_port, name=old.name)
    try:
        since = len(master.log_text())
        new.node_id = old.node_id
        new.hello()
        t, _ = new.tls.read_frame()
        assert t == RECONCILE
        wait_log(master, "sync.replica.replaced", since)
        assert old.tls.closed(), "the old session was kept"
        # Another node under the same name is refused while it is on.
        new.tls.send_frame(INV_END)
        third = ScriptedReplica(SECRET, master.repl_port, name=old.name)
        try:
            third.hello()
            t, p = third.tls.read_frame()
            assert t == REFUSE and b"name already in use" in p, (t, p)
        finally:
            third.close()
    finally:
        old.close()
        new.close()


def test_a_replica_of_another_log_at_the_same_position_reconciles(cluster):
    master, _ = cluster(0)
    for i in range(2):
        assert lmtp_one(master.port, "alice@example.com",
                        message("log %d" % i))[0].startswith("250")
    (node_id, epoch), hashes = node_row(master.data)
    seq = max(hashes)
    # The same position with the hash of this log there: streamed.
    same = ScriptedReplica(SECRET, master.repl_port, name="same")
    try:
        same.hello(follows=(node_id, epoch), applied=seq,
                   log_hash=hashes[seq])
        t, p = same.tls.read_frame()
        assert t == START and p[:16] == node_id, (t, p[:16])
    finally:
        same.close()
    # Another hash there: the replica applied another log.
    since = len(master.log_text())
    other = ScriptedReplica(SECRET, master.repl_port, name="other")
    try:
        other.hello(follows=(node_id, epoch), applied=seq,
                    log_hash=b"\x55" * 32)
        t, _ = other.tls.read_frame()
        assert t == RECONCILE
        text = wait_log(master, "sync.log.diverged", since)
        assert "name=other" in text and "applied=%d" % seq in text
    finally:
        other.close()
    assert messages(master.data) and master.running()


def expunges(data, uid):
    db = sqlite3.connect("file:%s/mailrepd.db?mode=ro" % data, uri=True,
                         timeout=10)
    try:
        return db.execute("SELECT count(*) FROM replog WHERE type = "
                          "'message.expunge' AND uid = ?",
                          (uid,)).fetchone()[0]
    finally:
        db.close()


def test_expunged_from_a_replica(cluster):
    """EXPUNGED (a replica's copy of a message went): the master
    expunges its own copy when it is that message; when it expunged it
    already, it logs the expunge again (which settles the replica); a
    copy that is another message stays."""
    master, _ = cluster(0)
    for tag in ("gone", "kept", "asked"):
        assert lmtp_one(master.port, "alice@example.com",
                        message(tag))[0].startswith("250")
    db = sqlite3.connect("file:%s/mailrepd.db?mode=ro" % master.data,
                         uri=True, timeout=10)
    try:
        box = db.execute("SELECT uniqueid FROM mailbox WHERE name = "
                         "'INBOX'").fetchone()[0]
        guids = dict(db.execute("SELECT m.uid, b.guid FROM message m "
                                "JOIN blob b ON b.id = m.blob_id"))
    finally:
        db.close()
    c = master.imap("alice")
    c.select("INBOX")
    assert c.uid("STORE", "1", "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert c.expunge()[0] == "OK"
    c.logout()
    assert expunges(master.data, 1) == 1
    r = reconciling(master.repl_port)
    try:
        since = len(master.log_text())

        def expunged(uid, guid):
            r.tls.send_frame(EXPUNGED, box + struct.pack(">I", uid) + guid +
                             b"\0")
        expunged(1, guids[1])
        expunged(2, guids[3])
        expunged(3, guids[3])
        text = wait_log(master, "sync.expunged", since)
        assert "uid=3" in text, text
        wait_messages(master.data, lambda m: [u for u, _ in m] == [2])
        assert expunges(master.data, 1) == 2
        assert expunges(master.data, 2) == 0
    finally:
        r.close()


def test_forget_needs_one_replica(cluster):
    """Two replicas were known under one name: `replica forget NAME`
    names neither, a name nobody has fails too."""
    master, _ = cluster(0)
    for _ in range(2):
        r = ScriptedReplica(SECRET, master.repl_port, name="dup")
        try:
            r.hello()
            t, _ = r.tls.read_frame()
            assert t == RECONCILE
        finally:
            r.close()
    p = run("replica", "forget", "dup", "--data", master.data)
    assert p.returncode == 1 and "2 replicas are named 'dup'" in p.stderr, \
        p.stderr
    p = run("replica", "forget", "nobody", "--data", master.data)
    assert p.returncode == 1 and "no replica 'nobody'" in p.stderr, p.stderr


def inv_mailbox(box, name, user, subscribed, uidvalidity, uidnext=1):
    """A replica's INV_MAILBOX (its digest matches nothing)."""
    return (box + b"\0" * 32 + string(name) + bytes([subscribed]) +
            string(user) + u64(uidvalidity) + string("") + u64(uidnext) +
            u64(0))


def records_until(r, kind):
    """Reads the master's frames until a record of kind: its user."""
    z = zlib.decompressobj()
    while True:
        t, p = r.tls.read_frame(FRAME_DEADLINE)
        if t not in (RECORD, DATA):
            continue
        item = z.decompress(p)
        if t != RECORD:
            continue
        n = struct.unpack(">H", item[16:18])[0]
        if item[18:18 + n].decode() == kind:
            return item


def record_flags(item):
    """The flags of a record as sync_rec_encode() writes it."""
    off = 16
    off += 2 + struct.unpack(">H", item[off:off + 2])[0]	# kind
    bits = item[off + 1]
    off += 2
    off += 2 + struct.unpack(">H", item[off:off + 2])[0]	# user
    off += (16 if bits & 1 else 0) + 8 + (32 if bits & 2 else 0) + 8
    return struct.unpack(">Q", item[off:off + 8])[0]


def test_reconciliation_of_an_inventory(cluster):
    """A replica's inventory names a mailbox of the master's with
    another subscription (the master's wins: a subscribe record) and a
    mailbox of a user the master does not have (kept on the replica,
    logged, never created on the master)."""
    master, _ = cluster(0)
    assert lmtp_one(master.port, "alice@example.com",
                    message("one"))[0].startswith("250")
    db = sqlite3.connect("file:%s/mailrepd.db?mode=ro" % master.data,
                         uri=True, timeout=10)
    try:
        box, uidvalidity, subscribed = db.execute(
            "SELECT uniqueid, uidvalidity, EXISTS (SELECT 1 FROM "
            "subscription s WHERE s.user_id = m.user_id AND "
            "s.name = m.name) FROM mailbox m "
            "WHERE name = 'INBOX'").fetchone()
    finally:
        db.close()
    since = len(master.log_text())
    r = ScriptedReplica(SECRET, master.repl_port)
    try:
        r.hello()
        t, _ = r.tls.read_frame()
        assert t == RECONCILE
        r.tls.send_frame(INV_MAILBOX, inv_mailbox(
            box, "INBOX", "alice", int(not subscribed), uidvalidity))
        r.tls.send_frame(INV_MAILBOX, inv_mailbox(
            os.urandom(16), "Lost", "ghost", 1, 77))
        r.tls.send_frame(INV_END)
        item = records_until(r, "user.subscribe")
        text = wait_log(master, "sync.reconcile.local_mailbox", since)
        assert "user=ghost mailbox=Lost" in text, text
    finally:
        r.close()
    assert record_flags(item) == (1 if subscribed else 0), item
    db = sqlite3.connect("file:%s/mailrepd.db?mode=ro" % master.data,
                         uri=True, timeout=10)
    try:
        assert db.execute("SELECT count(*) FROM mailbox WHERE name = "
                          "'Lost'").fetchone()[0] == 0
    finally:
        db.close()


def test_pushed_copies_are_renumbered_once(cluster):
    """PUSH: a replica's copy of a uid the master uses for another
    message.  The master expunges the uid and appends both messages
    above it; the same copy pushed again changes nothing more; a copy
    of a uid it never had is appended above its uids; a copy for a
    mailbox the master does not have is logged and dropped."""
    master, _ = cluster(0)
    assert lmtp_one(master.port, "alice@example.com",
                    message("mine"))[0].startswith("250")
    (box, mine), = [(b, g) for b, g in inbox_guids(master.data)]
    theirs = BODY
    r = reconciling(master.repl_port)
    try:
        since = len(master.log_text())
        r.tls.send_frame(PUSH, push(os.urandom(16), 1, theirs))
        r.tls.send_frame(PUSH_DATA, theirs)
        text = wait_log(master, "warn sync.renumber", since)
        assert "uid=1" in text, text
        since = len(master.log_text())
        r.tls.send_frame(PUSH, push(box, 1, theirs))
        r.tls.send_frame(PUSH_DATA, theirs)
        wait_log(master, "new_uid=", since)
        after = wait_messages(master.data,
                              lambda m: [u for u, _ in m] == [2, 3])
        assert sorted(g for _, g in after) == sorted(
            [mine.hex().upper(), hashlib.sha256(theirs).hexdigest().upper()])
        since = len(master.log_text())
        r.tls.send_frame(PUSH, push(box, 1, theirs))
        r.tls.send_frame(PUSH_DATA, theirs)
        wait_log(master, "again=1", since)
        # A copy of a uid the master never had is taken in above the
        # replica's uids; an empty one needs no PUSH_DATA.
        since = len(master.log_text())
        r.tls.send_frame(PUSH, push(box, 9, b""))
        wait_log(master, "sync.renumber name=hostile uid=9", since)
        empty = (10, hashlib.sha256(b"").hexdigest().upper())
        wait_messages(master.data, lambda m: m == after + [empty])
    finally:
        r.close()
    assert master.running()


def inbox_guids(data):
    db = sqlite3.connect("file:%s/mailrepd.db?mode=ro" % data, uri=True,
                         timeout=10)
    try:
        return db.execute("SELECT mb.uniqueid, b.guid FROM message m "
                          "JOIN blob b ON b.id = m.blob_id JOIN mailbox mb "
                          "ON mb.id = m.mailbox_id").fetchall()
    finally:
        db.close()
