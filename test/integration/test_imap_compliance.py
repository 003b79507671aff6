"""RFC 3501 details that Dovecot's imaptest found wrong: '[' in atoms, NIL
as a keyword, FLAGS announced before a new keyword is used, nothing after
BYE, LIST-EXTENDED, address and Date: matching in SEARCH, \\Recent."""
import re

import pytest

from conftest import parse_fetch

MSG = b"From: a@b.test\r\nSubject: s\r\n\r\nbody\r\n"


def search(c, criteria):
    """The numbers of the one SEARCH response, sorted."""
    lines = [l for l in c.ok("SEARCH " + criteria)
             if l.startswith("* SEARCH")]
    assert len(lines) == 1, lines
    return sorted(int(n) for n in lines[0][len("* SEARCH"):].split())


def flags_line(untagged):
    """The keywords of the last "* FLAGS (...)" among untagged, or None."""
    found = None
    for l in untagged:
        m = re.match(r"^\* FLAGS \((.*)\)$", l)
        if m:
            found = set(m.group(1).split())
    return found


def assert_flags_before_fetch(untagged):
    """A "* FLAGS" comes before the first FETCH among untagged."""
    i_flags = next(i for i, l in enumerate(untagged)
                   if l.startswith("* FLAGS"))
    i_fetch = next(i for i, l in enumerate(untagged) if " FETCH " in l)
    assert i_flags < i_fetch, untagged


# --- atoms and NIL ----------------------------------------------------------

def test_open_bracket_is_an_atom_char(imap_srv):
    """RFC 3501 excludes only ']' (resp-specials) from atoms."""
    c = imap_srv.raw()
    c.ok("CREATE x[y")
    c.ok("SELECT x[y")
    untagged, done = c.cmd("SELECT n[o")
    assert done.startswith("NO"), done
    # a bracketed section is still one atom
    c.append("x[y", MSG)
    c.ok("SELECT x[y")
    body = c.ok("FETCH 1 BODY.PEEK[HEADER.FIELDS (Subject)]")
    assert "Subject: s" in body[0], body


def test_nil_is_a_keyword(imap_srv):
    c = imap_srv.raw()
    c.append("INBOX", MSG)
    c.append("INBOX", MSG)
    c.ok("SELECT INBOX")
    c.ok("STORE 1 +FLAGS NIL")
    c.ok("STORE 1 +FLAGS (NIL)")
    n, f = parse_fetch(c.ok("FETCH 1 FLAGS")[0])
    assert [x for x in f["FLAGS"] if x != "\\Recent"] == [None] or \
        "NIL" in f["FLAGS"], f
    assert search(c, "KEYWORD NIL") == [1]
    assert search(c, "UNKEYWORD NIL") == [2]


# --- FLAGS grows before a new keyword is used -------------------------------

def test_store_announces_new_keyword_first(imap_srv):
    c = imap_srv.raw()
    c.append("INBOX", MSG)
    sel = c.ok("SELECT INBOX")
    assert flags_line(sel) == {"\\Answered", "\\Flagged", "\\Deleted",
                               "\\Seen", "\\Draft"}, sel
    untagged = c.ok("STORE 1 +FLAGS ($hello)")
    assert_flags_before_fetch(untagged)
    assert "$hello" in flags_line(untagged)
    assert any("PERMANENTFLAGS" in l and "$hello" in l for l in untagged)
    # known now: no second announcement
    untagged = c.ok("STORE 1 -FLAGS ($hello)")
    untagged += c.ok("STORE 1 +FLAGS ($hello)")
    assert flags_line(untagged) is None, untagged


def test_keyword_set_elsewhere_is_announced(imap_srv):
    a = imap_srv.raw()
    b = imap_srv.raw()
    a.append("INBOX", MSG)
    a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    b.ok("STORE 1 +FLAGS ($world)")
    untagged = a.ok("NOOP")
    assert "$world" in (flags_line(untagged) or set()), untagged
    assert_flags_before_fetch(untagged)
    # a new message with a new keyword
    b.append("INBOX", MSG, flags="$other")
    untagged = a.ok("NOOP")
    assert "$other" in (flags_line(untagged) or set()), untagged


# --- LOGOUT -----------------------------------------------------------------

def test_nothing_after_bye(imap_srv):
    a = imap_srv.raw()
    b = imap_srv.raw()
    a.append("INBOX", MSG)
    a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    b.ok("STORE 1 +FLAGS (\\Seen)")
    b.append("INBOX", MSG)
    untagged, done = a.cmd("LOGOUT")
    assert done.startswith("OK"), done
    assert untagged == ["* BYE Logging out"], untagged
