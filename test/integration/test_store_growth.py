"""A store that does not grow without bound.

Tombstones (of expunged messages and deleted mailboxes) go once every
known replica has them and they are older than --tombstone-retention,
never before: a stopped replica keeps them.  What a replica deleted
leaves quarantine after --quarantine-days.  A QRESYNC client asking from
a MODSEQ older than the tombstones kept is still told of every expunge
(RFC 7162 3.2.5.2: VANISHED (EARLIER) of every UID it may know that is
not there), and so is a session that stayed selected across the purge.
The WAL returns below its bound after a burst that a reader made it
outgrow.  `mailrepd status` shows each table's rows and the file sizes.
"""
import os
import re
import sqlite3
import time

import pytest

from conftest import DOMAIN, HOST, free_port, run_ok
from test_replication import lmtp_one, message, status, wait_same

SECRET = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
RETENTION = 2           # seconds: --tombstone-retention in these tests
PURGE_DEADLINE = 30.0   # seconds for a purge that is due (loaded machine)
WAL_LIMIT = 16 << 20    # STORE_WAL_LIMIT


@pytest.fixture
def pair(server, tmp_path):
    """(master, replica) with short retention on both."""
    secret = tmp_path / "repl.secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    keep = ["--tombstone-retention", str(RETENTION), "--quarantine-days",
            "0", "--repl-secret-file", secret]
    port = free_port()
    master = server(imap=True, args=keep + [
        "--repl-listen", "%s:%d" % (HOST, port)])
    replica = server(users=(), imap=True, args=keep + [
        "--replicate-from", "%s:%d" % (HOST, port), "--name", "replica0"])
    return master, replica


def tables(data):
    return status(data)["tables"]


def wait_for(what, pred, deadline=PURGE_DEADLINE):
    end = time.monotonic() + deadline
    while not pred():
        assert time.monotonic() < end, "timed out waiting for " + what
        time.sleep(0.2)


def deliver(srv, n, tag):
    for i in range(n):
        assert lmtp_one(srv.port, "alice@" + DOMAIN,
                        message("%s%d" % (tag, i)))[0].startswith("250")


def expunge_uids(srv, uids):
    c = srv.raw("alice")
    c.ok("SELECT INBOX")
    c.ok("UID STORE %s +FLAGS.SILENT (\\Deleted)" % ",".join(map(str, uids)))
    c.ok("EXPUNGE")
    c.ok("LOGOUT")


def test_tombstones_go_once_the_replica_has_them(pair):
    master, replica = pair
    deliver(master, 6, "a")
    wait_same(master, replica)
    expunge_uids(master, [1, 2, 3])
    c = master.raw("alice")
    c.ok("CREATE Gone")
    c.ok("DELETE Gone")
    c.ok("LOGOUT")
    wait_same(master, replica)
    # Everything replicated and past retention: purged on both nodes, and
    # the replica's quarantine (0 days) is emptied with its blobs.
    wait_for("the master's tombstones to go", lambda: (
        lambda t: t["expunged"] == 0 and t["mailbox_gone"] == 0)(
            tables(master.data)))
    wait_for("the replica's tombstones and quarantine to go", lambda: (
        lambda t: t["expunged"] == 0 and t["quarantine"] == 0 and
        t["blob"] == 3)(tables(replica.data)))
    t = tables(master.data)
    assert t["message"] == 3 and t["blob"] == 3, t


def test_a_stopped_replica_keeps_the_tombstones(pair):
    master, replica = pair
    deliver(master, 6, "b")
    wait_same(master, replica)
    replica.stop()
    expunge_uids(master, [2, 4])
    # Well past retention and several purge steps: the replica has not
    # acknowledged the expunges, so their tombstones stay.
    time.sleep(RETENTION + 4)
    assert tables(master.data)["expunged"] == 2
    replica.start()
    wait_same(master, replica)
    wait_for("the tombstones to go once the replica has them",
             lambda: tables(master.data)["expunged"] == 0)


def uid_set(text):
    """The UIDs of an IMAP sequence set such as '2:3,5'."""
    out = set()
    for part in text.split(","):
        lo, _, hi = part.partition(":")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def vanished_earlier(lines):
    sets = [l[len("* VANISHED (EARLIER) "):] for l in lines
            if l.startswith("* VANISHED (EARLIER) ")]
    assert len(sets) <= 1, lines
    return uid_set(sets[0]) if sets else set()


def selected_state(c):
    """(UIDVALIDITY, HIGHESTMODSEQ) of a SELECT just done."""
    lines = c.ok("SELECT INBOX")
    text = "\n".join(lines)
    return (int(re.search(r"UIDVALIDITY (\d+)", text).group(1)),
            int(re.search(r"HIGHESTMODSEQ (\d+)", text).group(1)))


def qresync_checks(srv, uidvalidity, modseq, gone, held):
    """QRESYNC from modseq tells of every UID in gone, of none in held."""
    c = srv.raw("alice")
    assert c.ok("ENABLE QRESYNC") == ["* ENABLED QRESYNC"]
    lines = c.ok("SELECT INBOX (QRESYNC (%d %d))" % (uidvalidity, modseq))
    told = vanished_earlier(lines)
    assert gone <= told and not told & held, lines
    lines = c.ok("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" %
                 modseq)
    told = vanished_earlier(lines)
    assert gone <= told and not told & held, lines
    # Limited to the known UIDs the client names.
    c.ok("UNSELECT")
    lines = c.ok("SELECT INBOX (QRESYNC (%d %d 3:6))" % (uidvalidity,
                                                        modseq))
    told = vanished_earlier(lines)
    assert gone & set(range(3, 7)) <= told <= set(range(3, 7)) - held, lines
    c.ok("LOGOUT")
    return told


def test_qresync_from_tombstones_is_exact(server):
    srv = server(imap=True)
    deliver(srv, 8, "q")
    c = srv.raw("alice")
    uidvalidity, modseq = selected_state(c)
    c.ok("LOGOUT")
    expunge_uids(srv, [2, 3, 5])
    told = qresync_checks(srv, uidvalidity, modseq, {2, 3, 5},
                          {1, 4, 6, 7, 8})
    assert told == {3, 5}
    # A stale UIDVALIDITY: a plain SELECT, nothing to resynchronise.
    c = srv.raw("alice")
    c.ok("ENABLE QRESYNC")
    lines = c.ok("SELECT INBOX (QRESYNC (%d %d))" % (uidvalidity + 1,
                                                     modseq))
    assert vanished_earlier(lines) == set()


def test_qresync_after_the_purge_still_tells_every_expunge(server):
    srv = server(imap=True, args=["--tombstone-retention", str(RETENTION)])
    deliver(srv, 8, "p")
    c = srv.raw("alice")
    uidvalidity, modseq = selected_state(c)
    c.ok("LOGOUT")
    # Sessions selected before the expunge, one with QRESYNC: they must
    # learn of it after the purge, though no tombstone says so any more.
    plain = srv.raw("alice")
    plain.ok("SELECT INBOX")
    qr = srv.raw("alice")
    qr.ok("ENABLE QRESYNC")
    qr.ok("SELECT INBOX")
    expunge_uids(srv, [2, 3, 5])
    wait_for("the tombstones to go",
             lambda: tables(srv.data)["expunged"] == 0)
    lines = plain.ok("NOOP")
    assert sorted(l for l in lines if l.endswith("EXPUNGE")) == \
        ["* 2 EXPUNGE", "* 2 EXPUNGE", "* 3 EXPUNGE"], lines
    lines = qr.ok("NOOP")
    assert [l for l in lines if l.startswith("* VANISHED")] == \
        ["* VANISHED 2:3,5"], lines
    qresync_checks(srv, uidvalidity, modseq, {2, 3, 5}, {1, 4, 6, 7, 8})
    # A client up to date is told nothing.
    c = srv.raw("alice")
    c.ok("ENABLE QRESYNC")
    _, now = selected_state(c)
    lines = c.ok("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % now)
    assert vanished_earlier(lines) == set(), lines


def test_vanished_needs_qresync_and_uid_fetch(server):
    srv = server(imap=True)
    deliver(srv, 2, "v")
    c = srv.raw("alice")
    c.ok("SELECT INBOX")
    _, done = c.cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")
    assert done.startswith("BAD"), done
    c.ok("ENABLE QRESYNC")
    for bad in ("FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)",
                "UID FETCH 1:* (FLAGS) (VANISHED)",
                "SELECT INBOX (QRESYNC (0 1))",
                "SELECT INBOX (QRESYNC (1))",
                "SELECT INBOX (QRESYNC (1 x))",
                "SELECT INBOX (QRESYNC (1 1 1:x))"):
        _, done = c.cmd(bad)
        assert done.startswith("BAD"), (bad, done)
    other = srv.raw("alice")
    _, done = other.cmd("SELECT INBOX (QRESYNC (1 1))")
    assert done.startswith("BAD"), done


def test_wal_returns_below_its_bound_after_a_burst(server):
    srv = server(imap=True)
    # A reader in another process holds its snapshot through the burst:
    # no checkpoint can reset the WAL meanwhile, so it outgrows the bound.
    db = sqlite3.connect("file:%s/mailrepd.db?mode=ro" % srv.data,
                         uri=True, timeout=10, isolation_level=None)
    db.execute("BEGIN")
    db.execute("SELECT count(*) FROM message").fetchone()
    big = message("big", 700 * 1024)
    for i in range(32):
        assert lmtp_one(srv.port, "alice@" + DOMAIN,
                        big.replace(b"big", b"big%d" % i, 2))[0] \
            .startswith("250")
    wal = os.path.join(srv.data, "mailrepd.db-wal")
    assert os.path.getsize(wal) > WAL_LIMIT
    db.execute("COMMIT")
    db.close()
    wait_for("the WAL to return below its bound",
             lambda: os.path.getsize(wal) <= WAL_LIMIT)
    st = status(srv.data)
    assert st["wal_bytes"] <= WAL_LIMIT and st["db_bytes"] > 20 << 20, st
    assert st["tables"]["message"] == 32


def test_status_shows_table_sizes(server):
    srv = server(imap=True)
    deliver(srv, 3, "s")
    expunge_uids(srv, [1])
    st = status(srv.data)
    t = st["tables"]
    for name in ("message", "blob", "expunged", "mailbox_gone",
                 "renumbered", "conflict", "quarantine", "replog"):
        assert isinstance(t[name], int), (name, t)
    assert t["message"] == 2 and t["expunged"] == 1, t
    assert st["db_bytes"] > 0
    text = run_ok("status", "--data", srv.data).stdout
    assert re.search(r"^table expunged 1 rows$", text, re.M), text
    assert re.search(r"^store db \d+ bytes wal \d+ bytes$", text, re.M), text
