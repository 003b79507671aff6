"""SEARCH tries only the messages the full-text index names when every
match must be one of them (an AND with an indexed key, an OR of indexed
keys, no NOT above them), and every message otherwise: whatever the
shape of the search, and whether the index is off, being built, rebuilt
or on, the answers are the same.  Messages the index has not read yet
(delivered a moment ago, too long to index), copies of one message in
one mailbox, and expunged messages (sequence numbers no longer UIDs)
are among those tried; messages that arrive, go or are copied while a
search runs in steps never make it answer what it should not.  An idle
server indexes what waits without a second's pause per batch."""
import random
import time

from conftest import run_ok
from test_search_index import (MESSAGES, command, search, status,
                               wait_indexed)

WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet "
         "kilo lima mike november oscar papa quebec romeo sierra tango "
         "uniform victor whiskey xray yankee zulu").split()


def filler(i, rng):
    """A plain message: Subject "topic i%7", From "useri%5", a body of
    the words above (each word in about one message in eight)."""
    body = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(3, 9)))
    if i % 9 == 4:
        body += " walkword"
    return ("From: user%d@walk.test\r\nTo: box@walk.test\r\n"
            "Subject: topic %d\r\nX-Tag: t%d\r\n\r\n%s\r\n" % (
                i % 5, i % 7, i % 3, body)).encode()


# Every shape: narrowing (walks the candidates) or not (walks them all).
QUERIES = [
    # narrowing
    ["BODY", b"walkword"], ["TEXT", b"walkword"], ["SUBJECT", b"topic 3"],
    ["FROM", b"user2@"], ["HEADER", b"X-Tag", b"t1"],
    ["BODY", b"walkword", "SUBJECT", b"topic 4"],
    ["BODY", b"walkword", "UNSEEN"], ["UNSEEN", "BODY", b"walkword"],
    ["SEEN", "BODY", b"walkword"], ["FLAGGED", "SUBJECT", b"topic"],
    ["OR", "BODY", b"walkword", "SUBJECT", b"topic 2"],
    ["OR", "BODY", b"kilo", "OR", "FROM", b"user1@", "TO", b"bob@"],
    ["(", "BODY", b"hotel", "OR", "BODY", b"lima", "BODY", b"mike", ")"],
    ["BODY", b"walkword", "NOT", "BODY", b"alpha"],
    ["BODY", b"walkword", "NOT", "SUBJECT", b"topic 1"],
    ["UID", "5:40", "BODY", b"walkword"], ["1:20", "BODY", b"walkword"],
    ["BODY", b"walkword", "LARGER", "120"],
    ["TEXT", b"lastword"], ["BODY", b"needleword"], ["BODY", b"hiddenword"],
    ["SUBJECT", b"e aus ber"], ["FROM", b"hank@example.org"],
    ["BODY", b"lateword"], ["BODY", b"nowhere at all"],
    ["BODY", b"walkword", "BODY", b"ab"],
    # not narrowing
    ["NOT", "BODY", b"walkword"], ["NOT", "SUBJECT", b"topic 3"],
    ["OR", "BODY", b"walkword", "SEEN"],
    ["OR", "BODY", b"walkword", "BODY", b"ab"],
    ["OR", "SUBJECT", b"topic 3", "UID", "1:4"],
    ["NOT", "OR", "BODY", b"walkword", "SUBJECT", b"topic 3"],
    ["NOT", "(", "BODY", b"walkword", "SUBJECT", b"topic 3", ")"],
    ["BODY", b"ab"], ["BODY", b"the"], ["SUBJECT", b"topic"], ["ALL"],
]


def answers(s):
    """Each query's UIDs and, for the first few, its sequence numbers."""
    with s.raw() as c:
        c.ok("SELECT INBOX")
        return ([search(c, q) for q in QUERIES] +
                [search(c, q, uid=False) for q in QUERIES[:8]])


def fill(s):
    """The hostile messages, 90 plain ones, some flagged, 3 copies of one
    message in the same mailbox, and 6 expunged."""
    rng = random.Random(20)
    with s.raw() as c:
        for m in MESSAGES:
            c.append("INBOX", m)
        for i in range(90):
            c.append("INBOX", filler(i, rng),
                     flags="\\Seen" if i % 4 == 0 else
                     "\\Flagged" if i % 4 == 1 else None)
        c.ok("SELECT INBOX")
        c.ok("UID COPY 14,15 INBOX")
        c.ok("UID COPY 14 INBOX")
        c.ok("UID STORE 2,12,20,21,30,50 +FLAGS.SILENT (\\Deleted)")
        c.ok("EXPUNGE")


def test_walk_answers_as_scanning(server):
    s = server(imap=True, args=["--search-index", "no"])
    fill(s)
    scanned = answers(s)
    want = dict(zip((repr(q) for q in QUERIES), scanned))
    # the scanner's own answers, so that the comparison means something
    assert want[repr(["BODY", b"needleword"])] == [1]
    assert want[repr(["TEXT", b"lastword"])] == [10]
    assert 10 < len(want[repr(["BODY", b"walkword"])]) < 40
    assert set(want[repr(["SUBJECT", b"topic 3"])]) & {101, 102, 103}

    # being built: every answer while the server indexes is the same
    s.args = []
    s.restart()
    while True:
        pending = status(s)["pending"] != "0"
        assert answers(s) == scanned
        if not pending:
            break
    wait_indexed(s)
    assert answers(s) == scanned

    # delivered now: not indexed yet (the index waits a moment for
    # more), then indexed; each way found
    with s.raw() as c:
        c.append("INBOX", b"Subject: late\r\n\r\nlateword walkword\r\n")
        c.ok("SELECT INBOX")
        late = search(c, ["BODY", b"walkword"])
        assert late[-1] > 100 and late[:-1] == \
            want[repr(["BODY", b"walkword"])]
        assert search(c, ["BODY", b"lateword"]) == [late[-1]]
    scanned_late = answers(s)
    wait_indexed(s)
    assert answers(s) == scanned_late

    # rebuilt while the server runs, then on
    run_ok("index", "rebuild", "--data", s.data)
    assert answers(s) == scanned_late
    wait_indexed(s)
    assert answers(s) == scanned_late

    s.args = ["--search-index", "no"]
    s.restart()
    assert answers(s) == scanned_late


def test_changes_while_a_search_runs(server):
    """A search of many candidates runs in steps; another session
    appends, expunges and copies meanwhile.  It answers only messages
    it was asked about that match: none that arrived, all that stayed."""
    s = server(imap=True)
    with s.raw() as c:
        for i in range(700):
            c.append("INBOX", b"Subject: m%d\r\n\r\n%s %s\r\n" % (
                i, b"stepword" if i % 3 == 0 else b"other",
                b"filler " * 200))
    wait_indexed(s)
    with s.raw() as a, s.raw() as b:
        a.ok("SELECT INBOX")
        b.ok("SELECT INBOX")
        before = search(a, ["BODY", b"stepword"])
        assert len(before) == 234
        gone = before[100::7]
        t = command(a, ["BODY", b"stepword"])
        b.append("INBOX", b"Subject: new\r\n\r\nstepword new\r\n")
        b.ok("UID STORE %s +FLAGS.SILENT (\\Deleted)" %
             ",".join(map(str, gone)))
        b.ok("UID EXPUNGE %s" % ",".join(map(str, gone)))
        b.ok("UID COPY %d INBOX" % before[0])
        untagged, done = a.read_until(t)
        assert done.startswith("OK"), done
        line = [l for l in untagged if l.startswith("* SEARCH")]
        got = sorted(int(n) for n in line[0][len("* SEARCH"):].split())
        assert set(got) <= set(before)
        assert set(before) - set(gone) <= set(got)
        a.ok("NOOP")
        after = search(a, ["BODY", b"stepword"])
        assert len(after) == len(before) - len(gone) + 2
        assert set(after) - set(before) and max(after) > max(before)


def test_idle_server_indexes_without_pausing(server, tmp_path):
    """What waits to be indexed (here: a store imported while no server
    ran) is indexed batch after batch, not one batch a second."""
    s = server(imap=True, start=False)
    mbox = tmp_path / "in.mbox"
    with open(mbox, "wb") as f:
        for i in range(1500):
            f.write(b"From x@walk.test Mon Dec  7 05:00:00 2026\n"
                    b"Subject: imported %d\n\nbody %d idleword\n\n" % (i, i))
    run_ok("import", "alice", "--mbox", str(mbox), "--data", str(s.data))
    s.start()
    t0 = time.monotonic()
    deadline = t0 + 60
    while status(s)["pending"] != "0":
        assert time.monotonic() < deadline, status(s)
        time.sleep(0.1)
    # one batch a second would take at least 1500 / 64 = 24 s
    assert time.monotonic() - t0 < 20
