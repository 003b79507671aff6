"""SAVEDATE (RFC 8514): FETCH SAVEDATE is when the message was put into
that mailbox (APPEND, COPY, MOVE, delivery), not its internal date and
not the source's save date; SEARCH SAVEDBEFORE, SAVEDON, SAVEDSINCE
compare its day, SAVEDATESUPPORTED matches every message (every mailbox
keeps save dates).  A message from before save dates were kept gives its
internal date.  A replica keeps the master's save date, not the time
it applied the append."""
import calendar
import re
import sqlite3
import time

from conftest import DOMAIN, PASSWORD
from test_isolation import UNDO_V19, UNDO_V20, UNDO_V21, UNDO_V22, \
    UNDO_V23, UNDO_V26, undo_v24
from test_replication import make_cluster, message, secret  # noqa: F401

MSG = b"From: a@b.test\r\nSubject: savedate\r\n\r\nbody\r\n"
OLD = "01-Jan-2000 00:00:00 +0000"
DATE_TIME = r'"(\d{2}-\w{3}-\d{4} \d{2}:\d{2}:\d{2} \+0000)"'


def seconds(text):
    return calendar.timegm(time.strptime(text, "%d-%b-%Y %H:%M:%S +0000"))


def dates(c, seqs="1:*"):
    """{seq: (savedate, internaldate)} as seconds since the epoch."""
    out = {}
    for line in c.ok("FETCH %s (SAVEDATE INTERNALDATE)" % seqs):
        m = re.match(r"\* (\d+) FETCH \(SAVEDATE %s INTERNALDATE %s\)$" %
                     (DATE_TIME, DATE_TIME), line)
        assert m, line
        out[int(m.group(1))] = (seconds(m.group(2)), seconds(m.group(3)))
    return out


def search(c, keys):
    untagged = c.ok("SEARCH " + keys)
    return [int(n) for n in untagged[0].split()[2:]]


def day(t):
    return time.strftime("%d-%b-%Y", time.gmtime(t))


def test_capability(imap_srv):
    with imap_srv.raw() as c:
        assert "SAVEDATE" in c.ok("CAPABILITY")[0].split()


def test_append_saves_now_not_the_internal_date(imap_srv):
    with imap_srv.raw() as c:
        before = int(time.time())
        c.append("INBOX", MSG, date=OLD)
        after = int(time.time())
        c.ok("SELECT INBOX")
        saved, internal = dates(c)[1]
        assert internal == seconds(OLD)
        # A second either way: the host's wall clock may be stepped
        # (seen in CI: the save date a second before `before`).
        assert before - 1 <= saved <= after + 1, (before, saved, after)


def test_copy_and_move_save_anew(imap_srv):
    """The copy's save date is when it was copied, not the source's."""
    with imap_srv.raw() as c:
        c.ok("CREATE Other")
        c.append("INBOX", MSG, date=OLD)
        c.append("INBOX", MSG, date=OLD)
        c.ok("SELECT INBOX")
        first = dates(c)[1][0]
        time.sleep(1.1)             # the copy lands in a later second
        copied_at = int(time.time())
        c.ok("COPY 1 Other")
        c.ok("MOVE 2 Other")
        c.ok("SELECT Other")
        got = dates(c)
        assert sorted(got) == [1, 2], got
        for saved, internal in got.values():
            assert internal == seconds(OLD)
            assert saved >= copied_at > first, (saved, copied_at, first)


def test_delivery_saves_now(imap_srv):
    before = int(time.time())
    imap_srv.deliver("s@remote.test", ["alice@" + DOMAIN], MSG)
    after = int(time.time())
    with imap_srv.raw() as c:
        c.ok("SELECT INBOX")
        saved, _ = dates(c)[1]
        assert before <= saved <= after, (before, saved, after)


def test_search_keys(imap_srv):
    with imap_srv.raw() as c:
        c.append("INBOX", MSG, date=OLD)
        c.append("INBOX", MSG, date=OLD)
        c.ok("SELECT INBOX")
        saved = dates(c)[1][0]
        today, yesterday, tomorrow = (day(saved), day(saved - 86400),
                                      day(saved + 86400))
        assert search(c, "SAVEDON " + today) == [1, 2]
        assert search(c, "SAVEDSINCE " + today) == [1, 2]
        assert search(c, "SAVEDSINCE " + tomorrow) == []
        assert search(c, "SAVEDBEFORE " + today) == []
        assert search(c, "SAVEDBEFORE " + tomorrow) == [1, 2]
        assert search(c, "SAVEDON " + yesterday) == []
        # the internal date is another thing
        assert search(c, "ON 1-Jan-2000") == [1, 2]
        assert search(c, "SAVEDON 1-Jan-2000") == []
        assert search(c, "SAVEDATESUPPORTED") == [1, 2]
        assert search(c, "NOT SAVEDATESUPPORTED") == []
        assert search(c, "SAVEDATESUPPORTED UID 2") == [2]


def test_bad_search_arguments(imap_srv):
    with imap_srv.raw() as c:
        c.append("INBOX", MSG)
        c.ok("SELECT INBOX")
        for keys in ("SAVEDBEFORE", "SAVEDON 32-Jan-2020",
                     "SAVEDSINCE yesterday", "SAVEDON (1-Jan-2020)",
                     "SAVEDATESUPPORTED 1-Jan-2020"):
            _, done = c.cmd("SEARCH " + keys)
            assert done.startswith("BAD"), (keys, done)
        c.ok("NOOP")


def test_messages_from_before_give_their_internal_date(server):
    """A store from before save dates were kept, migrated: its messages
    give their internal date, in FETCH and in SEARCH alike."""
    srv = server(imap=True)
    with srv.raw() as c:
        c.append("INBOX", MSG, date=OLD)
    srv.stop()
    db = sqlite3.connect(str(srv.data / "mailrepd.db"), isolation_level=None)
    for sql in UNDO_V26:
        db.execute(sql)
    undo_v24(db)
    for sql in UNDO_V23 + UNDO_V22 + UNDO_V21 + UNDO_V20 + UNDO_V19 + [
            "PRAGMA user_version = 18"]:
        db.execute(sql)
    db.close()
    srv.start()
    with srv.raw() as c:
        c.ok("SELECT INBOX")
        assert dates(c)[1] == (seconds(OLD), seconds(OLD))
        assert search(c, "SAVEDON 1-Jan-2000") == [1]


def replica_dates(replica, count, deadline=20):
    """dates() on the replica once INBOX has count messages."""
    end = time.monotonic() + deadline
    while True:
        with replica.raw(login=False) as c:
            _, done = c.cmd('LOGIN "alice" "%s"' % PASSWORD)
            if done.startswith("OK") and \
                    c.status("INBOX")["MESSAGES"] == count:
                c.ok("EXAMINE INBOX")
                return dates(c)
        assert time.monotonic() < end, "replica did not catch up"
        time.sleep(0.2)


def test_replica_keeps_the_masters_save_date(server, secret):  # noqa: F811
    """The replica applies each append seconds after the master saved
    it, first by reconciling (a new replica), then from the log (one
    that was stopped): its SAVEDATE is still the master's."""
    make = make_cluster(server, secret)
    master, _ = make(nreplicas=0)
    with master.raw() as c:
        c.append("INBOX", message("saved"), date=OLD)
    time.sleep(1.1)
    replica = make.replica(master, 0)
    replica_dates(replica, 1)
    replica.stop()
    with master.raw() as c:
        c.append("INBOX", message("later"), date=OLD)
        c.ok("SELECT INBOX")
        want = dates(c)
    time.sleep(1.1)
    replica.start()
    assert replica_dates(replica, 2) == want
