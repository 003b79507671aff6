"""Deleted mail leaves nothing in SEARCH's full-text index: the rows of
a blob that no message uses any more are deleted (its text read once
more, as a contentless FTS5 table needs) before the blob goes, whether
it lost its last message to an expunge or to a mailbox delete; a blob
another mailbox still uses keeps its rows.  What is left equals what
`mailrepd index rebuild` builds from the messages that stay, term for
term.  A server that keeps no index lets blobs go at once and leaves
their rows, which `index status` counts and a rebuild drops."""
import sqlite3
import time

from conftest import run_ok
from test_search_index import MESSAGES, status, wait_indexed


def message(i):
    return ("From: gc%d@gc.test\r\nSubject: gc topic %d\r\n\r\n"
            "body of gcword%d and shared words\r\n" % (i, i, i)).encode()


def vocabulary(s):
    """Each term's number of rows, and the rows, of the index."""
    db = sqlite3.connect("file:%s?mode=ro" % (s.data / "mailrepd.db"),
                         uri=True, timeout=10)
    try:
        db.execute("CREATE VIRTUAL TABLE temp.v USING "
                   "fts5vocab(main, fts, 'row')")
        terms = dict(db.execute("SELECT term, doc FROM temp.v"))
        rows = sorted(r[0] for r in db.execute("SELECT id FROM fts_docsize"))
        return terms, rows
    finally:
        db.close()


def direct_orphans(s):
    db = sqlite3.connect("file:%s?mode=ro" % (s.data / "mailrepd.db"),
                         uri=True, timeout=10)
    try:
        return db.execute(
            "SELECT count(*) FROM fts_docsize d WHERE NOT EXISTS "
            "(SELECT 1 FROM blob WHERE id = d.id / 16)").fetchone()[0], \
            db.execute("SELECT count(*) FROM blob_unused").fetchone()[0], \
            db.execute("SELECT count(*) FROM blob").fetchone()[0]
    finally:
        db.close()


def wait_collected(s):
    deadline = time.monotonic() + 60
    while True:
        orphans, queued, blobs = direct_orphans(s)
        if queued == 0:
            return orphans, blobs
        assert time.monotonic() < deadline, (orphans, queued, blobs)
        time.sleep(0.1)


def fill(s):
    with s.raw() as c:
        c.ok("CREATE Other")
        for m in MESSAGES:
            c.append("INBOX", m)
        for i in range(30):
            c.append("INBOX", message(i))
        c.ok("SELECT INBOX")
        # the copies share their blobs with INBOX's 11:15
        c.ok("UID COPY 11:15 Other")
        c.append("Other", b"Subject: only in other\r\n\r\notherword\r\n")


def delete_some(s):
    with s.raw() as c:
        c.ok("SELECT INBOX")
        # 11:15 stay in Other; 16:20 and 1:3 go for good
        c.ok("UID STORE 1:3,11:20 +FLAGS.SILENT (\\Deleted)")
        c.ok("UID EXPUNGE 1:3,11:20")
        c.ok("DELETE Other")    # its blobs go through the queue


def test_deleted_mail_leaves_no_rows(server):
    s = server(imap=True)
    fill(s)
    wait_indexed(s)
    blobs_before = direct_orphans(s)[2]
    delete_some(s)
    orphans, blobs = wait_collected(s)
    assert orphans == 0
    # 1:3, 11:20 and Other's own message are gone: 14 blobs
    assert blobs == blobs_before - 14
    st = status(s)
    assert st["orphaned"] == "0" and st["pending"] == "0", st
    with s.raw() as c:
        c.ok("SELECT INBOX")
        assert c.ok("UID SEARCH BODY gcword3") == ["* SEARCH"]
        assert c.ok("UID SEARCH BODY gcword25") == ["* SEARCH 36"]
        assert c.ok("UID SEARCH BODY needleword") == ["* SEARCH"]
    incremental = vocabulary(s)
    assert incremental[1]
    run_ok("index", "rebuild", "--data", s.data)
    wait_indexed(s)
    assert vocabulary(s) == incremental


def test_no_index_lets_blobs_go_at_once(server):
    s = server(imap=True)
    fill(s)
    wait_indexed(s)
    s.args = ["--search-index", "no"]
    s.restart()
    delete_some(s)
    orphans, _ = wait_collected(s)
    assert orphans > 0
    assert status(s)["orphaned"] == str(orphans)
    run_ok("index", "rebuild", "--data", s.data)
    assert direct_orphans(s)[0] == 0
