"""SORT (RFC 5256, with SORT=DISPLAY of RFC 5957) and THREAD
(ORDEREDSUBJECT and REFERENCES) over IMAP, with Python's imaplib as a
client would use them, and the raw protocol for the refusals."""
import imaplib

import pytest

from conftest import PASSWORD


def message(subject, sender, to, date, msgid=None, refs=None, size=0,
            cc=None):
    h = ["From: %s" % sender, "To: %s" % to, "Subject: %s" % subject,
         "Date: %s" % date]
    if cc:
        h.append("Cc: %s" % cc)
    if msgid:
        h.append("Message-ID: %s" % msgid)
    if refs:
        h.append("References: %s" % refs)
    return ("\r\n".join(h) + "\r\n\r\n" + "x" * size + "body\r\n").encode()


# (subject, from, to, date, message-id, references, body size, cc)
MESSAGES = [
    ("Plans", '"Zoe" <zoe@b.test>', "amy@c.test",
     "Mon, 01 Jan 2024 10:00:00 +0000", "<1@t>", None, 300, "bob@c.test"),
    ("Re: Plans", "adam@b.test", "zed@c.test",
     "Mon, 01 Jan 2024 09:00:00 -0300", "<2@t>", "<1@t>", 10, None),
    ("[team] Lunch", '"=?utf-8?q?=C3=89mile?=" <emile@b.test>',
     '"Ann" <ann@c.test>', "Sun, 31 Dec 2023 23:00:00 +0000", "<3@t>", None,
     200, "amy@c.test"),
    ("Fwd: Lunch (fwd)", "Bea <bea@b.test>", "yves@c.test",
     "Tue, 02 Jan 2024 08:00:00 +0000", "<4@t>", None, 0, None),
    ("Re: Plans", "carl@b.test", "amy@c.test",
     "Tue, 02 Jan 2024 12:00:00 +0000", "<5@t>", "<1@t> <2@t>", 50, None),
]


# internal dates, so that ARRIVAL is not the order of sequence numbers
ARRIVAL_DAYS = [2, 1, 4, 3, 5]


@pytest.fixture
def box(imap_srv):
    """INBOX with MESSAGES, then one more expunged: UIDs 1-5."""
    c = imap_srv.raw()
    for m, day in zip(MESSAGES, ARRIVAL_DAYS):
        c.append("INBOX", message(*m), date="%02d-Feb-2024 10:00:00 +0000"
                 % day)
    c.append("INBOX", message("gone", "g@b.test", "g@c.test",
                              "Mon, 01 Jan 2024 00:00:00 +0000"))
    c.ok("SELECT INBOX")
    c.ok("STORE 6 +FLAGS.SILENT (\\Deleted)")
    c.ok("EXPUNGE")
    yield c
    c.close()


def sort(c, command):
    untagged = c.ok(command)
    lines = [l for l in untagged if l.startswith("* SORT")]
    assert len(lines) == 1, untagged
    return [int(x) for x in lines[0].split()[2:]]


@pytest.mark.parametrize("criteria,want", [
    ("(ARRIVAL)", [2, 1, 4, 3, 5]),
    ("(REVERSE ARRIVAL)", [5, 3, 4, 1, 2]),
    # Date: in UTC: 3 (Dec 31), 1 (10:00), 2 (12:00 UTC), 4, 5
    ("(DATE)", [3, 1, 2, 4, 5]),
    ("(SIZE)", [4, 2, 5, 3, 1]),
    # base subjects: Lunch (3, 4), Plans (1, 2, 5); ties by sequence
    ("(SUBJECT)", [3, 4, 1, 2, 5]),
    ("(SUBJECT REVERSE DATE)", [4, 3, 5, 2, 1]),
    # addr-mailbox of the first address
    ("(FROM)", [2, 4, 5, 3, 1]),
    ("(TO)", [1, 5, 3, 4, 2]),
    # no Cc sorts as the empty string, first
    ("(CC)", [2, 4, 5, 3, 1]),
    # display names (decoded), else the address; "Émile" is not ASCII,
    # and i;ascii-casemap puts it after the letters
    ("(DISPLAYFROM)", [2, 4, 5, 1, 3]),
    ("(DISPLAYTO)", [1, 5, 3, 4, 2]),
])
def test_sort_keys(box, criteria, want):
    assert sort(box, "SORT %s UTF-8 ALL" % criteria) == want


def test_uid_sort_and_search_keys(box):
    box.ok("STORE 2 +FLAGS.SILENT (\\Seen)")
    assert sort(box, "UID SORT (SIZE) US-ASCII UNSEEN") == [4, 5, 3, 1]
    assert sort(box, "SORT (SIZE) UTF-8 SUBJECT plans") == [2, 5, 1]
    assert sort(box, "SORT (SIZE) UTF-8 1000") == []


@pytest.mark.parametrize("bad", [
    "SORT", "SORT ALL", "SORT () UTF-8 ALL", "SORT (COLOUR) UTF-8 ALL",
    "SORT (REVERSE) UTF-8 ALL", "SORT (DATE)", "SORT (DATE) UTF-8",
    "SORT (DATE) UTF-8 BOGUSKEY", "THREAD", "THREAD BOGUS UTF-8 ALL",
    "THREAD REFERENCES UTF-8", "UID THREAD (REFERENCES) UTF-8 ALL"])
def test_bad_commands(box, bad):
    untagged, done = box.cmd(bad)
    assert done.startswith("BAD"), (bad, done)


def esort(c, command):
    """The one ESEARCH line a SORT RETURN gives, after its tag."""
    untagged = c.ok(command)
    lines = [l for l in untagged if l.startswith("* ESEARCH")]
    assert len(lines) == 1 and not any(l.startswith("* SORT")
                                       for l in untagged), untagged
    return lines[0].split(")", 1)[1].strip()


@pytest.mark.parametrize("ret,want", [
    # ARRIVAL is [2, 1, 4, 3, 5]; REVERSE ARRIVAL [5, 3, 4, 1, 2]
    ("(MIN)", "MIN 2"),
    ("(MAX)", "MAX 5"),
    ("(COUNT)", "COUNT 5"),
    ("()", "ALL 2,1,4,3,5"),
    ("(ALL MIN MAX COUNT)", "MIN 2 MAX 5 ALL 2,1,4,3,5 COUNT 5"),
])
def test_esort(box, ret, want):
    """ESORT (RFC 5267 3): MIN and MAX are the first and last in the
    order sorted, ALL keeps that order, only runs up as ranges (3.2:
    "12:10 SHOULD be avoided")."""
    assert esort(box, "SORT RETURN %s (ARRIVAL) UTF-8 ALL" % ret) == want


def test_esort_uid_and_empty(box):
    assert esort(box, "UID SORT RETURN (ALL COUNT) (REVERSE SIZE) UTF-8 "
                 "1:3") == "UID ALL 1,3,2 COUNT 3"
    assert esort(box, "SORT RETURN (MIN MAX ALL COUNT) (DATE) UTF-8 "
                 "SUBJECT nothing-like-it") == "COUNT 0"
    for bad in ("SORT RETURN (SAVE) (DATE) UTF-8 ALL",
                "SORT RETURN (BOGUS) (DATE) UTF-8 ALL",
                "SORT RETURN MIN (DATE) UTF-8 ALL",
                "SORT RETURN (MIN)"):
        untagged, done = box.cmd(bad)
        assert done.startswith("BAD"), (bad, done)
    assert "ESORT" in " ".join(box.ok("CAPABILITY")).split()


def test_unknown_charset(box):
    untagged, done = box.cmd("SORT (DATE) KOI8-R ALL")
    assert done.startswith("NO [BADCHARSET"), done
    untagged, done = box.cmd("THREAD REFERENCES KOI8-R ALL")
    assert done.startswith("NO [BADCHARSET"), done


def thread(c, command):
    untagged = c.ok(command)
    lines = [l for l in untagged if l.startswith("* THREAD")]
    assert len(lines) == 1, untagged
    return lines[0][len("* THREAD "):]


def test_thread_references(box):
    # 1 <- 2 <- 5 by References; 3 and 4 share the base subject "Lunch"
    # and 4's subject is a forward's, so 4 goes under 3.
    assert thread(box, "THREAD REFERENCES UTF-8 ALL") == "(3 4)(1 2 5)"
    assert thread(box, "UID THREAD REFERENCES UTF-8 ALL") == "(3 4)(1 2 5)"
    assert thread(box, "THREAD REFERENCES UTF-8 NOT 2") == "(3 4)(1 5)"


def test_thread_ordered_subject(box):
    # by base subject, the first (by date) the parent of the rest
    assert thread(box, "THREAD ORDEREDSUBJECT UTF-8 ALL") == \
        "(3 4)(1 (2)(5))"


def test_capabilities_and_imaplib(imap_srv):
    c = imaplib.IMAP4("127.0.0.1", imap_srv.imap_port)
    try:
        for cap in ("SORT", "SORT=DISPLAY", "THREAD=ORDEREDSUBJECT",
                    "THREAD=REFERENCES"):
            assert cap in c.capabilities, c.capabilities
        c.login("alice", PASSWORD)
        for m in MESSAGES[:3]:
            c.append("INBOX", None, None, message(*m[:6]))
        c.select("INBOX")
        typ, data = c.sort("(REVERSE SUBJECT)", "UTF-8", "ALL")
        assert typ == "OK" and data == [b"1 2 3"], data
        typ, data = c.thread("REFERENCES", "UTF-8", "ALL")
        assert typ == "OK" and data == [b"(3)(1 2)"], data
        typ, data = c.uid("SORT", "(DATE)", "UTF-8", "ALL")
        assert typ == "OK" and data == [b"3 1 2"], data
    finally:
        c.logout()


def test_big_mailbox_is_sorted_in_steps(imap_srv):
    """2,000 messages: SORT and THREAD finish, and a NOOP from another
    session is answered meanwhile (generous: the loop is shared)."""
    c = imap_srv.raw()
    for i in range(2000):
        c.append("INBOX", message("Re: topic %d" % (i % 50),
                                  "u%d@b.test" % (i % 97), "a@c.test",
                                  "Mon, 01 Jan 2024 10:00:00 +0000",
                                  "<m%d@t>" % i,
                                  "<m%d@t>" % (i - 50) if i >= 50 else None),
                 date="01-Jan-2024 %02d:%02d:%02d +0000"
                 % (i // 3600, i // 60 % 60, i % 60))
    c.ok("SELECT INBOX")
    got = sort(c, "SORT (FROM REVERSE ARRIVAL) UTF-8 ALL")
    assert sorted(got) == list(range(1, 2001))
    want = sorted(range(1, 2001), key=lambda n: ("u%d" % ((n - 1) % 97), -n))
    assert got == want
    t = thread(c, "THREAD REFERENCES UTF-8 ALL")
    # 50 chains of 40 messages each, one per topic
    assert t.count("(") == 50 and t.startswith("(1 51 101 "), t[:80]
    c.close()


def raw_message(headers):
    return ("\r\n".join(headers) + "\r\n\r\nbody\r\n").encode()


def test_base_subjects_and_collation(imap_srv):
    """Base subjects (RFC 5256 2.1) of encoded words, a missing Subject,
    a lone blob and "Ad:" (not a leader), compared under i;ascii-casemap:
    "[" and "_" sort after the letters, as after "Z"."""
    subjects = [
        "_",                        # 1: a real underscore, last
        "=?iso-8859-1?q?_?=",       # 2: "_" is a space: empty
        "[xyz]",                    # 3: a blob that is all there is
        "Ad: Re: x",                # 4: "Ad:" stays
        "b",                        # 5
        None,                       # 6: no Subject: empty
        "a (fwd)",                  # 7: "a"
        "Re: =?utf-8?q?b?=",        # 8: "b"
    ]
    c = imap_srv.raw()
    for s in subjects:
        h = ["From: a@b.test"] + (["Subject: %s" % s] if s is not None
                                  else [])
        c.append("INBOX", raw_message(h))
    c.ok("SELECT INBOX")
    assert sort(c, "SORT (SUBJECT) UTF-8 ALL") == [2, 6, 7, 4, 5, 8, 3, 1]
    assert sort(c, "SORT (REVERSE SUBJECT) US-ASCII ALL") == \
        [1, 3, 5, 8, 4, 7, 2, 6]
    c.close()


def test_groups_sort_by_their_names(imap_srv):
    """A field whose first address is a group's start sorts by the
    group's name: it is the first address of the ENVELOPE (SORT TO/CC),
    and has no display name nor host (SORT=DISPLAY, RFC 5957 3)."""
    tos = [
        "zz: a@a.test;",                         # 1: "zz"
        "b@c.test",                              # 2: "b" / "b@c.test"
        "empty:;",                               # 3: "empty"
        "=?iso-8859-1?q?foo_aar?= <e@f.test>",   # 4: "e" / "foo aar"
        "a: x@x.test, y@y.test;",                # 5: "a"
    ]
    c = imap_srv.raw()
    for to in tos:
        c.append("INBOX", raw_message(["From: f@b.test", "To: %s" % to,
                                       "Cc: %s" % to, "Subject: s"]))
    c.ok("SELECT INBOX")
    assert sort(c, "SORT (DISPLAYTO) UTF-8 ALL") == [5, 2, 3, 4, 1]
    assert sort(c, "SORT (TO) UTF-8 ALL") == [5, 2, 4, 3, 1]
    assert sort(c, "SORT (REVERSE CC) UTF-8 ALL") == [1, 3, 4, 2, 5]
    c.close()


def test_thread_references_relinks(imap_srv):
    """RFC 5256 step 1B: a message's own References replace the parent an
    earlier message's References gave it, even where the new link would
    loop and is not made."""
    c = imap_srv.raw()
    for m in [("p", "11:00", "<a@t>", None),
              ("q", "09:00", "<b@t>", "<a@t> <c@t>"),
              ("r", "10:00", "<c@t>", "<b@t>")]:
        c.append("INBOX", message(m[0], "f@b.test", "t@c.test",
                                  "Mon, 01 Jan 2024 %s:00 +0000" % m[1],
                                  m[2], m[3]))
    c.ok("SELECT INBOX")
    assert thread(c, "THREAD REFERENCES UTF-8 ALL") == "(3 2)(1)"
    c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    c.ok("EXPUNGE")
    assert thread(c, "THREAD REFERENCES UTF-8 ALL") == "(2 1)"
    c.close()
