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


@pytest.mark.parametrize("command", ["NOOP", "FETCH 1 FLAGS",
                                     "STORE 1 +FLAGS (\\Seen)"])
def test_keyword_set_elsewhere_is_announced(imap_srv, command):
    """FETCH reads the flags as they are now, before the update that
    would have announced another session's keyword: FLAGS first too."""
    a = imap_srv.raw()
    b = imap_srv.raw()
    a.append("INBOX", MSG)
    a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    b.ok("STORE 1 +FLAGS ($world)")
    untagged = a.ok(command)
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


# --- SEARCH: addresses and the Date: field's own day ------------------------

def test_search_from_matches_the_parsed_address(imap_srv):
    c = imap_srv.raw()
    c.append("INBOX", b"From: <user-from (comment)@ (comment) domain.org>"
             b"\r\nCc: x (c) @ y . org\r\nSubject: a\r\n\r\nbody\r\n")
    c.append("INBOX", b"From: user-from1@domain.org, other@domain.org\r\n"
             b"Subject: b\r\n\r\nbody\r\n")
    c.ok("SELECT INBOX")
    assert search(c, "FROM user-from@domain.org") == [1]
    assert search(c, "FROM comment") == [1]
    assert search(c, "CC x@y.org") == [1]
    assert search(c, "FROM user-from1@domain.org") == [2]


def test_search_sent_dates_ignore_the_time_zone(imap_srv):
    """SENTON compares the date the sender wrote (RFC 3501 6.4.4)."""
    c = imap_srv.raw()
    for date in (b"Sat, 24 Mar 2007 23:00:00 +0200",    # 21:00 UTC
                 b"Sun, 25 Mar 2007 00:30:00 +0200",    # 24th, UTC
                 b"Sun, 25 Mar 2007 23:00:00 -0300"):   # 26th, UTC
        c.append("INBOX", b"Date: " + date + b"\r\nSubject: d\r\n\r\nb\r\n")
    c.ok("SELECT INBOX")
    assert search(c, "SENTON 24-Mar-2007") == [1]
    assert search(c, "SENTON 25-Mar-2007") == [2, 3]
    assert search(c, "SENTBEFORE 25-Mar-2007") == [1]
    assert search(c, "SENTSINCE 25-Mar-2007") == [2, 3]
    assert search(c, "SENTSINCE 26-Mar-2007") == []


# --- \Recent ----------------------------------------------------------------

def test_recent_belongs_to_one_session(imap_srv):
    """The first session to see a new message gets \\Recent; EXAMINE and
    STATUS do not take it; COPY into a mailbox selected elsewhere makes
    recent messages there."""
    a = imap_srv.raw()
    b = imap_srv.raw()
    a.ok("CREATE dst")
    a.append("INBOX", MSG)
    a.append("INBOX", MSG)
    assert a.status("INBOX", "RECENT") == {"RECENT": 2}
    ex = a.ok("EXAMINE INBOX")
    assert "* 2 RECENT" in ex, ex
    sel = a.ok("SELECT INBOX")
    assert "* 2 RECENT" in sel, sel
    assert search(a, "RECENT") == [1, 2]
    assert search(a, "NEW") == [1, 2]
    a.ok("STORE 1 +FLAGS (\\Seen)")
    assert search(a, "NEW") == [2]
    assert search(a, "OLD") == []
    sel = b.ok("SELECT INBOX")
    assert "* 0 RECENT" in sel, sel
    assert search(b, "OLD") == [1, 2]
    b.ok("SELECT dst")
    a.ok("COPY 1:2 dst")
    untagged = b.ok("NOOP")
    assert "* 2 EXISTS" in untagged and "* 2 RECENT" in untagged, untagged
    assert search(b, "RECENT") == [1, 2]
    # re-created under the same name: its new messages are recent again
    b.ok("UNSELECT")
    a.ok("DELETE dst")
    a.ok("CREATE dst")
    a.ok("COPY 1 dst")
    sel = b.ok("SELECT dst")
    assert "* 1 RECENT" in sel, sel


# --- LIST-EXTENDED (RFC 5258) -----------------------------------------------

def listed(c, command):
    """{name: (attributes lowercased, extended data or "")}, the names the
    tests made only (one lower-case letter first, not the defaults)."""
    out = {}
    for l in c.ok(command):
        m = re.match(r'^\* LIST \(([^)]*)\) "/" ("(?:[^"\\]|\\.)*"|\S+)(.*)$',
                     l)
        assert m, l
        if m.group(2).strip('"')[0].islower():
            out[m.group(2).strip('"')] = (set(m.group(1).lower().split()),
                                          m.group(3).strip())
    return out


def test_recursivematch_needs_another_option(imap_srv):
    c = imap_srv.raw()
    for opts in ("(RECURSIVEMATCH)", "(RECURSIVEMATCH REMOTE)"):
        untagged, done = c.cmd('LIST %s "" "*"' % opts)
        assert done.startswith("BAD"), (opts, done)
    c.ok('LIST (REMOTE) "" "%"')


def test_recursivematch_childinfo(imap_srv):
    c = imap_srv.raw()
    for name in ("p", "p/a", "p/b", "q/q", "r/r", "r/s"):
        c.ok("CREATE " + name)
    for name in ("p/a", "q/q", "r/r", "r/s"):
        c.ok("SUBSCRIBE " + name)
    got = listed(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" '
                 'RETURN (CHILDREN)')
    assert set(got) == {"p", "q", "r"}, got
    attrs, extra = got["p"]
    assert "\\noselect" not in attrs and "\\subscribed" not in attrs, got
    assert "\\haschildren" in attrs, got
    assert extra.upper() == '("CHILDINFO" ("SUBSCRIBED"))', got
    # a parent whose only subscribed child is listed itself: no CHILDINFO
    got = listed(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "*q"')
    assert set(got) == {"q/q"}, got
    got = listed(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "*r"')
    assert set(got) == {"r", "r/r"}, got
    assert got["r"][1] != "" and got["r/r"][1] == "", got
    # without RECURSIVEMATCH only the subscribed ones
    got = listed(c, 'LIST (SUBSCRIBED) "" "*"')
    assert set(got) == {"p/a", "q/q", "r/r", "r/s"}, got


# --- STATUS=SIZE (RFC 8438) -------------------------------------------------

def test_status_size(imap_srv):
    c = imap_srv.raw()
    caps = c.ok("CAPABILITY")[0].split()
    assert "STATUS=SIZE" in caps, caps
    c.ok("CREATE sized")
    assert c.status("sized", "SIZE") == {"SIZE": 0}
    c.append("sized", MSG)
    c.append("sized", MSG + b"more\r\n")
    assert c.status("sized", "SIZE MESSAGES") == {
        "SIZE": 2 * len(MSG) + 6, "MESSAGES": 2}


def test_silent_store_announces_its_keyword(imap_srv):
    c = imap_srv.raw()
    c.append("INBOX", MSG)
    c.ok("SELECT INBOX")
    untagged = c.ok("STORE 1 +FLAGS.SILENT ($quiet)")
    assert "$quiet" in (flags_line(untagged) or set()), untagged
    assert c.ok("FETCH 1 BODY.PEEK[HEADER.FIELDS (Subject)]")[0].startswith(
        "* 1 FETCH")


def test_move_into_the_selected_mailbox(imap_srv):
    """MOVE of a message into the mailbox it is in (RFC 6851): COPYUID,
    then the EXPUNGE of the old copy, then EXISTS counting what is left
    plus the new copy, as imaptest's model of a client expects; the
    EXPUNGE comes first so the count never includes the moved one."""
    c = imap_srv.raw()
    for _ in range(3):
        c.append("INBOX", MSG)
    c.ok("SELECT INBOX")
    got = c.ok("MOVE 1 INBOX")
    assert got[0].startswith("* OK [COPYUID "), got
    assert " 1 4] " in got[0], got
    rest = [l for l in got[1:] if not l.endswith("RECENT")]
    assert rest == ["* 1 EXPUNGE", "* 3 EXISTS"], got
    uids = c.ok("FETCH 1:* UID")
    assert [l.split("UID ")[1].rstrip(")") for l in uids] == \
        ["2", "3", "4"], uids
