"""UTF8=ACCEPT (RFC 6855): after ENABLE UTF8=ACCEPT a client names
mailboxes in UTF-8 and sees them in UTF-8 (never modified UTF-7, "&" is
itself), SEARCH takes no CHARSET, and APPEND takes a message in UTF8's
data item.  Names are stored as
before, in modified UTF-7, so that other clients see the same mailbox;
a name that is not UTF-8 is refused and makes nothing."""
import re

UMLAUT = "Br\u00fcder"                      # Brüder
UMLAUT_MUTF7 = "Br&APw-der"
JAPANESE = "\u65e5\u672c\u8a9e"            # 日本語
JAPANESE_MUTF7 = "&ZeVnLIqe-"
MSG = b"From: a@b.test\r\nSubject: utf8\r\n\r\nbody\r\n"


def enable(c):
    untagged = c.ok("ENABLE UTF8=ACCEPT")
    assert untagged == ["* ENABLED UTF8=ACCEPT"], untagged


def utf8_cmd(c, command):
    """A command with UTF-8 in it; lines back decoded as UTF-8."""
    t = c.tag()
    c.send(("%s %s\r\n" % (t, command)).encode("utf-8"))
    untagged, done = c.read_until(t)
    fix = lambda l: l.encode("latin-1").decode("utf-8")  # noqa: E731
    return [fix(l) for l in untagged], fix(done)


def utf8_ok(c, command):
    untagged, done = utf8_cmd(c, command)
    assert done.startswith("OK"), (command, untagged, done)
    return untagged


def names(untagged):
    out = []
    for line in untagged:
        m = re.match(r'^\* LIST \([^)]*\) "/" (.*)$', line)
        assert m, line
        n = m.group(1)
        out.append(n[1:-1] if n.startswith('"') else n)
    return sorted(out)


def test_capability_and_enable(imap_srv):
    with imap_srv.raw() as c:
        assert "UTF8=ACCEPT" in c.ok("CAPABILITY")[0].split()
        enable(c)
        assert c.ok("ENABLE UTF8=ACCEPT") == ["* ENABLED"]


def test_names_both_ways(imap_srv):
    """Made in UTF-8, stored in modified UTF-7 (a plain client sees
    that), listed back in UTF-8; SELECT, STATUS, RENAME, COPY, APPEND
    and DELETE take UTF-8 names."""
    with imap_srv.raw() as u, imap_srv.raw() as plain:
        enable(u)
        utf8_ok(u, 'CREATE "%s"' % UMLAUT)
        assert UMLAUT_MUTF7 in names(plain.ok('LIST "" "*"'))
        listed = names(utf8_ok(u, 'LIST "" "*"'))
        assert UMLAUT in listed, listed
        assert not any("&" in n for n in listed), listed
        u.send(('a1 APPEND "%s" {%d+}\r\n' % (UMLAUT, len(MSG))).encode()
               + MSG + b"\r\n")
        _, done = u.read_until("a1")
        assert done.startswith("OK [APPENDUID"), done
        got = utf8_ok(u, 'STATUS "%s" (MESSAGES)' % UMLAUT)
        assert got == ['* STATUS "%s" (MESSAGES 1)' % UMLAUT], got
        utf8_ok(u, 'SELECT "%s"' % UMLAUT)
        utf8_ok(u, 'COPY 1 "%s"' % UMLAUT)
        target = "%s/%s" % (UMLAUT, JAPANESE)
        utf8_ok(u, 'CREATE "%s"' % target)
        utf8_ok(u, 'MOVE 1:* "%s"' % target)
        assert plain.status('"%s/%s"' % (UMLAUT_MUTF7, JAPANESE_MUTF7)) \
            == {"MESSAGES": 2}
        utf8_ok(u, "UNSELECT")
        utf8_ok(u, 'RENAME "%s" "%s"' % (target, JAPANESE))
        assert JAPANESE_MUTF7 in names(plain.ok('LIST "" "*"'))
        assert names(utf8_ok(u, 'LIST "" "*%s"' % JAPANESE[1:])) == \
            [JAPANESE]
        assert names(utf8_ok(u, 'LIST "" "B%%"')) == [UMLAUT]
        utf8_ok(u, 'DELETE "%s"' % JAPANESE)
        assert JAPANESE_MUTF7 not in names(plain.ok('LIST "" "*"'))


def test_ampersand_is_itself(imap_srv):
    """After the ENABLE "&" starts no modified UTF-7: "R&D" is stored
    as R&-D, and "&APw-" is a name of five characters."""
    with imap_srv.raw() as u, imap_srv.raw() as plain:
        enable(u)
        utf8_ok(u, 'CREATE "R&D"')
        utf8_ok(u, 'CREATE "&APw-"')
        listed = names(plain.ok('LIST "" "*"'))
        assert "R&-D" in listed and "&-APw-" in listed, listed
        listed = names(utf8_ok(u, 'LIST "" "*"'))
        assert "R&D" in listed and "&APw-" in listed, listed
        assert "\u00fc" not in listed


def test_plain_client_sees_modified_utf7(imap_srv):
    """Without the ENABLE, names stay modified UTF-7 both ways."""
    with imap_srv.raw() as c:
        c.ok('CREATE "%s"' % UMLAUT_MUTF7)
        assert UMLAUT_MUTF7 in names(c.ok('LIST "" "*"'))
        _, done = utf8_cmd(c, 'CREATE "%s"' % UMLAUT)
        assert not done.startswith("OK"), done


def test_bad_utf8_names_refused(imap_srv):
    with imap_srv.raw() as u:
        enable(u)
        before = names(u.ok('LIST "" "*"'))
        for raw in (b'"Br\xc3(der"', b'"\xed\xa0\x80"', b'"\xff"',
                    b'"a\xc3"'):
            t = u.tag()
            u.send(b"%s CREATE %s\r\n" % (t.encode(), raw))
            _, done = u.read_until(t)
            assert not done.startswith("OK"), (raw, done)
            t = u.tag()
            u.send(b"%s SELECT %s\r\n" % (t.encode(), raw))
            _, done = u.read_until(t)
            assert not done.startswith("OK"), (raw, done)
        # a name whose modified UTF-7 is past the limit
        _, done = utf8_cmd(u, 'CREATE "%s"' % ("\u00fc" * 200))
        assert not done.startswith("OK"), done
        assert names(u.ok('LIST "" "*"')) == before


def test_search_charset_refused_after_enable(imap_srv):
    with imap_srv.raw() as u:
        u.append("INBOX", MSG)
        u.ok("SELECT INBOX")
        assert u.ok("SEARCH CHARSET UTF-8 SUBJECT utf8") == ["* SEARCH 1"]
        enable(u)
        for refused in ("SEARCH CHARSET UTF-8 SUBJECT utf8",
                        "UID SEARCH RETURN (COUNT) CHARSET US-ASCII ALL"):
            _, done = u.cmd(refused)
            assert done.startswith("BAD"), (refused, done)
        assert u.ok("SEARCH SUBJECT utf8") == ["* SEARCH 1"]


def test_append_utf8_data_item(imap_srv):
    """APPEND mailbox UTF8 (~{n}...): taken after the ENABLE, BAD
    before it; a bad form is BAD and stores nothing."""
    body = ("From: a@b.test\r\nSubject: \u00fcber\r\n\r\nj\u00e4\r\n"
            ).encode("utf-8")
    with imap_srv.raw() as u:
        _, done = u.cmd("APPEND INBOX UTF8 (~{%d+}\r\n" % len(body) +
                        body.decode("latin-1") + ")")
        assert done.startswith("BAD"), done
        enable(u)
        for bad in ("UTF8 ()", "UTF8 (~{1+}\r\nx ~{1+}\r\ny)", "UTF8",
                    'UTF8 ("quoted")'):
            _, done = u.cmd("APPEND INBOX " + bad)
            assert done.startswith("BAD"), (bad, done)
        assert u.status("INBOX") == {"MESSAGES": 0}
        _, done = u.cmd("APPEND INBOX (\\Seen) UTF8 (~{%d+}\r\n" %
                        len(body) + body.decode("latin-1") + ")")
        assert done.startswith("OK [APPENDUID"), done
        u.ok("SELECT INBOX")
        got = u.ok("FETCH 1 (FLAGS BODY.PEEK[])")[0]
        assert "\\Seen" in got and body.decode("latin-1") in got, got


def test_append_utf8_streamed(imap_srv):
    """A message past 64 KiB in UTF8's item is streamed like any
    APPEND, synchronizing or not, in a MULTIAPPEND too; a missing ")"
    after it is BAD and stores nothing."""
    big = (b"From: a@b.test\r\nSubject: gro\xc3\x9f\r\n\r\n" +
           b"\xc3\xa4" * 40000 + b"\r\n")
    small = b"From: a@b.test\r\n\r\nklein\r\n"
    with imap_srv.raw() as u:
        enable(u)
        u.send(b"a1 APPEND INBOX UTF8 (~{%d}\r\n" % len(big))
        assert u.line().startswith("+ ")
        u.send(big + b")\r\n")
        _, done = u.read_until("a1")
        assert done.startswith("OK [APPENDUID"), done
        u.send(b"a2 APPEND INBOX UTF8 (~{%d+}\r\n" % len(small) + small +
               b") (\\Seen) UTF8 (~{%d+}\r\n" % len(big) + big + b")\r\n")
        _, done = u.read_until("a2")
        assert done.startswith("OK [APPENDUID"), done
        u.send(b"a3 APPEND INBOX UTF8 (~{%d+}\r\n" % len(big) + big +
               b"\r\n")
        _, done = u.read_until("a3")
        assert done.startswith("BAD"), done
        u.ok("NOOP")
        assert u.status("INBOX") == {"MESSAGES": 3}
        u.ok("SELECT INBOX")
        sizes = u.ok("FETCH 1:* RFC822.SIZE")
        assert [int(l.split()[-1][:-1]) for l in sizes] == \
            [len(big), len(small), len(big)], sizes
