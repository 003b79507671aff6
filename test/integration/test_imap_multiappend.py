"""MULTIAPPEND (RFC 3502): several messages in one APPEND, appended all
or none, with synchronizing and LITERAL+ literals, small (whole in the
command) and large (streamed), and what a refused message does to the
others."""
import re

import pytest

SMALL = [b"From: a@b.test\r\nSubject: m%d\r\n\r\nbody %d\r\n" % (i, i)
         for i in range(3)]


def big(i, size=300 * 1024):
    """A message past IMAP_MAX_LITERAL, so that it is streamed."""
    line = b"x" * 70 + b"\r\n"
    return (b"From: a@b.test\r\nSubject: big%d\r\n\r\n" % i
            + line * (size // len(line)))


def subjects(c, mailbox="INBOX"):
    """The Subject of every message of mailbox, in UID order."""
    c.ok("EXAMINE %s" % mailbox)
    out = []
    for l in c.ok("FETCH 1:* BODY.PEEK[HEADER.FIELDS (SUBJECT)]"):
        m = re.search(r"Subject: (\S+)", l)
        if m:
            out.append(m.group(1))
    return out


def count(c, mailbox="INBOX"):
    st = [l for l in c.ok("STATUS %s (MESSAGES)" % mailbox)
          if l.startswith("* STATUS")]
    return int(re.search(r"MESSAGES (\d+)", st[0]).group(1))


def multiappend_plus(c, mailbox, parts, tail=b"\r\n"):
    """One APPEND with LITERAL+ literals; parts are (args, message)."""
    t = c.tag()
    data = b"%s APPEND %s" % (t.encode(), mailbox.encode())
    for args, msg in parts:
        data += b" " + (args + b" " if args else b"")
        data += b"{%d+}\r\n" % len(msg) + msg
    c.send(data + tail)
    return c.read_until(t)


def assert_refused(c, tag, want):
    """The command of tag was refused with want, appending nothing, and
    the session goes on."""
    _, done = c.read_until(tag)
    assert done.startswith(want), done
    assert count(c) == 0
    c.ok("NOOP")


def test_capability_advertised(imap_srv):
    c = imap_srv.raw()
    caps = [l for l in c.ok("CAPABILITY") if l.startswith("* CAPABILITY")]
    assert " MULTIAPPEND" in caps[0], caps


@pytest.mark.parametrize("maker", [lambda i: SMALL[i], big],
                         ids=["whole", "streamed"])
def test_literal_plus_appends_all_in_order(imap_srv, maker):
    c = imap_srv.raw()
    msgs = [maker(i) for i in range(3)]
    _, done = multiappend_plus(c, "INBOX", [
        (b"(\\Seen)", msgs[0]),
        (b'"24-Mar-2007 23:00:00 +0200"', msgs[1]),
        (b"", msgs[2])])
    m = re.match(r"OK \[APPENDUID (\d+) (\S+)\]", done)
    assert m, done
    assert m.group(2) == "1:3", done
    want = [re.search(rb"Subject: (\S+)", x).group(1).decode() for x in msgs]
    assert subjects(c) == want
    flags = c.ok("FETCH 1:3 (FLAGS INTERNALDATE)")
    assert "\\Seen" in flags[0] and "\\Seen" not in flags[1], flags
    assert "24-Mar-2007 21:00:00 +0000" in flags[1], flags


def test_synchronizing_literals(imap_srv):
    """Each {N} waits for its own "+" (RFC 3502: the client sends the
    next message's literal only when asked)."""
    c = imap_srv.raw()
    t = c.tag()
    c.send("%s APPEND INBOX (\\Flagged) {%d}\r\n" % (t, len(SMALL[0])))
    assert c.line().startswith("+")
    c.send(SMALL[0] + b" {%d}\r\n" % len(SMALL[1]))
    assert c.line().startswith("+")
    c.send(SMALL[1] + b"\r\n")
    _, done = c.read_until(t)
    assert re.match(r"OK \[APPENDUID \d+ 1:2\]", done), done
    assert subjects(c) == ["m0", "m1"]


@pytest.mark.parametrize("maker", [lambda i: SMALL[i], big],
                         ids=["whole", "streamed"])
def test_bad_message_appends_none(imap_srv, maker):
    """A refused message (bad flags) in the middle: nothing of the
    command is appended, and the session goes on."""
    c = imap_srv.raw()
    _, done = multiappend_plus(c, "INBOX", [
        (b"", maker(0)), (b"(\\Recent)", maker(1)), (b"", maker(2))])
    assert done.startswith("BAD"), done
    assert count(c) == 0
    c.ok("NOOP")


def test_empty_message_appends_none(imap_srv):
    c = imap_srv.raw()
    _, done = multiappend_plus(c, "INBOX", [
        (b"", SMALL[0]), (b"", b""), (b"", SMALL[1])])
    assert done.startswith("NO"), done
    assert count(c) == 0
    c.ok("NOOP")


def test_refused_synchronizing_literal_ends_the_command(imap_srv):
    """A second {N} over the size limit is refused before "+": the
    command ends there with nothing appended."""
    c = imap_srv.raw()
    t = c.tag()
    c.send("%s APPEND INBOX {%d}\r\n" % (t, len(SMALL[0])))
    assert c.line().startswith("+")
    c.send(SMALL[0] + b" {999999999999}\r\n")
    assert_refused(c, t, "NO [TOOBIG]")


def test_missing_mailbox_trycreate(imap_srv):
    c = imap_srv.raw()
    _, done = multiappend_plus(c, "Nowhere", [(b"", SMALL[0]),
                                              (b"", SMALL[1])])
    assert done.startswith("NO [TRYCREATE]"), done
    c.ok("NOOP")


def test_garbage_between_messages(imap_srv):
    c = imap_srv.raw()
    t = c.tag()
    c.send(b"%s APPEND INBOX {%d+}\r\n" % (t.encode(), len(SMALL[0]))
           + SMALL[0] + b" junk\r\n")
    assert_refused(c, t, "BAD")


def test_too_many_messages(imap_srv):
    c = imap_srv.raw()
    _, done = multiappend_plus(c, "INBOX", [(b"", SMALL[0])] * 1000)
    assert done.startswith("NO [LIMIT]"), done
    assert count(c) == 0
    c.ok("NOOP")
