"""SELECT's view and SEARCH UNSEEN read from indexes alone (schema 26):
[UNSEEN n] is the sequence number of the first unseen message, FLAGS
the keywords in use, EXISTS/UIDNEXT/HIGHESTMODSEQ the mailbox's, right
after another session's STORE and EXPUNGE, over more messages than one
batch (IMAP_STEP_MESSAGES, 256) reads; SEARCH UNSEEN and its kin give
what the flags say, with real imaplib clients."""
import re
import sqlite3  # only to rewrite a store as schema 25 made it

from test_isolation import UNDO_V26

MSG = b"From: a@b.test\r\nSubject: view\r\n\r\nbody\r\n"


def selected(c, mailbox="INBOX", condstore=False):
    """SELECT with imaplib c: a dict of EXISTS, RECENT, UNSEEN, UIDNEXT,
    HIGHESTMODSEQ (None when not said) and FLAGS (a set)."""
    c.untagged_responses = {}
    if condstore:
        typ, data = c._simple_command("SELECT", mailbox, "(CONDSTORE)")
    else:
        typ, data = c._simple_command("SELECT", mailbox)
    assert typ == "OK", data
    c.state = "SELECTED"
    got = {}
    for name in ("EXISTS", "RECENT", "UNSEEN", "UIDNEXT", "HIGHESTMODSEQ"):
        typ, data = c._untagged_response(typ, [None], name)
        got[name] = int(data[-1]) if data[-1] is not None else None
    typ, data = c._untagged_response(typ, [None], "FLAGS")
    got["FLAGS"] = set(re.match(rb"\((.*)\)", data[-1]).group(1).decode()
                       .split())
    return got


def search(c, criteria, uid=False):
    """The numbers a SEARCH (UID SEARCH with uid) gives, as a list."""
    if uid:
        typ, data = c.uid("SEARCH", criteria)
    else:
        typ, data = c.search(None, criteria)
    assert typ == "OK", data
    return [int(x) for x in b" ".join(d for d in data if d).split()
            if x.isdigit()]


def flags_by_uid(c):
    """{uid: set of flags} of the selected mailbox, from FETCH."""
    typ, data = c.fetch("1:*", "(UID FLAGS)")
    assert typ == "OK", data
    out = {}
    for d in data:
        m = re.match(rb"\d+ \(UID (\d+) FLAGS \(([^)]*)\)\)", d)
        out[int(m.group(1))] = set(m.group(2).decode().split())
    return out


def highest_modseq(c):
    """The highest MODSEQ of the selected mailbox's messages, from FETCH."""
    typ, data = c.fetch("1:*", "(MODSEQ)")
    assert typ == "OK", data
    return max(int(re.search(rb"MODSEQ \((\d+)\)", d).group(1))
               for d in data)


def status_modseq(c):
    """INBOX's HIGHESTMODSEQ from STATUS: expunges count too."""
    typ, data = c.status("INBOX", "(HIGHESTMODSEQ)")
    assert typ == "OK", data
    return int(re.search(rb"HIGHESTMODSEQ (\d+)", data[0]).group(1))


def append(c, n, flags=None):
    for _ in range(n):
        typ, data = c.append("INBOX", flags, None, MSG)
        assert typ == "OK", data


def store(c, uids, op, flags):
    typ, data = c.uid("STORE", uids, op, flags)
    assert typ == "OK", data


def test_first_unseen_follows_store_and_expunge_of_another_session(
        imap_srv):
    a, b = imap_srv.imap(), imap_srv.imap()
    append(a, 3, "(\\Seen)")
    append(a, 5)
    a.select("INBOX")
    got = selected(b)
    assert (got["EXISTS"], got["UNSEEN"], got["UIDNEXT"]) == (8, 4, 9)
    # the first unseen seen by another: the next one is first
    store(a, "4", "+FLAGS.SILENT", "(\\Seen)")
    got = selected(b, condstore=True)
    assert got["UNSEEN"] == 5
    assert got["HIGHESTMODSEQ"] == highest_modseq(a)
    # a message before it expunged elsewhere: its number goes down
    store(a, "2", "+FLAGS.SILENT", "(\\Deleted)")
    assert a.expunge()[0] == "OK"
    got = selected(b, condstore=True)
    assert (got["EXISTS"], got["UNSEEN"], got["UIDNEXT"]) == (7, 4, 9)
    assert got["HIGHESTMODSEQ"] == status_modseq(a) > highest_modseq(a)
    assert search(b, "UNSEEN") == [4, 5, 6, 7]
    assert search(b, "UNSEEN", uid=True) == [5, 6, 7, 8]
    # every message seen: no [UNSEEN]; the last unseen again: its number
    store(a, "1:*", "+FLAGS.SILENT", "(\\Seen)")
    assert selected(b)["UNSEEN"] is None
    assert search(b, "UNSEEN") == []
    store(a, "8", "-FLAGS.SILENT", "(\\Seen)")
    got = selected(b)
    assert (got["EXISTS"], got["UNSEEN"]) == (7, 7)
    # a session that has it selected sees another's change in SEARCH
    store(a, "3", "-FLAGS.SILENT", "(\\Seen)")
    assert search(b, "UNSEEN", uid=True) == [3, 8]
    a.logout()
    b.logout()


def test_view_over_several_batches(imap_srv):
    """700 messages: three batches of UIDs, two of keywords; the first
    unseen far from the first UID, some expunged before it."""
    a, b = imap_srv.imap(), imap_srv.imap()
    append(a, 700, "(\\Seen)")
    a.select("INBOX")
    store(a, "100:399", "+FLAGS.SILENT", "($many)")
    store(a, "5", "+FLAGS.SILENT", "($early)")
    store(a, "650", "+FLAGS.SILENT", "($late)")
    store(a, "7", "+FLAGS.SILENT", "($gone)")
    store(a, "7", "-FLAGS.SILENT", "($gone)")
    store(a, "520,640", "-FLAGS.SILENT", "(\\Seen)")
    store(a, "10:19", "+FLAGS.SILENT", "(\\Deleted)")
    assert a.expunge()[0] == "OK"
    got = selected(b, condstore=True)
    assert (got["EXISTS"], got["UIDNEXT"], got["UNSEEN"]) == (690, 701, 510)
    assert got["HIGHESTMODSEQ"] == status_modseq(a) > highest_modseq(a)
    kw = {f for f in got["FLAGS"] if not f.startswith("\\")}
    assert kw == {"$many", "$early", "$late"}
    assert search(b, "UNSEEN") == [510, 630]
    assert search(b, "UNSEEN", uid=True) == [520, 640]
    typ, data = b.fetch("510", "(UID)")
    assert re.match(rb"510 \(UID 520\)", data[0]), data
    # the same questions in one more session, EXAMINE: nothing claimed
    typ, data = a.select("INBOX", readonly=True)
    assert typ == "OK" and int(data[0]) == 690
    assert a.response("UNSEEN")[1] == [b"510"]
    a.logout()
    b.logout()


def test_search_unseen_and_its_kin_match_the_flags(imap_srv):
    """Keys the index of unseen messages answers alone (UNSEEN, NOT SEEN,
    NEW) and with the row (FLAGGED, keywords, MODSEQ) beside them give
    what FETCH FLAGS says, before and after another session's STORE."""
    a, b = imap_srv.imap(), imap_srv.imap()
    append(a, 300)
    a.select("INBOX")
    store(a, "1:250", "+FLAGS.SILENT", "(\\Seen)")
    store(a, "3,260,270", "-FLAGS.SILENT", "(\\Seen)")
    store(a, "260,280,5", "+FLAGS.SILENT", "(\\Flagged $tag)")
    selected(b, condstore=True)
    tests = {
        "UNSEEN": lambda f: "\\Seen" not in f,
        "NOT SEEN": lambda f: "\\Seen" not in f,
        "UNSEEN FLAGGED": lambda f: "\\Seen" not in f and "\\Flagged" in f,
        "UNSEEN NOT FLAGGED":
            lambda f: "\\Seen" not in f and "\\Flagged" not in f,
        "UNSEEN KEYWORD $tag": lambda f: "\\Seen" not in f and "$tag" in f,
        "OR UNSEEN FLAGGED": lambda f: "\\Seen" not in f or "\\Flagged" in f,
        "NOT UNSEEN": lambda f: "\\Seen" in f,
    }
    for round in range(2):
        flags = flags_by_uid(a)
        for key, want in tests.items():
            assert search(b, key, uid=True) == sorted(
                u for u, f in flags.items() if want(f)), (round, key)
        # RECENT belongs to the first session that selected: a
        assert search(b, "NEW") == []
        store(a, "3,270,290:295", "+FLAGS.SILENT", "(\\Seen)")
        store(a, "1,2,280", "-FLAGS.SILENT", "(\\Seen)")
    # MODSEQ needs the rows: the highest of the matches
    typ, data = b.uid("SEARCH", "UNSEEN MODSEQ 1")
    m = re.search(rb"\(MODSEQ (\d+)\)", data[0])
    assert m, data
    typ, fetched = b.uid("FETCH", "1,2,260,280", "(MODSEQ)")
    assert int(m.group(1)) == max(
        int(re.search(rb"MODSEQ \((\d+)\)", d).group(1)) for d in fetched)
    a.logout()
    b.logout()


def test_new_keys_of_the_first_session(imap_srv):
    """NEW (\\Recent and unseen) in the session that holds \\Recent."""
    a = imap_srv.imap()
    append(a, 4)
    selected(a)
    store(a, "2", "+FLAGS.SILENT", "(\\Seen)")
    assert search(a, "NEW", uid=True) == [1, 3, 4]
    assert search(a, "UNSEEN NOT RECENT", uid=True) == []
    a.logout()


def test_schema_25_store_gets_the_indexes(server):
    """A store from before (schema 25: the partial indexes without the
    flags, no index of UIDs or keywords) is upgraded, and SELECT and
    SEARCH UNSEEN answer from the new indexes."""
    s = server(imap=True)
    a = s.imap()
    append(a, 5)
    a.select("INBOX")
    store(a, "1,2", "+FLAGS.SILENT", "(\\Seen $x)")
    a.logout()
    s.stop()
    db = sqlite3.connect(str(s.data / "mailrepd.db"), isolation_level=None)
    for sql in UNDO_V26:
        db.execute(sql)
    db.execute("PRAGMA user_version = 25")
    db.close()
    s.start()
    a = s.imap()
    got = selected(a)
    assert (got["EXISTS"], got["UNSEEN"]) == (5, 3)
    assert "$x" in got["FLAGS"]
    assert search(a, "UNSEEN", uid=True) == [3, 4, 5]
    a.logout()
    s.stop()
    db = sqlite3.connect(str(s.data / "mailrepd.db"))
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 26
        sql = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE "
                              "type = 'index'").fetchall())
    finally:
        db.close()
    assert "(mailbox_id, uid, flags)" in sql["message_unseen"]
    assert "(mailbox_id, uid, flags)" in sql["message_deleted"]
    assert "message_uids" in sql and "message_keywords" in sql
