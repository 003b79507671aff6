"""CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267): RETURN (UPDATE) with
ADDTO and REMOVEFROM as other sessions (and this one) change the
mailbox, CANCELUPDATE, the per-session limit (NOUPDATE), PARTIAL, and
BAD for what is malformed."""
import re

import pytest

MSG = b"From: a@b.test\r\nSubject: s%d\r\n\r\nbody %d\r\n"
LIMIT = 5       # config.h IMAP_MAX_UPDATES


@pytest.fixture
def pair(imap_srv):
    """Two sessions of alice on an INBOX of 5 messages: (watcher, other)."""
    c = imap_srv.raw()
    for i in range(5):
        c.append("INBOX", MSG % (i, i))
    c.ok("SELECT INBOX")
    o = imap_srv.raw()
    o.ok("SELECT INBOX")
    yield c, o
    c.close()
    o.close()


def ok_tagged(c, command):
    """(tag, untagged lines) of a command that must answer OK."""
    t = c.tag()
    c.send("%s %s\r\n" % (t, command))
    untagged, done = c.read_until(t)
    assert done.startswith("OK"), (command, untagged, done)
    return t, untagged


def updates(lines, tag):
    """The ESEARCH lines of tag, without the '* ESEARCH (TAG "t")'."""
    head = '* ESEARCH (TAG "%s")' % tag
    return [l[len(head):].strip() for l in lines if l.startswith(head)]


def esearch(c, command):
    """The one ESEARCH line of command, after its TAG."""
    t, untagged = ok_tagged(c, command)
    got = updates(untagged, t)
    assert len(got) == 1, untagged
    return got[0]


def test_capabilities(pair):
    c, _ = pair
    caps = " ".join(c.ok("CAPABILITY")).split()
    assert "CONTEXT=SEARCH" in caps and "CONTEXT=SORT" in caps


def test_update_follows_other_session(pair):
    """STORE, APPEND and EXPUNGE of another session: ADDTO and REMOVEFROM
    by sequence number, ADDTO after its EXISTS, REMOVEFROM before its
    EXPUNGE."""
    c, o = pair
    t, untagged = ok_tagged(c, "SEARCH RETURN (UPDATE ALL) SEEN")
    assert updates(untagged, t) == [""]
    o.ok("STORE 2,4 +FLAGS (\\Seen)")
    assert updates(c.ok("NOOP"), t) == ["ADDTO (0 2,4)"]
    o.append("INBOX", MSG % (9, 9), flags="\\Seen")
    lines = c.ok("NOOP")
    assert "* 6 EXISTS" in lines
    assert lines.index("* 6 EXISTS") < lines.index(
        '* ESEARCH (TAG "%s") ADDTO (0 6)' % t), lines
    o.ok("STORE 2 -FLAGS (\\Seen)")
    assert updates(c.ok("NOOP"), t) == ["REMOVEFROM (0 2)"]
    o.ok("STORE 1,4 +FLAGS (\\Deleted)")
    o.ok("EXPUNGE")
    lines = c.ok("NOOP")
    rm = '* ESEARCH (TAG "%s") REMOVEFROM (0 4)' % t
    assert rm in lines and lines.index(rm) < lines.index("* 1 EXPUNGE"), \
        lines
    # the numbers follow the expunges: message 6 is now 4
    o.ok("STORE 4 -FLAGS (\\Seen)")
    assert updates(c.ok("NOOP"), t) == ["REMOVEFROM (0 4)"]
    # a change that does not move the result says nothing
    o.ok("STORE 1 +FLAGS (\\Flagged)")
    assert updates(c.ok("NOOP"), t) == []


def test_update_own_changes_and_uids(pair):
    """The session's own STORE updates its UID SEARCH, in UIDs."""
    c, o = pair
    o.ok("STORE 1 +FLAGS (\\Deleted)")
    o.ok("EXPUNGE")
    c.ok("NOOP")                        # UIDs 2..5 are now 1..4
    t, untagged = ok_tagged(c, "UID SEARCH RETURN (UPDATE COUNT) FLAGGED")
    assert updates(untagged, t) == ["UID COUNT 0"]
    assert updates(c.ok("STORE 2:3 +FLAGS (\\Flagged)"), t) == \
        ["UID ADDTO (0 3:4)"]
    assert updates(c.ok("UID STORE 3 -FLAGS (\\Flagged)"), t) == \
        ["UID REMOVEFROM (0 3)"]


def test_update_during_idle(pair):
    c, o = pair
    t, _ = ok_tagged(c, "SEARCH RETURN (UPDATE) FLAGGED")
    c.send("i1 IDLE\r\n")
    assert c.line().startswith("+ ")
    o.ok("STORE 3 +FLAGS (\\Flagged)")
    seen = []
    while True:
        l = c.line()
        seen.append(l)
        if l.startswith("* ESEARCH"):
            break
    assert seen[-1] == '* ESEARCH (TAG "%s") ADDTO (0 3)' % t, seen
    c.send("DONE\r\n")
    assert c.read_until("i1")[1].startswith("OK")


def test_body_search_updates(pair):
    """A BODY key is tested again on the changed message only, a big
    one too (its scan may take several steps)."""
    c, o = pair
    big = (b"From: a@b.test\r\nSubject: big\r\n\r\n" +
           b"x" * (3 << 20) + b"\r\nneedle\r\n")
    o.append("INBOX", big)
    c.ok("NOOP")
    t, untagged = ok_tagged(c, "SEARCH RETURN (UPDATE) BODY needle "
                            "FLAGGED")
    assert updates(untagged, t) == [""]
    o.ok("STORE 1:6 +FLAGS (\\Flagged)")
    got = updates(c.ok("NOOP"), t)
    # the big message's scan may go on after the NOOP's reply
    while not got:
        got = updates([c.line(timeout=60)], t)
    assert got == ["ADDTO (0 6)"]


def test_sequence_keys_keep_their_messages(pair):
    """Sequence numbers in an updating search name the messages they
    named when it ran (RFC 5267 4.3)."""
    c, o = pair
    t, _ = ok_tagged(c, "SEARCH RETURN (UPDATE) 2:3 SEEN")
    o.ok("STORE 1 +FLAGS (\\Deleted)")
    o.ok("EXPUNGE")
    c.ok("NOOP")                        # the old 2:3 are now 1:2
    o.ok("STORE 3 +FLAGS (\\Seen)")     # the old 4: not in the search
    assert updates(c.ok("NOOP"), t) == []
    o.ok("STORE 1 +FLAGS (\\Seen)")     # the old 2
    assert updates(c.ok("NOOP"), t) == ["ADDTO (0 1)"]


def test_sort_update_places(pair):
    """An updating SORT says where each change goes in its order."""
    c, o = pair
    t, untagged = ok_tagged(c, "SORT RETURN (UPDATE) (SUBJECT) UTF-8 SEEN")
    assert updates(untagged, t) == [""]
    for seq, want in (("3", "ADDTO (1 3)"), ("1", "ADDTO (1 1)"),
                      ("5", "ADDTO (3 5)"), ("4", "ADDTO (3 4)")):
        o.ok("STORE %s +FLAGS (\\Seen)" % seq)
        assert updates(c.ok("NOOP"), t) == [want], seq
    # order now s0 s2 s3 s4 = 1 3 4 5
    o.ok("STORE 3 -FLAGS (\\Seen)")
    assert updates(c.ok("NOOP"), t) == ["REMOVEFROM (2 3)"]
    o.ok("STORE 1,4 +FLAGS (\\Deleted)")
    o.ok("EXPUNGE")
    lines = c.ok("NOOP")
    assert updates(lines, t) == ["REMOVEFROM (1 1)", "REMOVEFROM (1 4)"]
    assert lines.index('* ESEARCH (TAG "%s") REMOVEFROM (1 4)' % t) < \
        lines.index("* 1 EXPUNGE"), lines
    # left: s4, now message 3; a new "s1" goes before it
    o.append("INBOX", b"Subject: s1\r\n\r\nx\r\n", flags="\\Seen")
    lines = c.ok("NOOP")
    assert lines.index("* 4 EXISTS") < lines.index(
        '* ESEARCH (TAG "%s") ADDTO (1 4)' % t), lines
    assert esearch(c, "SORT RETURN (ALL) (SUBJECT) UTF-8 SEEN") == "ALL 4,3"


def test_uid_sort_update_reverse(pair):
    c, o = pair
    t, untagged = ok_tagged(c, "UID SORT RETURN (UPDATE ALL) (REVERSE "
                            "SUBJECT) UTF-8 FLAGGED")
    assert updates(untagged, t) == ["UID"]
    o.ok("STORE 2,4 +FLAGS (\\Flagged)")
    assert updates(c.ok("NOOP"), t) == ["UID ADDTO (1 2)",
                                         "UID ADDTO (1 4)"]
    assert updates(c.ok("STORE 3 +FLAGS (\\Flagged)"), t) == \
        ["UID ADDTO (2 3)"]
    assert esearch(c, "UID SORT RETURN () (REVERSE SUBJECT) UTF-8 "
                   "FLAGGED") == "UID ALL 4,3,2"


def test_cancelupdate(pair):
    c, o = pair
    t, _ = ok_tagged(c, "SEARCH RETURN (UPDATE) SEEN")
    c.ok('CANCELUPDATE "%s"' % t)
    o.ok("STORE 1 +FLAGS (\\Seen)")
    assert updates(c.ok("NOOP"), t) == []
    untagged, done = c.cmd('CANCELUPDATE "%s"' % t)
    assert done.startswith("BAD") and "no updating search" in done, done


def test_updates_end_with_the_mailbox(pair):
    c, o = pair
    t, _ = ok_tagged(c, "SEARCH RETURN (UPDATE) SEEN")
    c.ok("SELECT INBOX")
    o.ok("STORE 1 +FLAGS (\\Seen)")
    assert updates(c.ok("NOOP"), t) == []
    assert c.cmd('CANCELUPDATE "%s"' % t)[1].startswith("BAD")


def test_tag_reuse_is_bad(pair):
    c, _ = pair
    c.send('dup SEARCH RETURN (UPDATE) SEEN\r\n')
    assert c.read_until("dup")[1].startswith("OK")
    c.send('dup SORT RETURN (UPDATE) (DATE) UTF-8 SEEN\r\n')
    untagged, done = c.read_until("dup")
    assert done.startswith("BAD") and "tag" in done, done
    c.send('dup SEARCH RETURN (COUNT) SEEN\r\n')   # no UPDATE: fine
    assert c.read_until("dup")[1].startswith("OK")


def test_limit_noupdate(pair):
    """Past the limit the search still answers, with NOUPDATE; a
    CANCELUPDATE makes room again."""
    c, o = pair
    tags = [ok_tagged(c, "SEARCH RETURN (UPDATE) SEEN")[0]
            for _ in range(LIMIT)]
    t, untagged = ok_tagged(c, "SEARCH RETURN (UPDATE COUNT) ALL")
    assert '* NO [NOUPDATE "%s"] Too many updating searches' % t in \
        untagged, untagged
    assert updates(untagged, t) == ["COUNT 5"]
    o.ok("STORE 1 +FLAGS (\\Seen)")
    got = c.ok("NOOP")
    for k in tags:
        assert updates(got, k) == ["ADDTO (0 1)"]
    c.ok('CANCELUPDATE "%s" "%s"' % (tags[0], tags[1]))
    t, untagged = ok_tagged(c, "SEARCH RETURN (UPDATE) SEEN")
    assert not any("NOUPDATE" in l for l in untagged), untagged


@pytest.mark.parametrize("ret,want", [
    ("PARTIAL 1:1", "PARTIAL (1:1 1)"),
    ("PARTIAL 4:2", "PARTIAL (2:4 2,4:5)"),
    ("PARTIAL 2:10", "PARTIAL (2:10 2,4:5)"),
    ("PARTIAL 5:9", "PARTIAL (5:9 NIL)"),
    ("PARTIAL 1:2 COUNT MIN", "PARTIAL (1:2 1:2) MIN 1 COUNT 4"),
    ("CONTEXT COUNT", "COUNT 4"),
    ("CONTEXT", "ALL 1:2,4:5"),
])
def test_partial(pair, ret, want):
    c, _ = pair
    assert esearch(c, "SEARCH RETURN (%s) 1:2,4:5" % ret) == want


def test_partial_uid_and_sort(pair):
    c, _ = pair
    assert esearch(c, "UID SEARCH RETURN (PARTIAL 2:3) ALL") == \
        "UID PARTIAL (2:3 2:3)"
    assert esearch(c, "SORT RETURN (PARTIAL 2:4) (REVERSE SUBJECT) UTF-8 "
                   "ALL") == "PARTIAL (2:4 4,3,2)"
    assert esearch(c, "SORT RETURN (PARTIAL 7:8) (SUBJECT) UTF-8 ALL") == \
        "PARTIAL (7:8 NIL)"


@pytest.mark.parametrize("bad,why", [
    ("SEARCH RETURN (PARTIAL 1) ALL", "PARTIAL wants"),
    ("SEARCH RETURN (PARTIAL 1:*) ALL", "PARTIAL wants"),
    ("SEARCH RETURN (PARTIAL *:1) ALL", "PARTIAL wants"),
    ("SEARCH RETURN (PARTIAL 0:3) ALL", "PARTIAL wants"),
    ("SEARCH RETURN (PARTIAL 1:4294967296) ALL", "PARTIAL wants"),
    ("SEARCH RETURN (PARTIAL) ALL", "PARTIAL wants"),
    ("SEARCH RETURN (PARTIAL 1:2 PARTIAL 3:4) ALL", "PARTIAL wants"),
    ("SEARCH RETURN (PARTIAL 1:2 ALL) ALL", "exclude each other"),
    ("SORT RETURN (PARTIAL 1:*) (ARRIVAL) UTF-8 ALL", "PARTIAL wants"),
    ("SEARCH RETURN (UPDATES) ALL", "Unknown RETURN option"),
    ("CANCELUPDATE", "wants the tags"),
    ("CANCELUPDATE (x)", "no updating search"),
    ('CANCELUPDATE "nosuch"', "no updating search"),
])
def test_bad_input(pair, bad, why):
    c, _ = pair
    untagged, done = c.cmd(bad)
    assert done.startswith("BAD") and why in done, (bad, done)


def test_cancelupdate_needs_a_mailbox(imap_srv):
    c = imap_srv.raw()
    untagged, done = c.cmd('CANCELUPDATE "x"')
    assert done.startswith("BAD") or done.startswith("NO"), done
    c.close()
