"""SEARCH and UID SEARCH: every RFC 3501 search key, NOT, OR and
parenthesised groups, CHARSET UTF-8 and refused charsets."""
import pytest

M1 = (b"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\n"
      b"Subject: Meeting tomorrow\r\n"
      b"Date: Mon, 1 Jan 2024 09:00:00 +0000\r\n\r\n"
      b"Let's meet at noon.\r\n")
M2 = (b"From: Carol <carol@example.net>\r\nTo: Dave <dave@example.net>\r\n"
      b"Cc: erin@example.org\r\nBcc: frank@example.org\r\n"
      b"Subject: Re: Budget 2024\r\n"
      b"Date: Thu, 15 Feb 2024 10:00:00 +0000\r\n\r\n"
      b"The budget is attached.\r\n" + b"padding line\r\n" * 100)
M3 = ("From: =?UTF-8?Q?Zo=C3=AB?= <zoe@example.de>\r\nTo: bob@example.com\r\n"
      "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= aus Berlin\r\n"
      "Date: Wed, 20 Mar 2024 11:00:00 +0000\r\n"
      "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
      "Content-Transfer-Encoding: 8bit\r\n\r\n"
      "Viele Grüße aus der Straße.\r\n").encode("utf-8")
M4 = (b"From: noreply@example.com\r\nSubject: misc\r\nX-Priority: 1\r\n"
      b"Date: Sat, 30 Dec 2023 08:00:00 +0000\r\n\r\nnothing\r\n")


@pytest.fixture
def box(imap_srv):
    c = imap_srv.raw()
    c.append("INBOX", M1, "\\Seen \\Answered", "01-Jan-2024 12:00:00 +0000")
    c.append("INBOX", M2, "\\Flagged $Work", "15-Feb-2024 12:00:00 +0000")
    c.append("INBOX", M3, "\\Draft", "20-Mar-2024 12:00:00 +0000")
    c.append("INBOX", M4, "\\Deleted", "20-Mar-2024 13:00:00 +0000")
    c.ok("SELECT INBOX")
    yield c
    c.close()


def search(c, criteria, uid=False):
    """The numbers of the one SEARCH response, sorted."""
    untagged = c.ok(("UID SEARCH " if uid else "SEARCH ") + criteria)
    lines = [l for l in untagged if l.startswith("* SEARCH")]
    assert len(lines) == 1, untagged
    assert lines[0] == "* SEARCH" or lines[0].startswith("* SEARCH "), lines
    return sorted(int(n) for n in lines[0][len("* SEARCH"):].split())


CASES = [
    ("ALL", [1, 2, 3, 4]),
    ("ANSWERED", [1]), ("UNANSWERED", [2, 3, 4]),
    ("DELETED", [4]), ("UNDELETED", [1, 2, 3]),
    ("DRAFT", [3]), ("UNDRAFT", [1, 2, 4]),
    ("FLAGGED", [2]), ("UNFLAGGED", [1, 3, 4]),
    ("SEEN", [1]), ("UNSEEN", [2, 3, 4]),
    ("KEYWORD $Work", [2]), ("UNKEYWORD $Work", [1, 3, 4]),
    ("KEYWORD $Unused", []),
    ("RECENT", [1, 2, 3, 4]), ("NEW", [2, 3, 4]), ("OLD", []),
    ("FROM alice", [1]), ("FROM CAROL", [2]), ("FROM example.com", [1, 4]),
    ("TO dave", [2]), ("TO bob@example.com", [1, 3]),
    ("CC erin", [2]), ("BCC frank", [2]), ("CC nobody", []),
    ("SUBJECT budget", [2]), ('SUBJECT "re: budget"', [2]),
    ("SUBJECT Berlin", [3]),
    ("HEADER X-Priority 1", [4]), ('HEADER X-Priority ""', [4]),
    ('HEADER Subject ""', [1, 2, 3, 4]), ("HEADER X-Missing x", []),
    ("BODY noon", [1]), ("BODY BUDGET", [2]), ("BODY alice", []),
    ("TEXT alice", [1]), ("TEXT noon", [1]), ("TEXT budget", [2]),
    ("LARGER 1000", [2]), ("SMALLER 1000", [1, 3, 4]),
    ("LARGER %d" % len(M2), []),
    ("SMALLER %d" % min(map(len, (M1, M2, M3, M4))), []),
    ("BEFORE 15-Feb-2024", [1]), ("ON 15-Feb-2024", [2]),
    ("SINCE 15-Feb-2024", [2, 3, 4]), ("ON 20-Mar-2024", [3, 4]),
    ("SINCE 21-Mar-2024", []),
    ("SENTBEFORE 1-Jan-2024", [4]), ("SENTON 1-Jan-2024", [1]),
    ("SENTSINCE 15-Feb-2024", [2, 3]),
    ("1", [1]), ("2,4", [2, 4]), ("*", [4]), ("2:*", [2, 3, 4]),
    ("UID 2:3", [2, 3]), ("UID 3:*", [3, 4]), ("UID 10:*", [4]),
    ("UID 10:20", []),
    ("NOT SEEN", [2, 3, 4]), ("NOT NOT SEEN", [1]),
    ("OR SEEN FLAGGED", [1, 2]), ("(SEEN FLAGGED)", []),
    ("OR (SEEN ANSWERED) DRAFT", [1, 3]),
    ("NOT (OR SEEN FLAGGED)", [3, 4]),
    ("OR OR SEEN FLAGGED DELETED", [1, 2, 4]),
    ("FLAGGED SUBJECT budget", [2]), ("FLAGGED SUBJECT meeting", []),
    ("(OR FROM alice FROM carol) (OR SUBJECT meeting SUBJECT misc)", [1]),
    ("UNDELETED NOT 2:3", [1]),
    ("CHARSET US-ASCII SUBJECT budget", [2]),
    ("CHARSET UTF-8 TO bob", [1, 3]),
]


def test_search_keys(box):
    """Every case on one mailbox; the failure lists every wrong case."""
    wrong = []
    for criteria, expected in CASES:
        untagged, done = box.cmd("SEARCH " + criteria)
        lines = [l for l in untagged if l.startswith("* SEARCH")]
        got = (sorted(int(n) for n in lines[0][len("* SEARCH"):].split())
               if done.startswith("OK") and len(lines) == 1
               else (untagged, done))
        if got != expected:
            wrong.append("SEARCH %s: got %r, expected %r" % (
                criteria, got, expected))
    assert not wrong, "\n".join(wrong)


def test_key_names_are_case_insensitive(box):
    assert search(box, "unseen or flagged draft") == [2, 3]


def utf8_search(c, key, text, uid=False):
    """SEARCH CHARSET UTF-8 key {n} with the UTF-8 text as a literal."""
    data = text.encode("utf-8")
    t = c.tag()
    c.send("%s %sSEARCH CHARSET UTF-8 %s {%d}\r\n" % (
        t, "UID " if uid else "", key, len(data)))
    assert c.line().startswith("+")
    c.send(data + b"\r\n")
    untagged, done = c.read_until(t)
    assert done.startswith("OK"), done
    line, = [l for l in untagged if l.startswith("* SEARCH")]
    return sorted(int(n) for n in line[len("* SEARCH"):].split())


def test_charset_utf8(box):
    # Encoded words in headers are decoded before matching; 8-bit bodies
    # are matched in their charset.
    assert utf8_search(box, "SUBJECT", "Grüße") == [3]
    assert utf8_search(box, "SUBJECT", "grüsse") in ([], [3])
    assert utf8_search(box, "FROM", "Zoë") == [3]
    assert utf8_search(box, "BODY", "Straße") == [3]
    assert utf8_search(box, "TEXT", "STRAßE") == [3]
    assert utf8_search(box, "BODY", "Ärger") == []


def test_unknown_charset(box):
    untagged, done = box.cmd("SEARCH CHARSET X-NO-SUCH-CHARSET SUBJECT x")
    assert done.startswith("NO [BADCHARSET"), done
    assert not any(l.startswith("* SEARCH") for l in untagged)


def test_uid_search_after_expunge(box):
    box.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    box.ok("EXPUNGE")
    assert search(box, "ALL") == [1, 2]
    assert search(box, "ALL", uid=True) == [2, 3]
    assert search(box, "1", uid=True) == [2]
    assert search(box, "UID 3", uid=False) == [2]
    assert search(box, "UID 1") == []
    assert search(box, "UNSEEN", uid=True) == [2, 3]


def test_search_bad_syntax(box):
    for bad in ("", "FROBNICATE", "BEFORE notadate", "LARGER x",
                "OR SEEN", "(SEEN", "SEEN)", "UID x", "HEADER Subject",
                "KEYWORD"):
        untagged, done = box.cmd("SEARCH " + bad)
        assert done.startswith("BAD"), (bad, done)
        assert not any(l.startswith("* SEARCH") for l in untagged), untagged


def test_search_empty_mailbox(imap_srv):
    with imap_srv.raw() as c:
        c.ok("SELECT Trash")
        assert c.ok("SEARCH ALL") == ["* SEARCH"]
        assert c.ok("UID SEARCH 1:*") == ["* SEARCH"]


def test_imaplib_search(box, imap_srv):
    c = imap_srv.imap()
    c.select("INBOX")
    assert c.search(None, "FLAGGED") == ("OK", [b"2"])
    assert c.search(None, '(OR SEEN DRAFT)') == ("OK", [b"1 3"])
    assert c.uid("SEARCH", None, "ALL") == ("OK", [b"1 2 3 4"])
    typ, data = c.search("UTF-8", "SUBJECT", '"Berlin"')
    assert (typ, data) == ("OK", [b"3"])
    c.logout()
