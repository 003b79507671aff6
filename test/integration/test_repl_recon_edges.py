"""The edges of a full reconciliation that no well-behaved peer reaches,
driven on purpose by a scripted peer (repl_peer.py):

- a replica holding mail is asked by a scripted master for a mailbox it
  does not have (an empty last chunk; a PULL of it records nothing),
  and meets STARTs that cannot end the comparison it is in: another
  epoch, another head, in the middle of a batch.  Each time it refuses,
  logs, keeps every message, commits no position, and comes back
  reconciling from the same place; the START that does end it is
  acknowledged and the store is clean;
- a master meets a replica's inventory with bad fields, an INV_END with
  a payload, and chunks (INV_MSGS) that answer no question it asked,
  for a mailbox both have or one it deleted; PUSH, PUSH_DATA, RELOCATE
  and EXPUNGED frames out of range: each ends the link, logged, and its
  store is as it was;
- a mailbox the master deleted is compared chunk by chunk before its
  delete goes to the replica; a copy the master renumbered that comes
  back as renumbered elsewhere moves up rather than leaving every node;
  a newer name of the replica's that the master cannot take (another
  mailbox holds it, or its store refuses it) is not taken;
- a replica lists a mailbox of more than a chunk in chunks, cut at the
  last uid of each, every message once;
- a replica that meets the master's message at a uid it used for
  another, while it holds that message elsewhere, asks the master to
  expunge its copy (as renumbering) rather than to move it up;
- records whose fields are out of range or miss one their kind needs
  are refused by the replica, which keeps its data and comes back from
  the same position.
"""
import hashlib
import os
import struct
import zlib

from conftest import DOMAIN, run
from repl_peer import (ACK, DATA, END, EXPUNGED, INV_END, INV_MAILBOX,
                       INV_MSGS, INV_WANT, PULL, PUSH, PUSH_DATA, RECONCILE,
                       RECORD, RELOCATE, START, ScriptedReplica, frame,
                       head, messages, push, query, record,
                       scripted_master_for, string, u64, wait_log,
                       wait_messages)
from test_reconcile import deliver_many
from test_replication import (SECRET, cluster, lmtp_one,  # noqa: F401
                              message, secret)

RECON_CHUNK = 1024		# config.h SYNC_RECON_CHUNK


def restarted(node):
    """start(args) for scripted_master_for(): stopped node again, with
    args added to its own."""
    def start(args):
        node.args += args
        return node.start()
    return start


def inv_entry(p):
    """An INV_MAILBOX's (uniqueid, name, user)."""
    off = 16 + 32
    n = struct.unpack(">H", p[off:off + 2])[0]
    name = p[off + 2:off + 2 + n].decode()
    off += 2 + n + 1
    n = struct.unpack(">H", p[off:off + 2])[0]
    return p[:16], name, p[off + 2:off + 2 + n].decode()


def inv_msgs(p):
    """An INV_MSGS as (uniqueid, after, hi, last, [(uid, guid)])."""
    box = p[:16]
    after, hi = struct.unpack(">QQ", p[16:32])
    last = p[32]
    count = struct.unpack(">Q", p[33:41])[0]
    off, got = 41, []
    for _ in range(count):
        uid = struct.unpack(">Q", p[off:off + 8])[0]
        g = p[off + 16:off + 48]
        n = struct.unpack(">H", p[off + 48:off + 50])[0]
        off += 50 + n
        got.append((uid, g.hex().upper()))
    assert off == len(p), (off, len(p))
    return box, after, hi, last, got


def inventory(m):
    """RECONCILE at the scripted master's position: the replica's
    mailboxes as {(user, name): uniqueid}."""
    boxes = {}
    for t, p in m.reconcile():
        assert t == INV_MAILBOX, t
        box, name, user = inv_entry(p)
        boxes[(user, name)] = box
    return boxes


def want(m, box, after=0):
    """INV_WANT of box after uid; the replica's INV_MSGS, parsed."""
    m.tls.send_frame(INV_WANT, box + struct.pack(">I", after))
    t, p = m.tls.read_frame()
    assert t == INV_MSGS, t
    return inv_msgs(p)


def start_of_another_epoch(m):
    m.tls.send_frame(START, head(m.node_id, os.urandom(8), m.pos))


def start_at_another_head(m):
    m.tls.send_frame(START, head(m.node_id, m.epoch, m.pos + 1))


def start_in_a_batch(m):
    m.tls.send_frame(RECORD, m.z(record(1, "user.passwd", user="alice",
                                        value="x")))
    m.tls.send_frame(START, head(m.node_id, m.epoch, m.pos))


def test_a_replica_with_mail_meets_a_bad_end_of_reconciliation(server,
                                                                secret):
    rep = server()
    for i in range(3):
        assert lmtp_one(rep.port, "alice@" + DOMAIN,
                        message("local%d" % i))[0].startswith("250")
    kept = messages(rep.data)
    rep.stop()
    m, _ = scripted_master_for(restarted(rep), secret)
    try:
        for case in (start_of_another_epoch, start_at_another_head,
                     start_in_a_batch):
            hello = m.accept()
            assert hello["has_master"] == 0, (case.__name__, hello)
            boxes = inventory(m)
            inbox = boxes[("alice", "INBOX")]
            # A mailbox it does not have: an empty, last chunk.
            nowhere = os.urandom(16)
            assert want(m, nowhere, 5) == (nowhere, 5, 0xFFFFFFFF, 1, [])
            # Its own: every message, in one last chunk.
            assert want(m, inbox) == (inbox, 0, 0xFFFFFFFF, 1, kept)
            # A PULL of a mailbox it does not have: nothing to keep.
            m.tls.send_frame(PULL, nowhere + struct.pack(">I", 1) +
                             b"\1" * 32)
            assert want(m, nowhere) == (nowhere, 0, 0xFFFFFFFF, 1, [])
            assert query(rep.data, "SELECT count(*) FROM conflict") == \
                [(0,)]
            since = len(rep.log_text())
            case(m)
            wait_log(rep, "bad START after reconciliation", since)
            assert messages(rep.data) == kept, case.__name__
        # The START that ends it: acknowledged, and then it follows.
        hello = m.accept()
        assert hello["has_master"] == 0, hello
        inventory(m)
        m.reconciled()
        wait_log(rep, "sync.reconcile.done", 0)
        m.passwd()
        assert messages(rep.data) == kept
        assert rep.running()
    finally:
        m.tls.close()
    rep.stop()
    check = run("check", "--data", rep.data)
    assert check.returncode == 0, check.stdout + check.stderr


# --- a scripted replica against a real master --------------------------------

def inv_mailbox(box, name="INBOX", user="alice", uidvalidity=1, uidnext=1,
                named=0, extra=b"", digest=b"\0" * 32):
    """A replica's INV_MAILBOX (by default a digest that matches
    nothing, so the master asks for its messages)."""
    return (box + digest + string(name) + b"\1" + string(user) +
            u64(uidvalidity) + string("") + u64(uidnext) + u64(named) + extra)


def mailbox_row(data, name, user="alice"):
    """(uniqueid, uidvalidity) of user's mailbox name on a node."""
    return query(data, "SELECT m.uniqueid, m.uidvalidity FROM mailbox m "
                 "JOIN user u ON u.id = m.user_id WHERE u.name = ? AND "
                 "m.name = ?", (user, name))[0]


def chunk(box, after, hi, last, entries=(), count=None):
    """An INV_MSGS: entries are (uid, guid); count, when given, is what
    it claims to hold."""
    p = box + u64(after) + u64(hi) + bytes([last]) + u64(
        len(entries) if count is None else count)
    for uid, g in entries:
        p += u64(uid) + u64(0) + g + string("")
    return p


def compared(r, answer, until=None):
    """Runs a scripted replica through the master's comparison:
    acknowledges every batch, hands each INV_WANT's payload to answer
    (which returns the frames to send), and returns the kinds of the
    records it got once until(kinds) holds (or START comes, or the
    master closes the link)."""
    z = zlib.decompressobj()
    kinds = []
    while until is None or not until(kinds):
        try:
            t, p = r.tls.read_frame()
        except AssertionError:
            if r.tls.eof:
                return kinds
            raise
        if t == START:
            return kinds
        if t == END:
            r.tls.send_frame(ACK, p[:8])
        elif t == INV_WANT:
            r.tls.send(answer(p))
        elif t == RECORD:
            item = z.decompress(p)
            n = struct.unpack(">H", item[16:18])[0]
            kinds.append(item[18:18 + n].decode())
        elif t == DATA:
            z.decompress(p)
    return kinds


def inventory_of(port, *boxes):
    """A scripted replica that sent boxes (INV_MAILBOX payloads) as its
    inventory, and INV_END."""
    r = ScriptedReplica(SECRET, port)
    r.hello()
    t, _ = r.tls.read_frame()
    assert t == RECONCILE, t
    for b in boxes:
        r.tls.send_frame(INV_MAILBOX, b)
    r.tls.send_frame(INV_END)
    return r


def test_master_refuses_a_hostile_inventory_and_chunks(cluster):
    """Bad INV_MAILBOX fields, an INV_END with a payload, and chunks
    (INV_MSGS) that answer no question the master asked, for a mailbox
    both have or one it deleted: each ends the link, logged, and the
    master's store is as it was; a replica that answers well then
    reconciles."""
    master, _ = cluster(0)
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("kept"))[0].startswith("250")
    c = master.imap("alice")
    assert c.create("Old")[0] == "OK"
    assert c.append("Old", None, None, message("old"))[0] == "OK"
    c.logout()
    inbox, uidvalidity = mailbox_row(master.data, "INBOX")
    old, old_validity = mailbox_row(master.data, "Old")
    c = master.imap("alice")
    assert c.delete("Old")[0] == "OK"
    c.logout()
    before = messages(master.data)
    mine = inv_mailbox(inbox, uidvalidity=uidvalidity, uidnext=2)
    gone = inv_mailbox(old, name="Old", uidvalidity=old_validity, uidnext=2)

    def bad_inventory(box):
        return lambda: inventory_of(master.repl_port, box)

    def bad_chunk(box, answer):
        def run():
            r = inventory_of(master.repl_port, box)
            compared(r, answer)
            return r
        return run

    cases = [
        ("trailing bytes", bad_inventory(inv_mailbox(
            inbox, uidvalidity=uidvalidity, extra=b"?"))),
        ("uidvalidity 0", bad_inventory(inv_mailbox(inbox,
                                                     uidvalidity=0))),
        ("uidvalidity past 32 bits", bad_inventory(inv_mailbox(
            inbox, uidvalidity=1 << 32))),
        ("uidnext past 32 bits", bad_inventory(inv_mailbox(
            inbox, uidvalidity=uidvalidity, uidnext=1 << 32))),
        ("renamed in the far future", bad_inventory(inv_mailbox(
            inbox, uidvalidity=uidvalidity, named=1 << 63))),
        ("short inventory mailbox", bad_inventory(b"\1" * 10)),
        ("inventory end with a payload", lambda: _end_with_payload(
            master.repl_port)),
        ("inventory end twice", lambda: _end_twice(master.repl_port)),
        ("short chunk", bad_chunk(mine, lambda p: frame(
            INV_MSGS, inbox + b"\0" * 4))),
        ("chunk of another mailbox", bad_chunk(mine, lambda p: frame(
            INV_MSGS, chunk(os.urandom(16), 0, 5, 1)))),
        ("chunk after another uid", bad_chunk(mine, lambda p: frame(
            INV_MSGS, chunk(inbox, 7, 9, 1)))),
        ("chunk that ends where it starts", bad_chunk(mine, lambda p: frame(
            INV_MSGS, chunk(inbox, 0, 0, 1)))),
        ("chunk of too many", bad_chunk(mine, lambda p: frame(
            INV_MSGS, chunk(inbox, 0, 5, 1, count=1 << 20)))),
        ("chunk short of its entries", bad_chunk(mine, lambda p: frame(
            INV_MSGS, chunk(inbox, 0, 5, 1, count=2)))),
        ("deleted mailbox: another one's chunk", bad_chunk(
            gone, lambda p: frame(INV_MSGS, chunk(inbox, 0, 5, 1)))),
        ("deleted mailbox: a short chunk", bad_chunk(
            gone, lambda p: frame(INV_MSGS, b"\0" * 5))),
        ("deleted mailbox: a chunk after another uid", bad_chunk(
            gone, lambda p: frame(INV_MSGS, chunk(old, 3, 9, 1)))),
        ("deleted mailbox: a chunk that ends where it starts", bad_chunk(
            gone, lambda p: frame(INV_MSGS, chunk(old, 0, 0, 1)))),
        ("deleted mailbox: a chunk short of its entries", bad_chunk(
            gone, lambda p: frame(INV_MSGS, chunk(old, 0, 5, 1, count=3)))),
    ]
    for case, make in cases:
        since = len(master.log_text())
        r = make()
        try:
            assert r.tls.closed(), "%s: the master kept the link" % case
            text = wait_log(master, "sync.protocol", since)
            assert "unexpected frame" in text or "no split" in text, (
                case, text)
        finally:
            r.close()
        assert messages(master.data) == before, case
    assert master.running()


def _end_with_payload(port):
    r = ScriptedReplica(SECRET, port)
    r.hello()
    t, _ = r.tls.read_frame()
    assert t == RECONCILE, t
    r.tls.send_frame(INV_END, b"x")
    return r


def _end_twice(port):
    r = ScriptedReplica(SECRET, port).reconciling()
    r.tls.send_frame(INV_END)
    return r


def test_a_mailbox_deleted_here_is_asked_for_in_chunks(cluster):
    """A replica still has a mailbox the master deleted: the master asks
    for its messages chunk by chunk (a chunk that is not the last brings
    the next question, after its last uid), finds every one among its
    tombstones, and sends the delete; nothing is made again here."""
    master, _ = cluster(0)
    c = master.imap("alice")
    assert c.create("Old")[0] == "OK"
    assert c.append("Old", None, None, message("old"))[0] == "OK"
    c.logout()
    old, validity = mailbox_row(master.data, "Old")
    (g,), = query(master.data, "SELECT b.guid FROM message m JOIN blob b "
                  "ON b.id = m.blob_id JOIN mailbox mb ON mb.id = "
                  "m.mailbox_id WHERE mb.name = 'Old'")
    c = master.imap("alice")
    assert c.delete("Old")[0] == "OK"
    c.logout()
    before = messages(master.data)
    asked = []

    def answer(p):
        asked.append(p)
        after = struct.unpack(">I", p[16:20])[0]
        assert p[:16] == old and after == (0, 1)[len(asked) - 1], p
        if after == 0:
            return frame(INV_MSGS, chunk(old, 0, 1, 0, [(1, g)]))
        return frame(INV_MSGS, chunk(old, 1, 0xFFFFFFFF, 1))

    r = inventory_of(master.repl_port, inv_mailbox(
        old, name="Old", uidvalidity=validity, uidnext=2))
    try:
        kinds = compared(r, answer, lambda k: "mailbox.delete" in k)
    finally:
        r.close()
    assert len(asked) == 2 and "mailbox.delete" in kinds, (asked, kinds)
    assert query(master.data, "SELECT count(*) FROM mailbox WHERE name = "
                 "'Old'") == [(0,)]
    assert messages(master.data) == before


def raw_push(box, uid=1, flags=0, size=0, above=2, g=b"\0" * 32):
    """A PUSH with any field's value."""
    return (box + u64(uid) + g + u64(flags) + u64(1700000000) + u64(size) +
            string("") + u64(above))


def test_master_refuses_bad_copies_and_requests(cluster):
    """PUSH with a uid of 0 or past the UID space, flags or a UIDNEXT
    past 32 bits; more PUSH_DATA than the PUSH announced; RELOCATE of
    uid 0; EXPUNGED of the wrong length: each ends the link, logged,
    and changes nothing on the master."""
    master, _ = cluster(0)
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("kept"))[0].startswith("250")
    inbox, _ = mailbox_row(master.data, "INBOX")
    before = messages(master.data)
    cases = [
        ("push of uid 0", frame(PUSH, raw_push(inbox, uid=0)), "bad PUSH"),
        ("push of 5 bytes", frame(PUSH, b"\0" * 5), "bad PUSH"),
        ("push with a byte more", frame(PUSH, raw_push(inbox) + b"?"),
         "bad PUSH"),
        ("push past the uid space", frame(PUSH, raw_push(
            inbox, uid=0xFFFFFFFF)), "bad PUSH"),
        ("push of 33-bit flags", frame(PUSH, raw_push(
            inbox, flags=1 << 32)), "bad PUSH"),
        ("push of a 33-bit uidnext", frame(PUSH, raw_push(
            inbox, above=1 << 32)), "bad PUSH"),
        ("push data past its size", frame(PUSH, raw_push(
            inbox, uid=9, size=4, above=10)) + frame(PUSH_DATA, b"too long"),
         "PUSH_DATA out of place"),
        ("relocate of uid 0", frame(RELOCATE, inbox + b"\0" * 4 +
                                    b"\0" * 32 + b"\0\0\0\5"),
         "bad RELOCATE"),
        ("expunged of the wrong length", frame(EXPUNGED, inbox + b"\0" * 9),
         "bad EXPUNGED"),
    ]
    for case, data, logged in cases:
        since = len(master.log_text())
        r = ScriptedReplica(SECRET, master.repl_port).reconciling()
        try:
            r.tls.send(data)
            assert r.tls.closed(), "%s: the master kept the link" % case
            wait_log(master, logged, since)
        finally:
            r.close()
        assert messages(master.data) == before, case
    assert master.running()


def test_a_copy_renumbered_twice_moves_up_rather_than_goes(cluster):
    """A replica's copy that this master renumbered (PUSH, its body in
    two PUSH_DATA) comes back as EXPUNGED for renumbering: another
    master numbered it again.  The master keeps it and moves it up
    (dropping it would leave the message on no node)."""
    master, _ = cluster(0)
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("mine"))[0].startswith("250")
    inbox, _ = mailbox_row(master.data, "INBOX")
    theirs = (b"From: <s@remote.test>\r\nTo: <alice@example.com>\r\n"
              b"Subject: theirs\r\n\r\n" + b"t" * 3000 + b"\r\n")
    tg = hashlib.sha256(theirs).digest()
    r = ScriptedReplica(SECRET, master.repl_port).reconciling()
    try:
        since = len(master.log_text())
        r.tls.send_frame(PUSH, push(inbox, 1, theirs))
        r.tls.send_frame(PUSH_DATA, theirs[:1000])
        r.tls.send_frame(PUSH_DATA, theirs[1000:])
        wait_log(master, "new_uid=", since)
        got = wait_messages(master.data, lambda x: len(x) == 2 and
                            tg.hex().upper() in [h for _, h in x])
        (at,), = [(u,) for u, h in got if h == tg.hex().upper()]
        since = len(master.log_text())
        r.tls.send_frame(EXPUNGED, inbox + struct.pack(">I", at) + tg +
                         bytes([3]))		# renumber
        text = wait_log(master, "the copy here moves up", since)
        assert "uid=%d" % at in text, text
        moved = wait_messages(master.data, lambda x: tg.hex().upper() in
                              [h for u, h in x if u > at])
    finally:
        r.close()
    assert sorted(h for _, h in moved) == sorted(h for _, h in got)
    assert master.running()


def test_a_newer_name_the_master_cannot_take_is_not_taken(cluster):
    """A replica's copy of a mailbox was renamed there after the
    master's name was given (the newer name wins), but to a name
    another mailbox of the master's holds, or to one the master's store
    refuses: the master keeps its name and sends it to the replica."""
    master, _ = cluster(0)
    c = master.imap("alice")
    for name in ("Work", "Taken"):
        assert c.create(name)[0] == "OK"
    c.logout()
    work, validity = mailbox_row(master.data, "Work")
    for newer in ("Taken", "a//b"):
        since = len(master.log_text())
        r = inventory_of(master.repl_port, inv_mailbox(
            work, name=newer, uidvalidity=validity, named=1 << 40))
        try:
            kinds = compared(r, lambda p: frame(INV_MSGS, chunk(
                p[:16], 0, 0xFFFFFFFF, 1)))
        finally:
            r.close()
        assert "mailbox.rename" in kinds, (newer, kinds)
        assert mailbox_row(master.data, "Work") == (work, validity), newer
        assert ("result=" in master.log_text()[since:]) == (
            newer != "Taken"), newer
    assert master.running()


def test_a_replica_lists_more_than_a_chunk_in_chunks(server, secret):
    """A replica mailbox of more messages than one comparison chunk
    (config.h SYNC_RECON_CHUNK) is listed in chunks: the first ends at
    its last uid and is not the last; asked after it, the rest comes;
    together every message once."""
    rep = server()
    deliver_many(rep.port, "alice@" + DOMAIN, RECON_CHUNK + 3, "c")
    kept = messages(rep.data)
    rep.stop()
    m, _ = scripted_master_for(restarted(rep), secret)
    try:
        m.accept()
        inbox = inventory(m)[("alice", "INBOX")]
        box, after, hi, last, first = want(m, inbox)
        assert (box, after, last, len(first)) == (inbox, 0, 0, RECON_CHUNK)
        assert hi == first[-1][0]
        box, after, hi, last, rest = want(m, inbox, hi)
        assert (after, hi, last) == (first[-1][0], 0xFFFFFFFF, 1)
        assert first + rest == kept
    finally:
        m.tls.close()


def stream_with_inbox(m, *recs):
    """Starts scripted master m's stream: alice, her INBOX (m.mailbox)
    and recs are its first batch."""
    m.start(m.accept())
    m.batch(("user.add", dict(user="alice", value="x")),
            ("mailbox.create", dict(user="alice", mailbox=m.mailbox,
                                    name="INBOX", uid=42, flags=1)), *recs)


def test_a_reused_uid_of_a_message_held_elsewhere_asks_an_expunge(server,
                                                                 secret):
    """The master puts its message A at a uid the replica used for
    another message B (expunged there), while the replica holds A at
    another uid already (renumbered there after the master's copy was
    made): moving the master's A up would make it twice, so the replica
    asks the master to expunge its copy, as renumbering; A and the
    replica's data stay."""
    a = b"From: <s@remote.test>\r\nSubject: a\r\n\r\nbody a\r\n"
    b = b"From: <s@remote.test>\r\nSubject: b\r\n\r\nbody b\r\n"
    ga, gb = hashlib.sha256(a).digest(), hashlib.sha256(b).digest()
    m, rep = scripted_master_for(
        lambda args: server(users=(), args=args), secret)
    try:
        stream_with_inbox(
            m, ("message.append", dict(mailbox=m.mailbox, uid=1, body=a)),
            ("message.append", dict(mailbox=m.mailbox, uid=2, body=b)),
            ("message.expunge", dict(mailbox=m.mailbox, uid=2, guid=gb)))
        kept = messages(rep.data)
        since = len(rep.log_text())
        m.batch(("message.append", dict(mailbox=m.mailbox, uid=2, body=a)))
        while True:
            t, p = m.tls.read_frame()
            if t == EXPUNGED:
                break
        assert p == m.mailbox + struct.pack(">I", 2) + ga + bytes([3]), p
        wait_log(rep, "reason=renumber", since)
        assert messages(rep.data) == kept == [(1, ga.hex().upper())]
        assert rep.running()
    finally:
        m.tls.close()


def patched(rec, kind, reason=None, bits=None):
    """A record() with its reason or bits byte set to any value."""
    off = 16 + 2 + len(kind)
    rec = bytearray(rec)
    if reason is not None:
        rec[off] = reason
    if bits is not None:
        rec[off + 1] = bits
    return bytes(rec)


def bad_records(box):
    """(what, record payload at position 1) of records that decode but
    hold a field out of range or miss one their kind needs."""
    g = b"\1" * 32
    flags = dict(mailbox=box, uid=1, guid=g)
    return [
        ("unknown bits", patched(record(1, "user.passwd", user="alice",
                                        value="x"), "user.passwd",
                                 bits=8)),
        ("a reason past the list", patched(record(
            1, "user.passwd", user="alice", value="x"), "user.passwd",
            reason=9)),
        ("a uid past 32 bits", record(1, "message.flags", mailbox=box,
                                      uid=1 << 32, guid=g)),
        ("flags past 32 bits", record(1, "message.flags", flags=1 << 32,
                                      **flags)),
        ("a body past a terabyte", record(1, "message.append",
                                          body_size=(1 << 40) + 1,
                                          **flags)),
        ("no user", record(1, "user.passwd", value="x")),
        ("no mailbox", record(1, "message.flags", uid=1, guid=g)),
        ("no guid", record(1, "message.flags", mailbox=box, uid=1)),
        ("uid 0", record(1, "message.flags", mailbox=box, uid=0, guid=g)),
        ("no name", record(1, "mailbox.rename", mailbox=box)),
        ("no value", record(1, "user.passwd", user="alice")),
        ("renumbered from above itself", record(
            1, "message.append", body_size=0, value="5", **flags)),
        ("renumbered from no number", record(
            1, "message.append", body_size=0, value="x1", **flags)),
        ("a body on a kind without one", record(
            1, "user.passwd", user="alice", value="x", body_size=3)),
    ]


def test_replica_refuses_records_out_of_range(server, secret):
    """Records whose fields are out of range, or that lack one their
    kind needs: the replica refuses the frame, logs, keeps what it had
    and comes back from the same position; a good batch then applies."""
    m, rep = scripted_master_for(
        lambda args: server(users=(), args=args), secret)
    try:
        stream_with_inbox(m, ("message.append", dict(
            mailbox=m.mailbox, uid=1, body=b"kept\r\n")))
        kept = messages(rep.data)
        for what, rec in bad_records(m.mailbox):
            rec = u64(m.pos + 1) + rec[8:]
            since = len(rep.log_text())
            m.tls.send_frame(RECORD, m.z(rec))
            wait_log(rep, "bad stream frame", since)
            hello = m.accept()
            assert hello["applied"] == m.pos, (what, hello)
            assert messages(rep.data) == kept, what
            m.start(hello)
            m.passwd()		# a good batch: the next retry comes soon
        assert messages(rep.data) == kept
        assert rep.running()
    finally:
        m.tls.close()
