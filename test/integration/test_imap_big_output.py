"""Commands whose untagged output is larger than a session's output
buffer: STORE on a big mailbox with many keywords.  The server streams
the responses as the client reads them (a step at a time), never aborts,
and a client that does not read is cut off without harming anyone else
or the change it asked for."""
import socket
import time

from conftest import IMAPRaw

MSG = b"From: a@b.test\r\nSubject: s\r\n\r\nbody\r\n"
# ~4 KB of keywords: each untagged FETCH of STORE carries them all.
KEYWORDS = " ".join("kw%03d_%s" % (i, "x" * 24) for i in range(130))


def fill(c, target):
    """Makes INBOX hold at least target messages (APPEND, then COPY)."""
    for _ in range(10):
        c.append("INBOX", MSG)
    c.ok("SELECT INBOX")
    n = 10
    while n < target:
        c.ok("COPY 1:* INBOX")
        n *= 2
        c.ok("NOOP")
    return n


def test_store_output_past_the_buffer_streams(imap_srv):
    with imap_srv.raw() as c:
        n = fill(c, 1200)
        untagged = c.ok("STORE 1:* +FLAGS (%s)" % KEYWORDS, timeout=120)
        fetches = [u for u in untagged if " FETCH (" in u]
        assert len(fetches) == n, (len(fetches), n)
        assert sum(len(u) for u in fetches) > 4 * 1024 * 1024
        c.ok("NOOP")
    with imap_srv.raw() as c:
        c.ok("SELECT INBOX")
        got = c.ok("FETCH %d FLAGS" % n)
        assert "kw129_" in got[0], got


def test_store_by_a_client_that_never_reads(imap_srv):
    """The client sends the big STORE and stops reading: the server must
    not abort, and other sessions are served meanwhile."""
    with imap_srv.raw() as c:
        fill(c, 1200)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.send("s1 STORE 1:* +FLAGS (%s)\r\n" % KEYWORDS)
        time.sleep(1)
        for _ in range(3):
            with imap_srv.raw() as o:
                o.ok("SELECT INBOX")
                assert "kw000_" in o.ok("FETCH 1 FLAGS")[0]
            time.sleep(0.2)
    time.sleep(0.5)
    assert imap_srv.running()
    with imap_srv.raw() as o:
        o.ok("NOOP")
