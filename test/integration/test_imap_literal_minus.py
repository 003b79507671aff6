"""LITERAL- (RFC 7888 4), with --imap-literal-minus: offered instead of
LITERAL+; a non-synchronizing literal of at most 4096 bytes is taken, a
larger one gets a tagged BAD [TOOBIG] wherever it is (APPEND's message,
MULTIAPPEND's second, a literal8, an argument), and its bytes, which the
client sends anyway, are dropped as they come: never run as commands,
never buffered whole.  A synchronizing literal of any size still works.
Without the setting, LITERAL+ as before."""
import re

LIMIT = 4096


def message(size, marker="lm"):
    head = b"From: a@b.test\r\nSubject: %s\r\n\r\n" % marker.encode()
    body = (b"t99 LOGOUT\r\n" * (size // 12 + 1))
    return head + body[:size - len(head)]


def caps_of(c):
    untagged = c.ok("CAPABILITY")
    return untagged[0].split()[2:]


def messages_in(c, mailbox="INBOX"):
    return c.status(mailbox)["MESSAGES"]


def test_capability_replaces_literal_plus(server):
    srv = server(imap=True, args=["--imap-literal-minus", "yes"])
    with srv.raw(login=False) as c:
        assert "LITERAL-" in c.greeting and "LITERAL+" not in c.greeting
        c.login("alice")
        caps = caps_of(c)
        assert "LITERAL-" in caps and "LITERAL+" not in caps, caps
    plain = server(imap=True)
    with plain.raw() as c:
        caps = caps_of(c)
        assert "LITERAL+" in caps and "LITERAL-" not in caps, caps


def test_oversized_append_refused_and_skipped(server):
    """The whole oversized literal arrives with its command: it is
    refused, its bytes (lines that look like commands) are not run,
    and the session goes on."""
    srv = server(imap=True, args=["--imap-literal-minus", "yes"])
    with srv.raw() as c:
        msg = message(LIMIT + 1)
        c.send(b"a1 APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
        untagged, done = c.read_until("a1")
        assert done.startswith("BAD [TOOBIG]"), done
        assert untagged == [], untagged
        c.ok("NOOP")
        assert messages_in(c) == 0
        assert "t99" not in c.buf.decode("latin-1")


def test_at_the_limit_taken(server):
    srv = server(imap=True, args=["--imap-literal-minus", "yes"])
    with srv.raw() as c:
        done = c.append("INBOX", message(LIMIT))
        assert re.match(r"OK \[APPENDUID \d+ 1\]", done), done
        assert messages_in(c) == 1
        c.ok("SELECT INBOX")
        untagged = c.ok("SEARCH TEXT {%d+}\r\n%s" % (LIMIT, "q" * LIMIT))
        assert untagged == ["* SEARCH"], untagged


def test_synchronizing_literal_of_any_size(server):
    srv = server(imap=True, args=["--imap-literal-minus", "yes"])
    with srv.raw() as c:
        msg = message(5 * LIMIT)
        c.send(b"a1 APPEND INBOX {%d}\r\n" % len(msg))
        assert c.line().startswith("+ "), "no continuation"
        c.send(msg + b"\r\n")
        _, done = c.read_until("a1")
        assert done.startswith("OK [APPENDUID"), done
        assert messages_in(c) == 1


def test_oversized_argument_refused(server):
    """Outside APPEND: a search string literal past the limit, sent
    piecewise after the BAD came."""
    srv = server(imap=True, args=["--imap-literal-minus", "yes"])
    with srv.raw() as c:
        c.append("INBOX", message(100))
        c.ok("SELECT INBOX")
        c.send(b"a1 SEARCH TEXT {%d+}\r\n" % (LIMIT + 10))
        _, done = c.read_until("a1")
        assert done.startswith("BAD [TOOBIG]"), done
        c.send(b"a2 NOOP\r\n" * ((LIMIT + 10) // 9) + b"x" *
               ((LIMIT + 10) % 9) + b"\r\n")
        c.ok("NOOP")
        assert "a2" not in c.buf.decode("latin-1")


def test_oversized_second_message_of_multiappend(server):
    """MULTIAPPEND is all or none: a second message past the limit
    fails the command, and the first is not kept."""
    srv = server(imap=True, args=["--imap-literal-minus", "yes"])
    with srv.raw() as c:
        small, big = message(50, "one"), message(LIMIT + 1, "two")
        c.send(b"a1 APPEND INBOX {%d+}\r\n" % len(small) + small +
               b" {%d+}\r\n" % len(big) + big + b"\r\n")
        untagged, done = c.read_until("a1")
        assert done.startswith("BAD [TOOBIG]"), done
        c.ok("NOOP")
        assert messages_in(c) == 0


def test_oversized_literal8_refused(server):
    srv = server(imap=True, args=["--imap-literal-minus", "yes"])
    with srv.raw() as c:
        msg = message(LIMIT + 1)
        c.send(b"a1 APPEND INBOX ~{%d+}\r\n" % len(msg) + msg + b"\r\n")
        _, done = c.read_until("a1")
        assert done.startswith("BAD [TOOBIG]"), done
        c.ok("NOOP")
        assert messages_in(c) == 0


def test_huge_announced_literal_not_buffered(server):
    """A client announcing far more than any message: BAD at once,
    before a byte of it, and what it sends is dropped as it comes (the
    server's input buffer would not hold it); other sessions go on."""
    srv = server(imap=True, args=["--imap-literal-minus", "yes"])
    with srv.raw() as c, srv.raw() as other:
        c.send(b"a1 APPEND INBOX {999999999999+}\r\n")
        _, done = c.read_until("a1")
        assert done.startswith("BAD [TOOBIG]"), done
        chunk = b"a9 LOGOUT\r\n" * 10000
        for _ in range(40):         # 4.4 MB, more than a buffer holds
            c.send(chunk)
        other.ok("NOOP")
        c.silent_for(0.5)
