"""Changing messages: STORE (flags, keywords, .SILENT, UNCHANGEDSINCE),
EXPUNGE, UID EXPUNGE, CLOSE, UNSELECT, COPY and MOVE with COPYUID,
APPEND with flags, date, APPENDUID, synchronizing literals and LITERAL+."""
import datetime
import re

import pytest

from conftest import parse_fetch

MSG = b"From: a@b.test\r\nSubject: s\r\n\r\nbody\r\n"


def uidset(s):
    """'1:3,7' -> [1, 2, 3, 7]."""
    out = []
    for part in s.split(","):
        lo, _, hi = part.partition(":")
        lo, hi = int(lo), int(hi or lo)
        out.extend(range(min(lo, hi), max(lo, hi) + 1))
    return out


def flags(c, seq="1:*", uid=False):
    """{seq: set of flags} from FETCH FLAGS."""
    out = {}
    for l in c.ok("%sFETCH %s FLAGS" % ("UID " if uid else "", seq)):
        n, f = parse_fetch(l)
        out[n] = set(f["FLAGS"])
    return out


def fetch_flags(untagged):
    """{seq: set} of the untagged FETCH responses among untagged."""
    out = {}
    for l in untagged:
        if " FETCH " in l:
            n, f = parse_fetch(l)
            out[n] = set(f["FLAGS"])
    return out


def apply_expunges(uids, untagged):
    """The UID list after the untagged EXPUNGEs among untagged, applied in
    order as a client does (RFC 3501 7.4.1)."""
    uids = list(uids)
    for l in untagged:
        m = re.match(r"^\* (\d+) EXPUNGE$", l)
        if m:
            del uids[int(m.group(1)) - 1]
    return uids


@pytest.fixture
def box(imap_srv):
    """INBOX selected with messages 1..4 (UIDs 1..4), none \\Recent."""
    c = imap_srv.raw()
    for i in range(4):
        c.append("INBOX", b"Subject: %d\r\n\r\nbody %d\r\n" % (i, i))
    c.ok("SELECT INBOX")   # takes \Recent away from later sessions
    c.ok("CLOSE")
    c.close()
    c = imap_srv.raw()
    c.ok("SELECT INBOX")
    yield c
    c.close()


def test_store_add_remove_replace(box):
    untagged = box.ok("STORE 1 +FLAGS (\\Seen \\Flagged)")
    assert fetch_flags(untagged) == {1: {"\\Seen", "\\Flagged"}}
    untagged = box.ok("STORE 1 -FLAGS (\\Flagged)")
    assert fetch_flags(untagged) == {1: {"\\Seen"}}
    untagged = box.ok("STORE 1:2 FLAGS (\\Answered \\Draft)")
    assert fetch_flags(untagged) == {1: {"\\Answered", "\\Draft"},
                                     2: {"\\Answered", "\\Draft"}}
    untagged = box.ok("STORE 2 FLAGS ()")
    assert fetch_flags(untagged) == {2: set()}
    assert flags(box) == {1: {"\\Answered", "\\Draft"}, 2: set(), 3: set(),
                          4: set()}


def test_store_silent(box):
    assert box.ok("STORE 1:3 +FLAGS.SILENT (\\Seen)") == []
    assert box.ok("STORE 2 -FLAGS.SILENT (\\Seen)") == []
    assert box.ok("STORE 3 FLAGS.SILENT (\\Deleted)") == []
    assert flags(box) == {1: {"\\Seen"}, 2: set(), 3: {"\\Deleted"},
                          4: set()}


def test_store_without_parentheses_and_uid_store(box):
    untagged = box.ok("STORE 4 +FLAGS \\Seen")
    assert fetch_flags(untagged) == {4: {"\\Seen"}}
    untagged = box.ok("UID STORE 2:3 +FLAGS (\\Flagged)")
    got = [parse_fetch(l) for l in untagged]
    # UID STORE's FETCH responses carry the UID (RFC 3501 6.4.8).
    assert [(n, f["UID"], set(f["FLAGS"])) for n, f in got] == [
        (2, 2, {"\\Flagged"}), (3, 3, {"\\Flagged"})]


def test_keywords(box):
    untagged = box.ok("STORE 1 +FLAGS ($Label1 Work $Forwarded)")
    assert fetch_flags(untagged) == {1: {"$Label1", "Work", "$Forwarded"}}
    box.ok("STORE 2 +FLAGS.SILENT (Work)")
    box.ok("STORE 1 -FLAGS.SILENT ($Label1)")
    assert flags(box) == {1: {"Work", "$Forwarded"}, 2: {"Work"}, 3: set(),
                          4: set()}
    assert box.ok("SEARCH KEYWORD Work") == ["* SEARCH 1 2"]
    # Keywords stay after a new SELECT, and show in FLAGS.
    untagged = box.ok("SELECT INBOX")
    fl = [l for l in untagged if l.startswith("* FLAGS ")]
    assert "Work" in fl[0] and "$Forwarded" in fl[0], fl


def test_store_recent_or_bad_flag_refused(box):
    for cmd in ("STORE 1 +FLAGS (\\Recent)", "STORE 1 +FLAGS (\\Bogus)",
                "STORE 1 +FLAGS (a(b)", "STORE 1 FROB (\\Seen)"):
        untagged, done = box.cmd(cmd)
        assert done.startswith("BAD"), (cmd, done)
    assert flags(box, "1") == {1: set()}


def test_store_unchangedsince(box):
    box.ok("ENABLE CONDSTORE")
    m1 = max(parse_fetch(l)[1]["MODSEQ"][0]
             for l in box.ok("FETCH 1:2 (MODSEQ)"))
    untagged = box.ok("STORE 1 (UNCHANGEDSINCE %d) +FLAGS (\\Seen)" % m1)
    n, f = parse_fetch(untagged[0])
    assert n == 1 and "\\Seen" in f["FLAGS"] and f["MODSEQ"][0] > m1
    # Message 1 changed since m1: it is not touched, and is reported
    # (RFC 7162 3.1.3); message 2 did not, and is changed.
    untagged, done = box.cmd("STORE 1:2 (UNCHANGEDSINCE %d) +FLAGS "
                             "(\\Flagged)" % m1)
    assert done.startswith("OK [MODIFIED 1]"), done
    assert flags(box, "1:2") == {1: {"\\Seen"}, 2: {"\\Flagged"}}
    # UNCHANGEDSINCE 0 always fails (RFC 7162 3.1.3).
    untagged, done = box.cmd("STORE 3 (UNCHANGEDSINCE 0) +FLAGS (\\Seen)")
    assert done.startswith("OK [MODIFIED 3]"), done
    assert flags(box, "3") == {3: set()}


def test_fetch_changedsince(box):
    box.ok("ENABLE CONDSTORE")
    m = max(parse_fetch(l)[1]["MODSEQ"][0]
            for l in box.ok("FETCH 1:* (MODSEQ)"))
    box.ok("STORE 3 +FLAGS.SILENT (\\Seen)")
    untagged = box.ok("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % m)
    got = [parse_fetch(l) for l in untagged]
    assert [(n, set(f["FLAGS"])) for n, f in got] == [(3, {"\\Seen"})]
    assert got[0][1]["MODSEQ"][0] > m
    assert box.ok("SEARCH MODSEQ %d" % (m + 1)) [0].startswith("* SEARCH 3")


def test_expunge(box):
    box.ok("STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    untagged = box.ok("EXPUNGE")
    assert len([l for l in untagged if "EXPUNGE" in l]) == 2, untagged
    assert apply_expunges([1, 2, 3, 4], untagged) == [2, 4]
    got = [parse_fetch(l) for l in box.ok("FETCH 1:* UID")]
    assert [(n, f["UID"]) for n, f in got] == [(1, 2), (2, 4)]
    assert box.ok("EXPUNGE") == []


def test_expunge_all_then_append_keeps_uids_growing(box):
    box.ok("STORE 1:* +FLAGS.SILENT (\\Deleted)")
    untagged = box.ok("EXPUNGE")
    assert apply_expunges([1, 2, 3, 4], untagged) == []
    done = box.append("INBOX", MSG)
    assert re.match(r"^OK \[APPENDUID \d+ 5\]", done), done
    assert box.ok("UID SEARCH ALL") == ["* SEARCH 5"]


def test_uid_expunge(box):
    box.ok("STORE 1:3 +FLAGS.SILENT (\\Deleted)")
    untagged = box.ok("UID EXPUNGE 2:4")
    # Only \Deleted messages in the UID set go (RFC 4315 2.1).
    assert apply_expunges([1, 2, 3, 4], untagged) == [1, 4]
    assert box.ok("UID SEARCH DELETED") == ["* SEARCH 1"]


def test_close_expunges_silently(imap_srv, box):
    box.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    untagged = box.ok("CLOSE")
    assert untagged == [], untagged
    untagged, done = box.cmd("FETCH 1 UID")
    assert done.startswith("BAD"), done
    assert box.status("INBOX") == {"MESSAGES": 3}


def test_unselect_does_not_expunge(box):
    box.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    assert box.ok("UNSELECT") == []
    untagged, done = box.cmd("FETCH 1 UID")
    assert done.startswith("BAD"), done
    assert box.status("INBOX") == {"MESSAGES": 4}


def copyuid(text):
    """(uidvalidity, source uids, destination uids) of a COPYUID code."""
    m = re.search(r"\[COPYUID (\d+) ([\d:,]+) ([\d:,]+)\]", text)
    assert m, text
    return int(m.group(1)), uidset(m.group(2)), uidset(m.group(3))


def uidvalidity(c, mailbox):
    return c.status(mailbox, "UIDVALIDITY")["UIDVALIDITY"]


def test_copy(box):
    box.ok("STORE 2 +FLAGS.SILENT (\\Flagged $Work)")
    untagged, done = box.cmd("COPY 2:3 Archive")
    assert done.startswith("OK [COPYUID "), done
    assert untagged == []
    v, src, dst = copyuid(done)
    assert v == uidvalidity(box, "Archive")
    assert (src, dst) == ([2, 3], [1, 2])
    untagged, done = box.cmd("UID COPY 4,1 Archive")
    v, src, dst = copyuid(done)
    assert sorted(zip(src, dst)) == [(1, 3), (4, 4)]
    # The source stays; the copies keep flags and bytes.
    assert box.ok("SEARCH ALL") == ["* SEARCH 1 2 3 4"]
    body = parse_fetch(box.ok("FETCH 2 BODY.PEEK[]")[0])[1]
    box.ok("SELECT Archive")
    assert box.ok("SEARCH ALL") == ["* SEARCH 1 2 3 4"]
    assert flags(box, "1")[1] - {"\\Recent"} == {"\\Flagged", "$Work"}
    assert parse_fetch(box.ok("FETCH 1 BODY.PEEK[]")[0])[1] == body


def test_copy_to_missing_mailbox_is_trycreate(box):
    untagged, done = box.cmd("COPY 1 NoSuch")
    assert done.startswith("NO [TRYCREATE]"), done
    untagged, done = box.cmd("MOVE 1 NoSuch")
    assert done.startswith("NO [TRYCREATE]"), done
    assert box.ok("SEARCH ALL") == ["* SEARCH 1 2 3 4"]


def test_move(box):
    untagged, done = box.cmd("MOVE 2:3 Trash")
    assert done.startswith("OK"), done
    # RFC 6851 4.3: COPYUID in an untagged OK before the EXPUNGEs.
    assert untagged[0].startswith("* OK [COPYUID "), untagged
    v, src, dst = copyuid(untagged[0])
    assert (v, src, dst) == (uidvalidity(box, "Trash"), [2, 3], [1, 2])
    assert apply_expunges([1, 2, 3, 4], untagged[1:]) == [1, 4]
    assert len([l for l in untagged if "EXPUNGE" in l]) == 2, untagged
    assert box.ok("UID SEARCH ALL") == ["* SEARCH 1 4"]
    untagged, done = box.cmd("UID MOVE 4 Trash")
    assert copyuid(untagged[0])[1:] == ([4], [3])
    assert apply_expunges([1, 4], untagged[1:]) == [1]
    assert box.status("Trash") == {"MESSAGES": 3}


def test_append_flags_date_appenduid(imap_srv):
    with imap_srv.raw() as c:
        done = c.append("Drafts", MSG, flags="\\Draft \\Seen $Todo",
                        date="05-Mar-2021 08:09:10 +0000")
        m = re.match(r"^OK \[APPENDUID (\d+) (\d+)\]", done)
        assert m, done
        assert int(m.group(1)) == uidvalidity(c, "Drafts")
        assert int(m.group(2)) == 1
        c.ok("SELECT Drafts")
        n, f = parse_fetch(c.ok("FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE "
                                "BODY.PEEK[])")[0])
        assert set(f["FLAGS"]) == {"\\Draft", "\\Seen", "$Todo", "\\Recent"}
        assert f["RFC822.SIZE"] == len(MSG) and f["BODY[]"] == MSG
        # The same instant; the zone shown is the server's choice.
        parse = lambda s: datetime.datetime.strptime(s.strip(),
                                                     "%d-%b-%Y %H:%M:%S %z")
        assert parse(f["INTERNALDATE"].decode()) == parse(
            "05-Mar-2021 08:09:10 +0000")


def test_append_synchronizing_literal(imap_srv):
    with imap_srv.raw() as c:
        c.send("a1 APPEND INBOX (\\Flagged) {%d}\r\n" % len(MSG))
        assert c.line().startswith("+")
        c.send(MSG + b"\r\n")
        untagged, done = c.read_until("a1")
        assert re.match(r"^OK \[APPENDUID \d+ 1\]", done), done
        # LITERAL+: no continuation; the next command right behind it.
        c.send(b"a2 APPEND INBOX {%d+}\r\n" % len(MSG) + MSG
               + b"\r\na3 NOOP\r\n")
        untagged, done = c.read_until("a2")
        assert not any(l.startswith("+") for l in untagged), untagged
        assert re.match(r"^OK \[APPENDUID \d+ 2\]", done), done
        untagged, done = c.read_until("a3")
        assert done.startswith("OK")
        assert c.status("INBOX") == {"MESSAGES": 2}


def test_append_to_selected_mailbox_reports_exists(imap_srv):
    with imap_srv.raw() as c:
        c.ok("SELECT INBOX")
        t = c.tag()
        c.send(b"%s APPEND INBOX {%d+}\r\n" % (t.encode(), len(MSG)) + MSG
               + b"\r\n")
        untagged, done = c.read_until(t)
        assert done.startswith("OK")
        # RFC 3501 6.3.11: SHOULD, and Dovecot does, before the OK.
        assert "* 1 EXISTS" in untagged, untagged


def append_sync(c, args, data=b"abc"):
    """APPEND args {n}: sends the literal only after a "+" (a server may
    refuse at once); returns the tagged reply."""
    t = c.tag()
    c.send("%s APPEND %s {%d}\r\n" % (t, args, len(data)))
    l = c.line()
    if l.startswith("+"):
        c.send(data + b"\r\n")
        return c.read_until(t)[1]
    assert l.startswith(t + " "), l
    return l[len(t) + 1:]


def test_append_refusals(imap_srv):
    with imap_srv.raw() as c:
        done = append_sync(c, "NoSuch")
        assert done.startswith("NO [TRYCREATE]"), done
        done = append_sync(c, "INBOX (\\Recent)")
        assert done.startswith(("BAD", "NO")), done
        done = append_sync(c, 'INBOX "not a date"')
        assert done.startswith("BAD"), done
        assert c.status("INBOX") == {"MESSAGES": 0}


def test_flags_survive_restart(imap_srv, box):
    box.ok("STORE 1 +FLAGS.SILENT (\\Seen $Keep)")
    box.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    box.ok("EXPUNGE")
    box.close()
    imap_srv.restart()
    with imap_srv.raw() as c:
        c.ok("SELECT INBOX")
        got = {n: f - {"\\Recent"} for n, f in flags(c, "1:*").items()}
        assert got == {1: {"\\Seen", "$Keep"}, 2: set(), 3: set()}
        assert c.ok("UID SEARCH ALL") == ["* SEARCH 1 3 4"]


def test_imaplib_store_copy_move_expunge(imap_srv):
    c = imap_srv.imap()
    for i in range(3):
        c.append("INBOX", None, None, MSG)
    c.select("INBOX")
    typ, data = c.store("1", "+FLAGS", "(\\Seen)")
    assert typ == "OK" and b"\\Seen" in data[0]
    typ, data = c.copy("1:2", "Archive")
    assert typ == "OK"
    typ, data = c.uid("MOVE", "3", "Trash")
    assert typ == "OK"
    c.store("1", "+FLAGS.SILENT", "(\\Deleted)")
    typ, data = c.expunge()
    assert typ == "OK" and data[-1] == b"1"
    assert c.search(None, "ALL") == ("OK", [b"1"])
    assert c.status("Archive", "(MESSAGES)")[1][0].endswith(b" (MESSAGES 2)")
    assert c.status("Trash", "(MESSAGES)")[1][0].endswith(b" (MESSAGES 1)")
    c.close()
    c.logout()
