"""Bad and oversized input over IMAP: long lines, huge literals, deep
nesting, many ranges, garbage, stalled clients.  Each breach gets BAD,
NO or BYE, never a crash or a hang, and other clients are served
meanwhile.  Sanitizer reports fail the test when the server stops."""
import socket

from conftest import IMAPError

MSG = b"From: a@b.test\r\nSubject: s\r\n\r\nbody\r\n"


def refused(line, tag):
    """Whether a reply line is the tagged BAD/NO of tag, or a BYE."""
    return line.startswith(("%s BAD" % tag, "%s NO" % tag, "* BYE",
                            "* BAD"))


def still_serving(srv):
    """A fresh session works end to end."""
    with srv.raw() as c:
        c.ok("SELECT INBOX")
        c.ok("NOOP")
        c.ok("LOGOUT")


def test_8k_command_line_accepted(imap_srv):
    with imap_srv.raw() as c:
        for i in range(3):
            c.append("INBOX", MSG)
        c.ok("SELECT INBOX")
        seq = ",".join(["1", "2", "3"] * 1400)
        line = "UID FETCH %s (UID)" % seq
        assert len(line) > 8192
        untagged = c.ok(line)
        assert len(untagged) == 3, untagged
        key = "SUBJECT " + "x" * 8200
        assert c.ok("SEARCH " + key) == ["* SEARCH"]


def test_over_long_line_refused(imap_srv):
    with imap_srv.raw() as c:
        c.send("a1 SEARCH SUBJECT " + "x" * (1 << 20) + "\r\n")
        line = c.line(timeout=10)
        assert refused(line, "a1"), line
        if line.startswith("* BYE"):
            c.wait_closed()
    still_serving(imap_srv)


def test_line_that_never_ends(imap_srv):
    with imap_srv.raw() as c:
        try:
            c.send("a1 LOGIN " + "y" * (256 << 10))
        except OSError:
            pass  # the server hung up while we were still sending
        line = c.line(timeout=10)
        assert refused(line, "a1"), line
    still_serving(imap_srv)


def test_huge_append_literal_refused_without_continuation(imap_srv):
    with imap_srv.raw() as c:
        c.send("a1 APPEND INBOX {%d}\r\n" % (60 << 20))
        line = c.line()
        assert not line.startswith("+"), line
        assert line.startswith(("a1 NO", "a1 BAD", "* BYE")), line
        if line.startswith("a1 NO"):
            assert "[TOOBIG]" in line or "[LIMIT]" in line, line
            c.ok("NOOP")
        assert c.status("INBOX") == {"MESSAGES": 0}


def test_huge_literal_outside_append_refused(imap_srv):
    with imap_srv.raw(login=False) as c:
        c.send("a1 LOGIN {%d}\r\n" % (10 << 20))
        line = c.line()
        assert not line.startswith("+"), line
        assert refused(line, "a1"), line
    still_serving(imap_srv)


def test_huge_nonsync_literal_refused(imap_srv):
    # The server may read and drop the literal or hang up (RFC 7888 4):
    # either way the APPEND is refused and nothing is stored.
    size = 60 << 20
    with imap_srv.raw() as c:
        try:
            c.send("a1 APPEND INBOX {%d+}\r\n" % size)
            chunk = b"x" * (1 << 20)
            for i in range(size // len(chunk)):
                c.send(chunk)
            c.send(b"\r\n")
        except OSError:
            pass  # it hung up
        line = c.line(timeout=30)
        assert refused(line, "a1"), line
    with imap_srv.raw() as c:
        assert c.status("INBOX") == {"MESSAGES": 0}


def test_deep_nesting_bad(imap_srv):
    with imap_srv.raw() as c:
        c.append("INBOX", MSG)
        c.ok("SELECT INBOX")
        for cmd in ("SEARCH " + "(" * 1000 + "ALL" + ")" * 1000,
                    "SEARCH " + "NOT " * 1000 + "ALL",
                    "FETCH 1 " + "(" * 1000 + "UID" + ")" * 1000):
            untagged, done = c.cmd(cmd)
            assert done.startswith(("BAD", "NO")), (cmd[:40], done)
            assert not any(l.startswith("* SEARCH") for l in untagged)
        c.ok("NOOP")
        # Ordinary nesting is fine.
        assert c.ok("SEARCH ((((ALL))))") == ["* SEARCH 1"]


def test_many_sequence_ranges(imap_srv):
    with imap_srv.raw() as c:
        for i in range(5):
            c.append("INBOX", MSG)
        c.ok("SELECT INBOX")
        seq = ",".join("%d" % i for i in range(1, 20000, 2))
        assert len(seq) < 60000  # many ranges, not a long line
        untagged, done = c.cmd("UID FETCH %s (UID)" % seq)
        assert done.startswith(("OK", "BAD", "NO")), done
        if done.startswith("OK"):
            assert len(untagged) == 3  # UIDs 1, 3 and 5
        untagged, done = c.cmd("SEARCH UID %s" % seq)
        assert done.startswith(("OK", "BAD", "NO")), done
        c.ok("NOOP")


def test_many_search_keys(imap_srv):
    with imap_srv.raw() as c:
        c.append("INBOX", MSG)
        c.ok("SELECT INBOX")
        untagged, done = c.cmd("SEARCH " + "OR SEEN " * 5000 + "ALL")
        assert done.startswith(("OK", "BAD", "NO")), done
        c.ok("NOOP")
    still_serving(imap_srv)


GARBAGE = [
    b"\r\n", b" \r\n", b"*\r\n", b"+\r\n", b"a\r\n", b"a \r\n",
    b"a1 NOOP extra args\r\n", b"a1 LOGIN\r\n", b"a1 SELECT\r\n",
    b"a1 \x00\x01\x02\r\n", b"\xff\xfe\xfd\r\n", b"a1 FETCH 1 (\r\n",
    b"a1 FETCH 1 BODY[\r\n", b"a1 FETCH 1 BODY[1.2.3.4.5.6.7.8.9.]\r\n",
    b"a1 FETCH 1 BODY[]<4294967296.4294967296>\r\n",
    b"a1 FETCH 99999999999999999999 UID\r\n",
    b"a1 FETCH 1:4294967295 UID\r\n", b"a1 FETCH 4294967296 UID\r\n",
    b"a1 SEARCH LARGER 99999999999999999999999\r\n",
    b'a1 SEARCH SUBJECT "unterminated\r\n', b'a1 SEARCH SUBJECT "\\q"\r\n',
    b"a1 SEARCH SUBJECT {3}x\r\n", b"a1 SEARCH SUBJECT {-1}\r\n",
    b"a1 SEARCH SUBJECT {99999999999999999999}\r\n",
    b"a1 STORE 1 +FLAGS (((\r\n", b"a1 STORE 1 +FLAGS \\\r\n",
    b"a1 UID\r\n", b"a1 UID FROB 1\r\n", b"a1 SELECT INBOX\rb1 NOOP\r\n",
    b"a1 NOOP\n", b"a1 CREATE \"\"\r\n", b"a1 CREATE /\r\n",
    b"a1 CREATE a//b\r\n", b"a1 RENAME INBOX INBOX\r\n",
    b"a1 APPEND INBOX () \"\" {0+}\r\n\r\n",
    b"a1 STATUS INBOX (MESSAGES\r\n", b"a1 ENABLE \x7f\r\n",
    b"a1 ID (\"a\")\r\n", b"a1 ID (\"a\" \"b\" \"c\")\r\n",
]


def test_garbage(imap_srv, rng):
    with imap_srv.raw() as other:
        other.ok("SELECT INBOX")
        inputs = list(GARBAGE) + [
            bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
            + b"\r\n" for _ in range(40)]
        c = imap_srv.raw()
        c.append("INBOX", MSG)
        c.ok("SELECT INBOX")
        for data in inputs:
            c.send(data)
            # Then a NOOP; the session must answer it, or have hung up.
            try:
                untagged, done = c.cmd("NOOP")
            except IMAPError as e:
                assert "closed" in str(e), (data, e)
                c.close()
                c = imap_srv.raw()
                c.ok("SELECT INBOX")
                continue
            except AssertionError:
                raise
            assert done.startswith(("OK", "BAD")), (data, done)
            other.ok("NOOP")
        c.close()
    still_serving(imap_srv)


def test_stalled_clients_do_not_block_others(imap_srv):
    big = b"Subject: big\r\n\r\n" + b"z" * (2 << 20) + b"\r\n"
    with imap_srv.raw() as loader:
        for i in range(3):
            loader.append("INBOX", big)
    half_line = imap_srv.raw()
    half_line.send("a1 SELECT IN")
    half_literal = imap_srv.raw()
    half_literal.send("a1 APPEND INBOX {1000+}\r\nonly part")
    # One that asks for 6 MiB and never reads it.
    reader = imap_srv.raw()
    reader.ok("SELECT INBOX")
    reader.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader.send("a1 FETCH 1:* BODY.PEEK[]\r\n")
    # Not logged in, silent.
    silent = imap_srv.raw(login=False)
    try:
        for i in range(3):
            still_serving(imap_srv)
        with imap_srv.raw() as c:
            c.ok("SELECT INBOX")
            assert c.ok("SEARCH ALL") == ["* SEARCH 1 2 3"]
        imap_srv.deliver("s@remote.test", ["bob@example.com"], MSG)
    finally:
        for s in (half_line, half_literal, reader, silent):
            s.close()
    still_serving(imap_srv)
