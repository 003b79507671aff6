"""SELECT and EXAMINE: the responses RFC 3501 6.3.1 requires, read-only
and read-write, empty mailboxes, and \\Recent shown to one session only."""
import re

from conftest import DOMAIN

SYSTEM = {"\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"}
MSG = b"From: a@b.test\r\nSubject: s\r\n\r\nbody\r\n"


class Selected:
    """What a SELECT or EXAMINE said, one attribute per response."""

    def __init__(self, untagged, done):
        self.untagged, self.done = untagged, done
        self.exists = self.recent = self.flags = self.permanentflags = None
        self.uidvalidity = self.uidnext = self.highestmodseq = None
        self.unseen = None
        for l in untagged:
            if (m := re.match(r"^\* (\d+) (EXISTS|RECENT)$", l)):
                self._set(m.group(2).lower(), int(m.group(1)))
            elif (m := re.match(r"^\* FLAGS \(([^)]*)\)$", l)):
                self._set("flags", set(m.group(1).split()))
            elif (m := re.match(r"^\* OK \[PERMANENTFLAGS \(([^)]*)\)\]", l)):
                self._set("permanentflags", set(m.group(1).split()))
            elif (m := re.match(r"^\* OK \[(UIDVALIDITY|UIDNEXT|UNSEEN|"
                                r"HIGHESTMODSEQ) (\d+)\]", l)):
                self._set(m.group(1).lower(), int(m.group(2)))

    def _set(self, name, value):
        assert getattr(self, name) is None, "%s twice in %r" % (
            name, self.untagged)
        setattr(self, name, value)

    def assert_complete(self):
        for name in ("exists", "recent", "flags", "permanentflags",
                     "uidvalidity", "uidnext"):
            assert getattr(self, name) is not None, "no %s in %r" % (
                name, self.untagged)
        assert SYSTEM <= self.flags, self.flags


def select(c, command):
    return Selected(*c.cmd(command))


def deliver(srv, n=1, rcpt="alice@" + DOMAIN):
    for i in range(n):
        code, msg = srv.deliver("s@remote.test", [rcpt],
                                b"Subject: %d\r\n\r\nhi\r\n" % i)
        assert code == 250, (code, msg)


def test_select_empty_mailbox(imap_srv):
    with imap_srv.raw() as c:
        s = select(c, "SELECT INBOX")
        assert s.done.startswith("OK [READ-WRITE]"), s.done
        s.assert_complete()
        assert s.exists == 0 and s.recent == 0 and s.uidnext == 1
        assert s.unseen is None
        assert s.uidvalidity > 0
        assert SYSTEM | {"\\*"} <= s.permanentflags
        assert c.ok("SEARCH ALL") == ["* SEARCH"]


def test_select_counts(imap_srv):
    with imap_srv.raw() as c:
        c.append("INBOX", MSG, flags="\\Seen")
        c.append("INBOX", MSG)
        c.append("INBOX", MSG, flags="\\Seen $Work")
        s = select(c, "SELECT INBOX")
        s.assert_complete()
        assert s.done.startswith("OK [READ-WRITE]"), s.done
        assert (s.exists, s.recent, s.uidnext, s.unseen) == (3, 3, 4, 2)
        # A keyword in use is in FLAGS; PERMANENTFLAGS allows new ones.
        assert "$Work" in s.flags
        assert "\\*" in s.permanentflags
        assert "\\Recent" not in s.permanentflags


def test_select_uidvalidity_stable(imap_srv):
    with imap_srv.raw() as c:
        v1 = select(c, "SELECT INBOX").uidvalidity
    imap_srv.restart()
    with imap_srv.raw() as c:
        assert select(c, "SELECT INBOX").uidvalidity == v1
        assert c.status("INBOX", "UIDVALIDITY") == {"UIDVALIDITY": v1}


def test_uidnext_exact_after_delivery_and_expunge(imap_srv):
    deliver(imap_srv, 2)
    with imap_srv.raw() as c:
        s = select(c, "SELECT INBOX")
        assert (s.exists, s.uidnext) == (2, 3)
        c.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
        c.ok("EXPUNGE")
        s = select(c, "SELECT INBOX")
        assert (s.exists, s.uidnext) == (1, 3)


def test_examine_is_read_only(imap_srv):
    with imap_srv.raw() as c:
        c.append("INBOX", MSG)
        s = select(c, "EXAMINE INBOX")
        s.assert_complete()
        assert s.done.startswith("OK [READ-ONLY]"), s.done
        assert s.exists == 1
        # Dovecot: nothing may be stored in a read-only mailbox.
        assert s.permanentflags == set()
        for cmd in ("STORE 1 +FLAGS (\\Seen \\Deleted)", "EXPUNGE",
                    "UID EXPUNGE 1"):
            untagged, done = c.cmd(cmd)
            # Refused, or ignored as Dovecot does for STORE.
            assert done.startswith(("NO", "OK")), (cmd, done)
            assert not any("EXPUNGE" in l for l in untagged), untagged
        assert c.ok("FETCH 1 FLAGS") == ["* 1 FETCH (FLAGS (\\Recent))"]
        # A body fetch does not set \Seen in a read-only mailbox.
        c.ok("FETCH 1 BODY[]")
        assert c.ok("FETCH 1 FLAGS") == ["* 1 FETCH (FLAGS (\\Recent))"]
        # COPY out of a read-only mailbox is allowed.
        c.ok("COPY 1 Trash")
        # CLOSE in EXAMINE does not expunge.
        c.ok("CLOSE")
        s = select(c, "SELECT INBOX")
        assert s.exists == 1 and s.done.startswith("OK [READ-WRITE]")


def test_examine_keeps_recent(imap_srv):
    # RFC 3501 6.3.2: EXAMINE MUST NOT cause messages to lose \Recent.
    deliver(imap_srv, 2)
    with imap_srv.raw() as c:
        assert select(c, "EXAMINE INBOX").recent == 2
        assert select(c, "EXAMINE INBOX").recent == 2
    with imap_srv.raw() as c:
        assert select(c, "EXAMINE INBOX").recent == 2
        assert select(c, "SELECT INBOX").recent == 2
    with imap_srv.raw() as c:
        assert select(c, "SELECT INBOX").recent == 0


def test_recent_goes_to_one_session(imap_srv):
    with imap_srv.raw() as a, imap_srv.raw() as b:
        assert select(a, "SELECT INBOX").recent == 0
        deliver(imap_srv)
        untagged = a.ok("NOOP")
        assert "* 1 EXISTS" in untagged and "* 1 RECENT" in untagged
        assert a.ok("FETCH 1 FLAGS") == ["* 1 FETCH (FLAGS (\\Recent))"]
        s = select(b, "SELECT INBOX")
        assert (s.exists, s.recent) == (1, 0)
        assert b.ok("FETCH 1 FLAGS") == ["* 1 FETCH (FLAGS ())"]
        # RECENT search key follows the same rule.
        assert a.ok("SEARCH RECENT") == ["* SEARCH 1"]
        assert b.ok("SEARCH RECENT") == ["* SEARCH"]
        assert b.ok("SEARCH NEW") == ["* SEARCH"]
    with imap_srv.raw() as c:
        assert select(c, "SELECT INBOX").recent == 0


def test_recent_seen_by_first_of_two_selected(imap_srv):
    with imap_srv.raw() as a, imap_srv.raw() as b:
        select(a, "SELECT INBOX")
        select(b, "SELECT INBOX")
        deliver(imap_srv)
        ua = a.ok("NOOP")
        ub = b.ok("NOOP")
        assert "* 1 EXISTS" in ua and "* 1 EXISTS" in ub
        recent = [("* 1 RECENT" in ua), ("* 1 RECENT" in ub)]
        assert recent.count(True) == 1, (ua, ub)


def test_select_missing_mailbox_deselects(imap_srv):
    with imap_srv.raw() as c:
        c.append("INBOX", MSG)
        select(c, "SELECT INBOX")
        untagged, done = c.cmd("SELECT NoSuchBox")
        assert done.startswith("NO"), done
        # RFC 3501 6.3.1: a failed SELECT leaves no mailbox selected.
        untagged, done = c.cmd("FETCH 1 FLAGS")
        assert done.startswith("BAD"), done


def test_select_switches_mailbox(imap_srv):
    with imap_srv.raw() as c:
        c.append("INBOX", MSG)
        c.append("Sent", MSG)
        c.append("Sent", MSG)
        assert select(c, "SELECT INBOX").exists == 1
        s = select(c, "EXAMINE Sent")
        assert s.exists == 2 and s.done.startswith("OK [READ-ONLY]")
        s = select(c, "SELECT Sent")
        assert s.exists == 2 and s.done.startswith("OK [READ-WRITE]")
        assert c.ok("SEARCH ALL") == ["* SEARCH 1 2"]


def test_select_condstore(imap_srv):
    with imap_srv.raw() as c:
        c.append("INBOX", MSG)
        s = select(c, "SELECT INBOX (CONDSTORE)")
        assert s.done.startswith("OK [READ-WRITE]"), s.done
        assert s.highestmodseq is not None and s.highestmodseq >= 1
        untagged = c.ok("STORE 1 +FLAGS (\\Seen)")
        # CONDSTORE is on now: STORE's FETCH has MODSEQ (RFC 7162 3.2).
        m = re.match(r"^\* 1 FETCH \((?=.*FLAGS \(\\Seen \\Recent\))"
                     r"(?=.*MODSEQ \((\d+)\)).*\)$", untagged[0])
        assert m and int(m.group(1)) > s.highestmodseq, untagged


def test_select_after_enable_condstore(imap_srv):
    with imap_srv.raw() as c:
        c.ok("ENABLE CONDSTORE")
        s = select(c, "SELECT INBOX")
        assert s.highestmodseq is not None
        assert c.status("Sent", "HIGHESTMODSEQ")["HIGHESTMODSEQ"] >= 1


def test_imaplib_select(imap_srv):
    deliver(imap_srv, 3)
    c = imap_srv.imap()
    typ, data = c.select("INBOX")
    assert (typ, data) == ("OK", [b"3"])
    assert c.response("UIDNEXT") == ("UIDNEXT", [b"4"])
    typ, data = c.select("Trash", readonly=True)
    assert (typ, data) == ("OK", [b"0"])
    c.logout()
