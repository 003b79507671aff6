"""Changes made elsewhere: two sessions in one mailbox see each other's
flag changes, expunges and appends as untagged responses; IDLE wakes on
an LMTP delivery; commands pipelined behind DONE; and no EXPUNGE while a
command uses sequence numbers (RFC 3501 7.4.1)."""
import re
import time

import pytest

from conftest import DOMAIN, parse_fetch

MSG = b"From: a@b.test\r\nSubject: s\r\n\r\nbody\r\n"
WAKE = 5.0  # seconds an IDLE may take to report a change


def deliver(srv, rcpt="alice@" + DOMAIN, subject=b"new"):
    code, msg = srv.deliver("s@remote.test", [rcpt],
                            b"Subject: " + subject + b"\r\n\r\nhi\r\n")
    assert code == 250, (code, msg)


@pytest.fixture
def pair(imap_srv):
    """Two alice sessions with INBOX selected, holding messages 1..3."""
    a = imap_srv.raw()
    for i in range(3):
        a.append("INBOX", MSG)
    a.ok("SELECT INBOX")
    b = imap_srv.raw()
    b.ok("SELECT INBOX")
    yield a, b
    a.close()
    b.close()


def fetches(untagged):
    return {n: f for n, f in map(parse_fetch,
                                 [l for l in untagged if " FETCH " in l])}


def expunges(untagged):
    return [int(m.group(1)) for m in
            (re.match(r"^\* (\d+) EXPUNGE$", l) for l in untagged) if m]


def test_flag_change_seen_by_other_session(pair):
    a, b = pair
    a.ok("STORE 2 +FLAGS.SILENT (\\Flagged $Mark)")
    f = fetches(b.ok("NOOP"))
    assert set(f) == {2}, f
    assert set(f[2]["FLAGS"]) - {"\\Recent"} == {"\\Flagged", "$Mark"}
    # Reported once.
    assert fetches(b.ok("NOOP")) == {}
    a.ok("STORE 2 -FLAGS.SILENT (\\Flagged)")
    f = fetches(b.ok("NOOP"))
    assert set(f[2]["FLAGS"]) - {"\\Recent"} == {"$Mark"}


def test_own_change_not_reported_twice(pair):
    a, b = pair
    untagged = a.ok("STORE 1 +FLAGS (\\Seen)")
    assert set(fetches(untagged)) == {1}
    assert fetches(a.ok("NOOP")) == {}


def test_own_changes_skipped_others_between_reported(pair, imap_srv):
    """A session's sync skips reading back its own changes only when
    every change since its view is its own: one made by another session
    in between, a delivery, or an expunge is still reported, and the
    own changes are never reported."""
    a, b = pair
    a.ok("STORE 1:3 +FLAGS.SILENT (\\Flagged)")
    assert fetches(a.ok("NOOP")) == {}
    # another session's change between two of a's own
    a.ok("STORE 1 +FLAGS.SILENT (\\Seen)")
    b.ok("STORE 2 +FLAGS.SILENT ($Other)")
    untagged = a.ok("STORE 3 +FLAGS.SILENT (\\Seen)") + a.ok("NOOP")
    f = fetches(untagged)
    assert set(f) == {2}, untagged
    assert "$Other" in f[2]["FLAGS"]
    assert fetches(a.ok("NOOP")) == {}
    # a delivery after a's own change: EXISTS, no FETCH of a's own
    a.ok("STORE 1 -FLAGS.SILENT (\\Seen)")
    deliver(imap_srv)
    untagged = a.ok("STORE 2 -FLAGS.SILENT (\\Flagged)") + a.ok("NOOP")
    assert "* 4 EXISTS" in untagged, untagged
    assert fetches(untagged) == {}, untagged
    # an expunge elsewhere between own changes
    b.ok("NOOP")
    b.ok("STORE 4 +FLAGS.SILENT (\\Deleted)")
    b.ok("EXPUNGE")
    untagged = a.ok("STORE 1 +FLAGS.SILENT (\\Draft)") + a.ok("NOOP")
    assert expunges(untagged) == [4], untagged
    assert fetches(untagged) == {}, untagged
    assert a.ok("UID SEARCH DRAFT") == ["* SEARCH 1"]


def test_expunge_seen_by_other_session(pair):
    a, b = pair
    a.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    a.ok("EXPUNGE")
    untagged = b.ok("NOOP")
    assert expunges(untagged) == [2], untagged
    got = [parse_fetch(l) for l in b.ok("FETCH 1:* UID")]
    assert [(n, f["UID"]) for n, f in got] == [(1, 1), (2, 3)]


def test_append_seen_by_other_session(pair):
    a, b = pair
    a.append("INBOX", MSG)
    untagged = b.ok("NOOP")
    assert "* 4 EXISTS" in untagged, untagged
    assert b.ok("UID SEARCH ALL") == ["* SEARCH 1 2 3 4"]


def test_changes_in_another_mailbox_are_not_reported(pair, imap_srv):
    a, b = pair
    with imap_srv.raw() as c:
        c.append("Sent", MSG)
        c.ok("SELECT Sent")
        c.ok("STORE 1 +FLAGS.SILENT (\\Seen)")
    assert b.ok("NOOP") == []


def test_idle_wakes_on_lmtp_delivery(imap_srv):
    with imap_srv.raw() as c:
        c.ok("SELECT INBOX")
        c.send("i1 IDLE\r\n")
        assert c.line().startswith("+ ")
        t0 = time.monotonic()
        deliver(imap_srv)
        line = c.line(timeout=WAKE)
        assert line == "* 1 EXISTS", line
        assert time.monotonic() - t0 < WAKE
        c.send("DONE\r\n")
        untagged, done = c.read_until("i1")
        assert done.startswith("OK"), done
        assert all(l == "* 1 RECENT" for l in untagged), untagged
        assert fetches(c.ok("FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]")) == {
            1: {"BODY[HEADER.FIELDS (SUBJECT)]": b"Subject: new\r\n\r\n"}}


def test_idle_wakes_on_other_sessions_changes(pair):
    a, b = pair
    b.send("i1 IDLE\r\n")
    assert b.line().startswith("+ ")
    a.ok("STORE 1 +FLAGS.SILENT (\\Answered)")
    n, f = parse_fetch(b.line(timeout=WAKE))
    assert n == 1 and "\\Answered" in f["FLAGS"]
    a.ok("STORE 3 +FLAGS.SILENT (\\Deleted)")
    a.ok("EXPUNGE")
    # The FETCH for \Deleted may come first.
    lines = [b.line(timeout=WAKE)]
    while lines[-1] != "* 3 EXPUNGE":
        assert " FETCH " in lines[-1], lines
        lines.append(b.line(timeout=WAKE))
    b.send("DONE\r\n")
    untagged, done = b.read_until("i1")
    assert done.startswith("OK")


def test_idle_not_woken_by_other_users_mail(imap_srv):
    with imap_srv.raw() as c:
        c.ok("SELECT INBOX")
        c.send("i1 IDLE\r\n")
        assert c.line().startswith("+ ")
        deliver(imap_srv, rcpt="bob@" + DOMAIN)
        c.silent_for(1.0)
        c.send("DONE\r\n")
        untagged, done = c.read_until("i1")
        assert untagged == [] and done.startswith("OK")


def test_commands_pipelined_after_done(pair, imap_srv):
    a, b = pair
    b.send("i1 IDLE\r\n")
    assert b.line().startswith("+ ")
    deliver(imap_srv)
    assert b.line(timeout=WAKE) == "* 4 EXISTS"
    # iOS sends its next commands in the same packet as DONE.
    b.send("DONE\r\np1 NOOP\r\np2 FETCH 4 (UID FLAGS)\r\np3 SEARCH ALL\r\n"
           "p4 IDLE\r\n")
    untagged, done = b.read_until("i1")
    assert done.startswith("OK")
    untagged, done = b.read_until("p1")
    assert done.startswith("OK")
    untagged, done = b.read_until("p2")
    assert done.startswith("OK")
    assert [parse_fetch(l)[0] for l in untagged if " FETCH " in l] == [4]
    untagged, done = b.read_until("p3")
    assert done.startswith("OK") and "* SEARCH 1 2 3 4" in untagged
    assert b.line().startswith("+ ")
    b.send("DONE\r\n")
    untagged, done = b.read_until("p4")
    assert done.startswith("OK")


def test_idle_done_and_bad_continuation(imap_srv):
    with imap_srv.raw() as c:
        c.ok("SELECT INBOX")
        c.send("i1 IDLE\r\n")
        assert c.line().startswith("+ ")
        c.send("NOT DONE\r\n")
        untagged, done = c.read_until("i1")
        assert done.startswith("BAD"), done
        c.ok("NOOP")


def test_idle_in_authenticated_state(imap_srv):
    with imap_srv.raw() as c:
        c.send("i1 IDLE\r\n")
        assert c.line().startswith("+ ")
        c.send("DONE\r\n")
        untagged, done = c.read_until("i1")
        assert done.startswith("OK"), done


@pytest.mark.parametrize("command", [
    "FETCH 1:* (UID FLAGS)", "STORE 1:* +FLAGS (\\Seen)",
    "SEARCH ALL", "FETCH 1 BODY.PEEK[]"])
def test_no_expunge_during_sequence_commands(pair, command):
    a, b = pair
    a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    a.ok("EXPUNGE")
    untagged, done = b.cmd(command)
    assert expunges(untagged) == [], (command, untagged)
    assert done.startswith(("OK", "NO")), done
    # NOOP may tell it now.
    untagged = b.ok("NOOP")
    assert expunges(untagged) == [1], untagged
    got = [parse_fetch(l) for l in b.ok("FETCH 1:* UID")]
    assert [(n, f["UID"]) for n, f in got] == [(1, 2), (2, 3)]


def test_expunged_message_still_numbered_until_told(pair):
    a, b = pair
    a.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    a.ok("EXPUNGE")
    # Before b hears of it, sequence number 3 is still UID 3.
    untagged, done = b.cmd("FETCH 3 (UID)")
    assert expunges(untagged) == []
    assert done.startswith("OK")
    assert fetches(untagged)[3] == {"UID": 3}


def test_imaplib_sees_exists_from_delivery(imap_srv):
    c = imap_srv.imap()
    c.select("INBOX")
    deliver(imap_srv)
    typ, data = c.noop()
    assert typ == "OK"
    assert c.response("EXISTS")[1][-1] == b"1"
    c.logout()
