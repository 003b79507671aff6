"""The live event stream, GET /api/v1/events (Server-Sent Events):
events for LMTP deliveries, IMAP APPEND, STORE and EXPUNGE, and a
replica's applied batch, as they commit; a reader that does not read
holds bounded memory and resyncs; keep-alive comments; the stream
limit; a reconnect with Last-Event-ID; the stream ends at a drain."""
import http.client
import json
import re
import signal
import socket
import time

import pytest

from conftest import DOMAIN, HOST, LMTPClient, free_port
from test_replication import make_cluster, secret  # noqa: F401

TIMEOUT = 10
SSE_MAX_CLIENTS = 100       # config.h
SSE_KEEPALIVE = 15          # config.h, seconds
MESSAGES, ROUNDS = 100, 20  # the slow reader's flag changes


class SSE:
    """A raw event-stream client: the head, then the chunked body split
    into events, each a dict of its fields ("event", "id", "data")."""

    def __init__(self, port, headers=(), host=HOST, sock=None,
                 timeout=TIMEOUT, rcvbuf=None, read_head=True):
        if sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if rcvbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                                rcvbuf)
            sock.settimeout(timeout)
            sock.connect((host, port))
        self.s = sock
        self.raw = b""          # as received, chunked
        self.text = b""         # de-chunked, not yet split
        self.chunk_left = 0
        req = "GET /api/v1/events HTTP/1.1\r\nHost: %s:%d\r\n" % (host, port)
        req += "".join("%s: %s\r\n" % h for h in headers) + "\r\n"
        self.s.sendall(req.encode())
        self.status = None
        if read_head:
            self.head()

    def fill(self):
        data = self.s.recv(65536)
        if not data:
            raise EOFError("closed")
        self.raw += data

    def head(self):
        while b"\r\n\r\n" not in self.raw:
            self.fill()
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.strip().lower(): v.strip() for k, v in
                        (line.split(":", 1) for line in lines[1:])}
        if self.status != 200:
            n = int(self.headers.get("content-length", "0"))
            while len(self.raw) < n:
                self.fill()
            self.body = self.raw[:n]
        return self.status

    def _dechunk(self):
        """Moves whole chunks from raw to text; True at the last one."""
        while True:
            if self.chunk_left == 0:
                if b"\r\n" not in self.raw:
                    return False
                size, rest = self.raw.split(b"\r\n", 1)
                n = int(size, 16)
                if n == 0:
                    return True
                if len(rest) < n + 2:
                    return False
                self.text += rest[:n]
                self.raw = rest[n + 2:]

    def event(self, timeout=TIMEOUT, comments=False):
        """The next event (or comment block when comments), or None when
        the stream ended."""
        deadline = time.monotonic() + timeout
        while True:
            while b"\n\n" in self.text:
                block, self.text = self.text.split(b"\n\n", 1)
                fields = {}
                for line in block.decode().split("\n"):
                    k, _, v = line.partition(":")
                    fields[k] = v[1:] if v.startswith(" ") else v
                if "event" in fields or (comments and "" in fields):
                    if "data" in fields:
                        fields["json"] = json.loads(fields["data"])
                    return fields
            if self._dechunk():
                return None
            if b"\n\n" in self.text:
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no event in %.0f s; have %r" % (
                    timeout, self.text[-300:]))
            self.s.settimeout(left)
            try:
                self.fill()
            except EOFError:
                return None

    def until(self, kind, match=None, timeout=TIMEOUT):
        """Events up to the first of kind (whose JSON matches), which is
        returned."""
        deadline = time.monotonic() + timeout
        while True:
            e = self.event(timeout=max(0.1, deadline - time.monotonic()))
            assert e is not None, "the stream ended before %s" % kind
            if e.get("event") == kind and (match is None or match(e["json"])):
                return e

    def close(self):
        self.s.close()


@pytest.fixture
def web(server):
    """A server with IMAP and a loopback HTTP listener (.http_port)."""
    port = free_port()
    s = server(imap=True, args=["--http", "%s:%d" % (HOST, port)])
    s.http_port = port
    return s


def letter(tag, to="alice", subject=None):
    return ("From: Sender <s@remote.test>\r\nTo: <%s@%s>\r\n"
            "Subject: %s\r\nMessage-ID: <%s@test>\r\n\r\nbody of %s\r\n" % (
                to, DOMAIN, subject or tag, tag, tag)).encode()


def api(srv, path, headers=None):
    c = http.client.HTTPConnection(HOST, srv.http_port, timeout=TIMEOUT)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def test_lmtp_delivery_is_announced(web):
    s = SSE(web.http_port)
    assert s.status == 200
    assert s.headers["content-type"].startswith("text/event-stream")
    assert s.headers.get("transfer-encoding") == "chunked"
    code, _ = web.deliver("s@remote.test", ["alice@" + DOMAIN],
                          letter("arrival", subject="Hello world"))
    assert code == 250
    e = s.until("new")
    d = e["json"]
    assert d["Type"] == "new" and d["User"] == "alice"
    assert d["Mailbox"] == "INBOX"
    assert "Hello" in d["Subject"] and "s@remote.test" in d["From"]
    assert re.fullmatch(r"[0-9a-f]{32}-1", d["ID"]), d
    assert int(e["id"]) > 0
    # The ID names the message in the API.
    status, body = api(web, "/api/v1/message/" + d["ID"])
    assert status == 200 and json.loads(body)["ID"] == d["ID"]
    s.close()


def test_imap_append_store_expunge_are_announced(web):
    s = SSE(web.http_port)
    c = web.imap()
    c.select("INBOX")
    typ, _ = c.append("INBOX", None, None, letter("appended"))
    assert typ == "OK"
    new = s.until("new")["json"]
    assert new["Subject"] == "appended" and new["User"] == "alice"
    c.store("1", "+FLAGS", "(\\Seen)")
    f = s.until("flags")["json"]
    assert f["ID"] == new["ID"] and f["Read"] is True
    assert f["Deleted"] is False
    c.store("1", "+FLAGS", "(\\Deleted)")
    f = s.until("flags", lambda d: d["Deleted"])["json"]
    assert f["ID"] == new["ID"]
    c.expunge()
    x = s.until("expunge")["json"]
    assert x["ID"] == new["ID"] and x["User"] == "alice"
    c.create("Old")
    c.delete("Old")
    d = s.until("deleted")["json"]
    assert d["Mailbox"] == "Old" and d["User"] == "alice"
    c.logout()
    s.close()


def test_a_replicas_applied_batch_is_announced(server, secret):  # noqa: F811
    make = make_cluster(server, secret)
    port = free_port()
    master, (rep,) = make(1, replica_args=["--http", "%s:%d" % (HOST,
                                                               port)])
    rep.http_port = port
    s = SSE(port)
    assert s.status == 200
    code, _ = master.deliver("s@remote.test", ["bob@" + DOMAIN],
                             letter("replicated", to="bob"))
    assert code == 250
    d = s.until("new", lambda d: d["Subject"] == "replicated",
                timeout=30)["json"]
    assert d["User"] == "bob" and d["Mailbox"] == "INBOX"
    s.close()


def test_a_reader_that_does_not_read_holds_bounded_memory(web):
    """A stream whose client stops reading: its output stops at the
    high-water mark, its events wait in the ring, and once the ring has
    gone past it the client gets one "resync" when it reads again."""
    slow = SSE(web.http_port, rcvbuf=4096)
    assert slow.status == 200
    with LMTPClient(web.port) as c:
        c.lhlo()
        for i in range(MESSAGES):
            rr, dr = c.transaction("s@remote.test", ["alice@" + DOMAIN],
                                   letter("m%d" % i))
            assert dr[0].startswith("250"), dr
    c = web.imap()
    c.select("INBOX")
    # MESSAGES x 2 x ROUNDS flag changes, each an event of some 190
    # bytes: far past the ring (256 events), the output's high-water
    # mark (256 KiB) and the socket's send buffer (SSE_SNDBUF, doubled).
    for r in range(ROUNDS):
        c.store("1:*", "+FLAGS", "(\\Flagged)")
        c.store("1:*", "-FLAGS", "(\\Flagged)")
    c.logout()
    status, metrics = api(web, "/metrics")
    buffered = int(re.search(rb"mailrepd_session_buffer_bytes (\d+)",
                             metrics).group(1))
    assert buffered < 2 * 1024 * 1024, buffered
    # Reading now: the events it had room for, then a resync.
    slow.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    kinds = []
    while "resync" not in kinds:
        try:
            e = slow.event(timeout=30)
        except TimeoutError:
            print(len(kinds), kinds[:3], kinds[-3:], web.log_text()[-3000:])
            raise
        assert e is not None, "the stream ended"
        kinds.append(e["event"])
    assert len(kinds) < MESSAGES * 2 * ROUNDS, "nothing was skipped"
    # Live again after the resync.
    web.deliver("s@remote.test", ["alice@" + DOMAIN], letter("after"))
    assert slow.until("new", lambda d: d["Subject"] == "after")
    slow.close()
    assert web.running()


def test_users_stream_is_theirs_and_admins_is_everyones(web):
    admin = SSE(web.http_port)
    web.deliver("s@remote.test", ["bob@" + DOMAIN], letter("to-bob", "bob"))
    web.deliver("s@remote.test", ["alice@" + DOMAIN], letter("to-alice"))
    got = [admin.until("new")["json"]["User"] for _ in range(2)]
    assert got == ["bob", "alice"]
    admin.close()


def test_reconnect_with_last_event_id_goes_on(web):
    s = SSE(web.http_port)
    web.deliver("s@remote.test", ["alice@" + DOMAIN], letter("first"))
    first = s.until("new")
    s.close()
    # Another stream keeps the feed running meanwhile.
    keep = SSE(web.http_port)
    web.deliver("s@remote.test", ["alice@" + DOMAIN], letter("missed"))
    keep.until("new")
    again = SSE(web.http_port, headers=[("Last-Event-ID", first["id"])])
    e = again.until("new")
    assert e["json"]["Subject"] == "missed"
    # An ID the feed does not have: a resync first.
    stale = SSE(web.http_port, headers=[("Last-Event-ID", "99999999")])
    assert stale.event()["event"] == "resync"
    for c in (keep, again, stale):
        c.close()


def test_keepalive_comment_on_a_quiet_stream(web):
    s = SSE(web.http_port)
    e = s.event(timeout=SSE_KEEPALIVE + 15, comments=True)
    assert e is not None and "event" not in e
    s.close()


def test_stream_limit_is_503(web):
    streams = [SSE(web.http_port) for _ in range(SSE_MAX_CLIENTS)]
    assert all(s.status == 200 for s in streams)
    over = SSE(web.http_port)
    assert over.status == 503
    assert "too many event streams" in over.body.decode()
    streams.pop().close()
    deadline = time.monotonic() + TIMEOUT
    while True:         # the closed one's slot frees once it is reaped
        again = SSE(web.http_port)
        if again.status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert again.status == 200
    for s in streams + [over, again]:
        s.close()


def test_drain_ends_the_stream(web):
    s = SSE(web.http_port)
    web.proc.send_signal(signal.SIGQUIT)
    assert s.event(timeout=TIMEOUT) is None      # the last chunk, then EOF
    web.proc.wait(TIMEOUT)
    web.proc = None
