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


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_pipelining_clients_that_never_read(server, monkeypatch):
    """Clients that pipeline thousands of LISTs and read nothing: the
    server stops reading a session while its queued output is above the
    high-water mark, so memory stays bounded, and every reply still
    arrives once the client reads (none is cut off at the output
    limit)."""
    import os
    import threading
    # ASan keeps freed memory in quarantine, which RSS would count.
    monkeypatch.setenv("ASAN_OPTIONS", os.environ.get("ASAN_OPTIONS", "") +
                       ":quarantine_size_mb=0")
    imap_srv = server(imap=True)
    nclients, ncmds = 10, 350
    with imap_srv.raw() as c:
        for i in range(200):
            c.ok("CREATE folder-%03d-%s" % (i, "f" * 30))
    burst = b"".join(b'c%d LIST "" *\r\n' % i for i in range(ncmds))
    pid = imap_srv.proc.pid
    before = rss_kib(pid)
    socks = []
    for _ in range(nclients):
        c = imap_srv.raw()
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        socks.append(c.sock)
    senders = [threading.Thread(target=s.sendall, args=(burst,),
                                daemon=True) for s in socks]
    for t in senders:
        t.start()
    time.sleep(4)
    grown = rss_kib(pid) - before
    assert imap_srv.running()

    def drain(s, out):
        s.settimeout(120)
        n, tail = 0, b""
        last = b"c%d OK" % (ncmds - 1)
        while last not in tail:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            tail = tail[-200:] + chunk
            n += (tail[-len(chunk) - 20:]).count(b" OK LIST")
        out.append(last in tail)
    done = []
    readers = [threading.Thread(target=drain, args=(s, done))
               for s in socks]
    for t in readers:
        t.start()
    for t in readers + senders:
        t.join(180)
    for s in socks:
        s.close()
    assert done == [True] * nclients, done
    assert grown < 20 * 1024, "RSS grew by %d KiB" % grown
