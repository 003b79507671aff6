"""IMAP4rev2 (RFC 9051) beside IMAP4rev1: CAPABILITY lists both, and a
session that sends ENABLE IMAP4rev2 follows rev2 where it differs from
RFC 3501 (RFC 9051 Appendix E): no RECENT response and no \\Recent flag
(and so no NEW, OLD or RECENT search key and no STATUS RECENT), SEARCH
answered with ESEARCH, mailbox names in UTF-8, SELECT with a LIST
response and without the UNSEEN code.  A session that does not enable
it keeps IMAP4rev1's answers.  STATUS DELETED (RFC 9051 6.3.11) and
DELETE's HASCHILDREN code (RFC 9051 7.1) serve both."""
import re

from test_imap_utf8 import utf8_cmd

MSG = b"From: a@b.test\r\nSubject: rev2\r\n\r\nbody\r\n"
UMLAUT = "Br\u00fcder"                      # Brüder
UMLAUT_MUTF7 = "Br&APw-der"


def enable(c):
    assert c.ok("ENABLE IMAP4rev2") == ["* ENABLED IMAP4rev2"]


def test_capability_lists_both_and_enable_once(imap_srv):
    with imap_srv.raw(login=False) as c:
        caps = c.ok("CAPABILITY")[0].split()
        assert "IMAP4rev1" in caps and "IMAP4rev2" in caps, caps
        assert "IMAP4rev2" in c.greeting, c.greeting
    with imap_srv.raw() as c:
        enable(c)
        assert c.ok("ENABLE IMAP4rev2") == ["* ENABLED"]


def test_select_has_no_recent_or_unseen_and_lists_the_mailbox(imap_srv):
    """RFC 9051 6.3.2: FLAGS, EXISTS, LIST and the OK codes; RECENT and
    [UNSEEN] belong to IMAP4rev1 only; a second SELECT says [CLOSED]."""
    with imap_srv.raw() as c:
        c.ok("CREATE Box/Child")
        c.append("INBOX", MSG)
        c.append("INBOX", MSG, flags="\\Seen")
        c.append("INBOX", MSG)
        enable(c)
        untagged = c.ok("SELECT INBOX")
        assert "* 3 EXISTS" in untagged, untagged
        assert not [l for l in untagged if "RECENT" in l], untagged
        assert not [l for l in untagged if "[UNSEEN" in l], untagged
        assert '* LIST (\\HasNoChildren) "/" INBOX' in untagged, untagged
        untagged = c.ok("SELECT Box")
        assert untagged[0].startswith("* OK [CLOSED]"), untagged
        assert '* LIST (\\HasChildren) "/" Box' in untagged, untagged


def test_rev1_session_keeps_recent_and_unseen(imap_srv):
    with imap_srv.raw() as c:
        c.append("INBOX", MSG)
        untagged = c.ok("SELECT INBOX")
        assert "* 1 RECENT" in untagged, untagged
        assert [l for l in untagged if "[UNSEEN 1]" in l], untagged
        assert not [l for l in untagged if l.startswith("* LIST")], untagged
        assert c.ok("FETCH 1 FLAGS") == ["* 1 FETCH (FLAGS (\\Recent))"]
        assert c.ok("SEARCH RECENT") == ["* SEARCH 1"]
        assert c.ok("SEARCH 1") == ["* SEARCH 1"]


def test_no_recent_in_fetch_or_updates(imap_srv):
    """\\Recent is a rev1 flag: never in FLAGS, and new mail says EXISTS
    without RECENT."""
    with imap_srv.raw() as c, imap_srv.raw() as other:
        c.append("INBOX", MSG)
        enable(c)
        c.ok("SELECT INBOX")
        assert c.ok("FETCH 1 FLAGS") == ["* 1 FETCH (FLAGS ())"]
        assert c.ok("STORE 1 +FLAGS (\\Flagged)") == [
            "* 1 FETCH (FLAGS (\\Flagged))"]
        other.append("INBOX", MSG)
        untagged = c.ok("NOOP")
        assert "* 2 EXISTS" in untagged, untagged
        assert not [l for l in untagged if "RECENT" in l], untagged
        assert c.ok("FETCH 2 FLAGS") == ["* 2 FETCH (FLAGS ())"]


def test_search_answers_esearch(imap_srv):
    """RFC 9051 6.4.4: SEARCH without RETURN is RETURN (ALL), answered
    with ESEARCH, tagged, with UID for UID SEARCH."""
    with imap_srv.raw() as c:
        for _ in range(3):
            c.append("INBOX", MSG)
        enable(c)
        c.ok("SELECT INBOX")
        t = c.tag()
        c.send("%s SEARCH ALL\r\n" % t)
        untagged, done = c.read_until(t)
        assert done.startswith("OK"), done
        assert untagged == ['* ESEARCH (TAG "%s") ALL 1:3' % t], untagged
        t = c.tag()
        c.send("%s UID SEARCH 2:3\r\n" % t)
        untagged, done = c.read_until(t)
        assert untagged == ['* ESEARCH (TAG "%s") UID ALL 2:3' % t], untagged
        t = c.tag()
        c.send("%s SEARCH DELETED\r\n" % t)
        untagged, done = c.read_until(t)
        assert untagged == ['* ESEARCH (TAG "%s")' % t], untagged
        t = c.tag()
        c.send("%s SEARCH RETURN (COUNT) ALL\r\n" % t)
        untagged, done = c.read_until(t)
        assert untagged == ['* ESEARCH (TAG "%s") COUNT 3' % t], untagged


def test_recent_keys_and_status_item_are_not_rev2(imap_srv):
    """NEW, OLD and RECENT are not search keys of RFC 9051, nor RECENT a
    STATUS item: BAD, while IMAP4rev1 sessions keep them."""
    with imap_srv.raw() as c:
        c.append("INBOX", MSG)
        enable(c)
        c.ok("SELECT INBOX")
        for key in ("NEW", "OLD", "RECENT", "NOT RECENT", "OR SEEN NEW"):
            untagged, done = c.cmd("SEARCH %s" % key)
            assert done.startswith("BAD"), (key, untagged, done)
        untagged, done = c.cmd("STATUS INBOX (MESSAGES RECENT)")
        assert done.startswith("BAD"), (untagged, done)
        untagged, done = c.cmd('LIST "" INBOX RETURN (STATUS (RECENT))')
        assert done.startswith("BAD"), (untagged, done)
    with imap_srv.raw() as c:
        c.ok("CREATE Other")
        c.append("Other", MSG)
        assert c.status("Other", "MESSAGES RECENT") == {"MESSAGES": 1,
                                                        "RECENT": 1}


def test_status_deleted(imap_srv):
    """STATUS DELETED (RFC 9051 6.3.11): the messages with \\Deleted,
    following STORE and EXPUNGE; asked for by either kind of session."""
    with imap_srv.raw() as c:
        c.append("INBOX", MSG, flags="\\Deleted")
        c.append("INBOX", MSG)
        c.append("INBOX", MSG, flags="\\Deleted \\Seen")
        assert c.status("INBOX", "DELETED") == {"DELETED": 2}
        c.ok("SELECT INBOX")
        c.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
        c.ok("STORE 1 -FLAGS.SILENT (\\Deleted)")
        assert c.status("INBOX", "DELETED MESSAGES") == {"DELETED": 2,
                                                         "MESSAGES": 3}
        c.ok("EXPUNGE")
        assert c.status("INBOX", "DELETED MESSAGES") == {"DELETED": 0,
                                                         "MESSAGES": 1}
        enable(c)
        assert c.status("INBOX", "DELETED SIZE") == {"DELETED": 0,
                                                     "SIZE": len(MSG)}
        lines = c.ok('LIST "" INBOX RETURN (STATUS (DELETED))')
        assert '* STATUS INBOX (DELETED 0)' in lines, lines


def test_names_in_utf8(imap_srv):
    """Mailbox names in UTF-8 both ways, never modified UTF-7 (RFC 9051
    5.1); a rev1 client sees the same mailbox in modified UTF-7."""
    with imap_srv.raw() as c, imap_srv.raw() as plain:
        enable(c)
        untagged, done = utf8_cmd(c, 'CREATE "%s"' % UMLAUT)
        assert done.startswith("OK"), done
        assert '* LIST (\\HasNoChildren) "/" %s' % UMLAUT_MUTF7 in \
            plain.ok('LIST "" "*"')
        untagged, done = utf8_cmd(c, 'LIST "" "Br*"')
        assert untagged == ['* LIST (\\HasNoChildren) "/" "%s"' % UMLAUT], \
            untagged
        untagged, done = utf8_cmd(c, 'SELECT "%s"' % UMLAUT)
        assert done.startswith("OK"), done
        assert '* LIST (\\HasNoChildren) "/" "%s"' % UMLAUT in untagged
        # "&" is a character, not the start of modified UTF-7
        untagged, done = utf8_cmd(c, 'CREATE "A&B"')
        assert done.startswith("OK"), done
        assert "A&-B" in [re.sub(r'^.* "/" "?|"$', "", l)
                          for l in plain.ok('LIST "" "A*"')]
        # bytes that are not UTF-8 name nothing
        before = plain.ok('LIST "" "*"')
        for raw in (b'"Br\xc3(der"', b'"\xed\xa0\x80"', b'"\xff"'):
            t = c.tag()
            c.send(b"%s CREATE %s\r\n" % (t.encode(), raw))
            _, done = c.read_until(t)
            assert not done.startswith("OK"), (raw, done)
        assert plain.ok('LIST "" "*"') == before


def test_delete_of_a_level_with_children_says_haschildren(imap_srv):
    """A name that is only a level above mailboxes (\\Noselect) cannot
    be deleted: NO [HASCHILDREN] (RFC 9051 6.3.4, 7.1)."""
    with imap_srv.raw() as c:
        c.ok("CREATE Top/Sub")
        c.ok("DELETE Top")
        assert '* LIST (\\Noselect \\HasChildren) "/" Top' in \
            c.ok('LIST "" "%"')
        untagged, done = c.cmd("DELETE Top")
        assert done.startswith("NO [HASCHILDREN]"), done
        untagged, done = c.cmd("DELETE Nothing")
        assert done.startswith("NO [NONEXISTENT]"), done
