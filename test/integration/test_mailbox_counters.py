"""Per-mailbox counters (messages, unseen, bytes) kept by the store in the
same transaction as every change: random APPEND, LMTP delivery, STORE,
EXPUNGE, COPY, MOVE, DELETE and a replica applying it all leave every
mailbox's counters equal to a full count, on the master and the replica;
STATUS answers from them; `mailrepd check` finds counters that lie; and
SEARCH UNSEEN answers from the unseen messages alone.
"""
import re
import sqlite3

import pytest

from conftest import DOMAIN, check_store, run
from test_isolation import UNDO_V26, undo_v24
from test_replication import (lmtp_one, make_cluster, message, secret,  # noqa: F401
                              wait_same)

COUNTED = ("SELECT mb.id, mb.name, mb.nmessages, mb.nunseen, mb.nbytes, "
           "(SELECT count(*) FROM message WHERE mailbox_id = mb.id), "
           "(SELECT count(*) FROM message WHERE mailbox_id = mb.id "
           "AND flags & 1 = 0), "
           "(SELECT coalesce(sum(b.size), 0) FROM message g JOIN blob b "
           "ON b.id = g.blob_id WHERE g.mailbox_id = mb.id) FROM mailbox mb")


@pytest.fixture
def cluster(server, secret):  # noqa: F811
    return make_cluster(server, secret)


def counters(data):
    """Every mailbox as (name, (kept counters), (counted))."""
    db = sqlite3.connect("file:%s/mailrepd.db?mode=ro" % data, uri=True,
                         timeout=10)
    try:
        rows = db.execute(COUNTED).fetchall()
    finally:
        db.close()
    return [(r[1], r[2:5], r[5:8]) for r in rows]


def assert_counted(data):
    rows = counters(data)
    assert rows
    for name, kept, counted in rows:
        assert kept == counted, (name, kept, counted)


def random_changes(c, rng, rounds):
    """Random IMAP changes through imaplib client c, on INBOX and Work;
    few mailbox deletes, below the replica's mass-delete guard."""
    deletes = 5
    for _ in range(rounds):
        op = rng.choice(("append", "seen", "unseen", "expunge", "copy",
                         "move", "delete", "flag"))
        box = rng.choice(("INBOX", "Work"))
        if op == "append":
            flags = rng.choice(("", "(\\Seen)", "(\\Flagged)"))
            body = message("ap%d" % rng.randrange(10 ** 6),
                           rng.randrange(3000))
            c.append(box, flags or None, None, body)
            continue
        if op == "delete" and deletes > 0:
            deletes -= 1
            c.select("INBOX")
            c.delete("Work")
            c.create("Work")
            continue
        if op == "delete":
            op = "seen"
        typ, data = c.select(box)
        n = int(data[0])
        if n == 0:
            continue
        lo = rng.randrange(1, n + 1)
        hi = rng.randrange(lo, n + 1)
        seqs = "%d:%d" % (lo, hi)
        if op == "seen":
            c.store(seqs, "+FLAGS", "(\\Seen)")
        elif op == "unseen":
            c.store(seqs, "-FLAGS", "(\\Seen)")
        elif op == "flag":
            c.store(seqs, "FLAGS", rng.choice(("(\\Deleted \\Seen)",
                                               "(\\Answered)", "()")))
        elif op == "expunge":
            c.store(seqs, "+FLAGS", "(\\Deleted)")
            c.expunge()
        elif op == "copy":
            c.copy(seqs, "INBOX" if box == "Work" else "Work")
        elif op == "move":
            c._simple_command("MOVE", seqs,
                              "INBOX" if box == "Work" else "Work")


def test_counters_equal_a_full_count_after_random_changes(cluster, rng):
    # Random expunges are no mass delete: the guard would hold them.
    master, (rep,) = cluster(1, replica_args=[
        "--guard-max-expunge-percent", "100",
        "--guard-max-mailbox-deletes", "1000"])
    c = master.imap("alice")
    c.create("Work")
    for i in range(6):
        assert lmtp_one(master.port, "alice@" + DOMAIN,
                        message("d%d" % i, i * 500))[0].startswith("250")
    random_changes(c, rng, 100)
    for i in range(3):
        assert lmtp_one(master.port, "alice@" + DOMAIN,
                        message("e%d" % i))[0].startswith("250")
    random_changes(c, rng, 60)
    # STATUS answers from the counters: the same as a full FETCH.
    for box in ("INBOX", "Work"):
        typ, data = c.status(box, "(MESSAGES UNSEEN SIZE)")
        got = dict(re.findall(rb"(MESSAGES|UNSEEN|SIZE) (\d+)", data[0]))
        typ, n = c.select(box, readonly=True)
        items = []
        if int(n[0]) > 0:
            typ, items = c.fetch("1:*", "(FLAGS RFC822.SIZE)")
        unseen = sum(1 for f in items if b"\\Seen" not in f)
        size = sum(int(re.search(rb"RFC822.SIZE (\d+)", f).group(1))
                   for f in items)
        assert int(got[b"MESSAGES"]) == len(items), (box, got)
        assert int(got[b"UNSEEN"]) == unseen, (box, got)
        assert int(got[b"SIZE"]) == size, (box, got)
    c.logout()
    wait_same(master, rep)
    assert_counted(master.data)
    assert_counted(rep.data)
    master.stop()
    rep.stop()
    check_store(master.data)
    check_store(rep.data)


def test_check_finds_counters_that_lie(server):
    s = server()
    assert lmtp_one(s.port, "alice@" + DOMAIN,
                    message("x"))[0].startswith("250")
    s.stop()
    check_store(s.data)
    with sqlite3.connect(s.data / "mailrepd.db") as db:
        db.execute("UPDATE mailbox SET nunseen = nunseen + 3 "
                   "WHERE name = 'INBOX'")
    db.close()
    p = run("check", "--data", s.data)
    assert p.returncode == 1, p.stdout
    assert re.search(r"(?m)^problem: .*INBOX.*unseen", p.stdout), p.stdout


def test_search_unseen_reads_only_unseen_messages(imap_srv):
    """SEARCH UNSEEN, also with other keys and under NOT, answers the
    same as a scan would, in UID order, also after flags change."""
    s = imap_srv
    c = s.imap("alice")
    for i in range(40):
        c.append("INBOX", "(\\Seen)" if i % 3 else None, None,
                 message("u%d" % i))
    c.select("INBOX")
    c.store("5", "+FLAGS", "(\\Seen)")       # was unseen
    c.store("8", "-FLAGS", "(\\Seen)")       # was seen
    c.store("3", "+FLAGS", "(\\Deleted)")
    c.expunge()                               # 3 goes, 4.. move down
    typ, data = c.fetch("1:*", "(FLAGS)")
    want = [i + 1 for i, f in enumerate(data) if b"\\Seen" not in f]
    typ, got = c.search(None, "UNSEEN")
    assert [int(x) for x in got[0].split()] == want
    typ, got = c.search(None, "UNSEEN", "SUBJECT", "u1")
    subj = [i for i in want if c.fetch(str(i), "(BODY.PEEK[HEADER.FIELDS "
            "(SUBJECT)])")[1][0][1].strip().startswith(b"Subject: u1")]
    assert [int(x) for x in got[0].split()] == subj
    typ, got = c.search(None, "NOT", "UNSEEN")
    assert [int(x) for x in got[0].split()] == [
        i for i in range(1, len(data) + 1) if i not in want]
    for keys in (("NOT", "SEEN"), ("OR", "UNSEEN", "NEW"), ("(UNSEEN)",),
                 ("UNSEEN", "NOT", "DELETED")):
        typ, got = c.search(None, *keys)
        assert [int(x) for x in got[0].split()] == want, keys
    typ, got = c.uid("SEARCH", "UNSEEN")
    uids = [int(x) for x in got[0].split()]
    assert uids == sorted(uids) and len(uids) == len(want)
    c.logout()


def test_schema_step_counts_an_older_store(server):
    """A store from before the counters of unseen messages and bytes
    (schema 16, made here by taking them out again, with a message count
    gone wrong too) gets all three counted when it is opened."""
    s = server()
    for i in range(5):
        assert lmtp_one(s.port, "alice@" + DOMAIN,
                        message("m%d" % i, i * 700))[0].startswith("250")
    s.stop()
    db = sqlite3.connect(s.data / "mailrepd.db")
    for sql in UNDO_V26:
        db.execute(sql)
    undo_v24(db)
    db.commit()
    db.executescript(
        "DROP TABLE uid_purged;"
        "DROP INDEX message_deleted;"
        "DROP TABLE copy_job;"
        "ALTER TABLE message DROP COLUMN savedate;"
        "DROP TABLE fts; DROP TABLE fts_skipped; DROP TABLE fts_state;"
        "DROP INDEX message_date;"
        "DROP INDEX message_unseen;"
        "ALTER TABLE mailbox DROP COLUMN nunseen;"
        "ALTER TABLE mailbox DROP COLUMN nbytes;"
        "UPDATE mailbox SET nmessages = nmessages + 7;"
        "UPDATE message SET flags = 1 WHERE uid % 2 = 0;"
        "PRAGMA user_version = 16;")
    db.close()
    check_store(s.data)
    assert_counted(s.data)
    kept = [k for name, k, _ in counters(s.data) if k[0] > 0]
    assert [k[:2] for k in kept] == [(5, 3)], kept
