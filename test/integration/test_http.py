"""The HTTP listener (--http): health, metrics, and what a hostile client
does to the HTTP/1.1 parser (huge or too many headers, slowloris,
pipelining, smuggling-shaped requests, bad methods), against the real
binary with curl, http.client and raw sockets."""
import http.client
import json
import random
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import HOST, MAILREPD, free_port, run

SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
REQUEST_TIMEOUT = 10        # config.h HTTP_REQUEST_TIMEOUT
MAX_KEEPALIVE = 1000        # config.h HTTP_MAX_KEEPALIVE


@pytest.fixture
def web(server):
    """A running server with an HTTP listener; .http_port is its port."""
    port = free_port()
    s = server(args=["--http", "%s:%d" % (HOST, port)])
    s.http_port = port
    return s


def conn(srv, timeout=10):
    return http.client.HTTPConnection(HOST, srv.http_port, timeout=timeout)


def get(srv, path, method="GET", headers=None, body=None):
    """One request on a new connection: (status, headers, body)."""
    c = conn(srv)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


class Raw:
    """A raw socket that reads HTTP/1.1 responses one by one."""

    def __init__(self, port, timeout=10):
        self.s = socket.create_connection((HOST, port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def _fill(self):
        data = self.s.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def response(self):
        """(status, headers, body) of the next response; the body by
        Content-Length or chunked framing."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            n = int(headers["content-length"])
            while len(self.buf) < n:
                self._fill()
            body, self.buf = self.buf[:n], self.buf[n:]
        elif headers.get("transfer-encoding") == "chunked":
            body = self._chunked()
        else:
            body = b""
        return status, headers, body

    def _chunked(self):
        body = b""
        while True:
            while b"\r\n" not in self.buf:
                self._fill()
            size, self.buf = self.buf.split(b"\r\n", 1)
            n = int(size, 16)
            while len(self.buf) < n + 2:
                self._fill()
            body += self.buf[:n]
            self.buf = self.buf[n + 2:]
            if n == 0:
                return body

    def closed(self, timeout=5):
        """Whether the server closes the connection (EOF) in time."""
        self.s.settimeout(timeout)
        try:
            while True:
                data = self.s.recv(65536)
                if not data:
                    return True
                self.buf += data
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.s.close()


def raw_once(srv, data):
    """Sends data on a new connection; the first response and whether
    the server then closed."""
    r = Raw(srv.http_port)
    try:
        r.send(data)
        status, headers, body = r.response()
        return status, headers, body, r.closed()
    finally:
        r.close()


def assert_alive(srv):
    status, _, body = get(srv, "/healthz")
    assert status == 200, body


def metrics(srv):
    status, headers, body = get(srv, "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    values = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def test_healthz_and_security_headers(web):
    status, headers, body = get(web, "/healthz")
    assert status == 200
    assert json.loads(body) == {"status": "ok", "role": "master",
                                "draining": False}
    for name, value in SECURITY_HEADERS.items():
        assert value in headers[name], (name, headers)
    status, headers, _ = get(web, "/nowhere")
    assert status == 404
    for name, value in SECURITY_HEADERS.items():
        assert value in headers[name], (name, headers)


def test_head_has_no_body(web):
    r = Raw(web.http_port)
    r.send(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
           b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    s = r.s
    s.settimeout(5)
    data = b""
    while data.count(b"HTTP/1.1 200") < 2 or not data.endswith(b"}\n"):
        chunk = s.recv(65536)
        assert chunk
        data += chunk
    first, second = data.split(b"HTTP/1.1 200")[1:]
    assert first.endswith(b"\r\n\r\n")      # HEAD: the head only
    assert second.endswith(b"\"draining\":false}\n")
    r.close()


def test_metrics_count_deliveries_and_sessions(web):
    before = metrics(web)
    assert before['mailrepd_deliveries_total{outcome="ok"}'] == 0
    assert before['mailrepd_sessions{protocol="http"}'] >= 1
    assert before['mailrepd_store_bytes{file="db"}'] > 0
    for rcpt in ("alice@example.com", "bob@example.com"):
        web.deliver("s@remote.test", [rcpt], b"Subject: m\r\n\r\nhi\r\n")
    after = metrics(web)
    assert after['mailrepd_deliveries_total{outcome="ok"}'] == 2
    assert after["mailrepd_replog_head"] > before["mailrepd_replog_head"]
    assert after["mailrepd_draining"] == 0


def test_metrics_commits_conflicts_guard_and_disk(web):
    """The group commits' latency as a Prometheus histogram, unresolved
    conflicts, the mass-delete guard's paused users, and the disk's free
    bytes."""
    web.deliver("s@remote.test", ["alice@example.com"],
                b"Subject: m\r\n\r\nhi\r\n")
    m = metrics(web)
    buckets = sorted((float(k.split('le="')[1].rstrip('"}')), v)
                     for k, v in m.items()
                     if k.startswith("mailrepd_commit_seconds_bucket{"))
    assert len(buckets) > 5 and buckets[-1][0] == float("inf")
    counts = [v for _, v in buckets]
    assert counts == sorted(counts)
    assert counts[-1] == m["mailrepd_commit_seconds_count"] >= 1
    assert m["mailrepd_commit_seconds_sum"] > 0
    assert m["mailrepd_conflicts"] == 0
    assert m["mailrepd_guard_paused_users"] == 0
    assert m["mailrepd_guard_held_records"] == 0
    assert m["mailrepd_disk_free_bytes"] > 0


def test_curl(web):
    if shutil.which("curl") is None:
        pytest.skip("no curl")
    p = subprocess.run(["curl", "-sS", "-f", "-D", "-",
                        "http://%s:%d/healthz" % (HOST, web.http_port)],
                       capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert b"HTTP/1.1 200 OK" in p.stdout
    assert b'"status":"ok"' in p.stdout
    p = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w",
                        "%{http_code}", "-X", "BREW",
                        "http://%s:%d/healthz" % (HOST, web.http_port)],
                       capture_output=True, timeout=30)
    assert p.stdout == b"501"


def test_keep_alive_many_requests(web):
    c = conn(web)
    for _ in range(20):
        c.request("GET", "/healthz")
        r = c.getresponse()
        assert r.status == 200
        r.read()
    c.close()


@pytest.mark.parametrize("request_bytes,expect", [
    (b"GET /healthz HTTP/1.1\r\n\r\n", 400),               # no Host
    (b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    (b"GET /healthz HTTP/1.1 extra\r\nHost: x\r\n\r\n", 400),
    (b"GET  /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400),   # two spaces
    (b"GET healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 501),
    (b"G(T /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"\x00\x01\x02 / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /a\x7fb HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n", 400),
    (b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
     b"Content-Length: 1\r\n\r\nx", 400),
    (b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
     400),
    (b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\nx",
     400),
    (b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
     b"\r\n\r\n0\r\n\r\n", 501),
    (b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999"
     b"999999999999\r\n\r\n", 413),
    (b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 65537\r\n\r\n",
     413),
])
def test_bad_requests_get_their_status_and_close(web, request_bytes, expect):
    status, headers, body, closed = raw_once(web, request_bytes)
    assert status == expect, body
    assert headers.get("connection") == "close"
    assert "error" in json.loads(body)
    assert closed
    assert_alive(web)


def test_wrong_method_is_405_with_allow(web):
    status, headers, _ = get(web, "/healthz", method="DELETE")
    assert status == 405
    assert "GET" in headers["allow"]


def test_huge_and_many_headers(web):
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + \
        b"\r\n\r\n"
    status, _, _, closed = raw_once(web, big)
    assert status == 431 and closed
    many = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-H%d: v\r\n" % i for i in range(100)) + b"\r\n"
    status, _, _, closed = raw_once(web, many)
    assert status == 431 and closed
    line = b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    status, _, _, closed = raw_once(web, line)
    assert status == 414 and closed
    # A head that never ends, sent as fast as the server takes it.
    r = Raw(web.http_port)
    try:
        r.send(b"GET /healthz HTTP/1.1\r\n")
        try:
            for _ in range(100):
                r.send(b"X: " + b"b" * 1000 + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, _, _ = r.response()
        assert status == 431
    finally:
        r.close()
    assert_alive(web)


def test_body_up_to_the_limit_is_taken(web):
    body = b"x" * 65536
    status, _, _ = get(web, "/healthz", method="POST", body=body)
    assert status == 405
    assert_alive(web)


def test_pipelining_answers_in_order(web):
    r = Raw(web.http_port)
    r.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
           b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"
           b"DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
           b"\r\n"      # a stray empty line between requests is ignored
           b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert [r.response()[0] for _ in range(4)] == [200, 404, 405, 200]
    assert r.closed()
    r.close()


def test_keep_alive_limit_closes(web):
    r = Raw(web.http_port, timeout=30)
    req = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    r.send(req * (MAX_KEEPALIVE + 5))
    for i in range(MAX_KEEPALIVE):
        status, headers, _ = r.response()
        assert status == 200
        assert (headers.get("connection") == "close") == \
            (i == MAX_KEEPALIVE - 1)
    assert r.closed()
    r.close()
    assert_alive(web)


def test_http10_closes(web):
    status, headers, _, closed = raw_once(web, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert status == 200
    assert headers["connection"] == "close"
    assert closed


def test_slowloris_gets_408_and_others_are_served(web):
    r = Raw(web.http_port, timeout=REQUEST_TIMEOUT + 10)
    r.send(b"GET /healthz HTTP/1.1\r\n")
    start = time.monotonic()
    status = None
    while time.monotonic() - start < REQUEST_TIMEOUT + 8:
        try:
            r.send(b"X: y\r\n")     # a header now and then, never the end
        except (BrokenPipeError, ConnectionResetError):
            break
        assert_alive(web)
        r.s.settimeout(1)
        try:
            status = r.response()[0]
            break
        except socket.timeout:
            continue
    r.s.settimeout(5)
    if status is None:
        status = r.response()[0]
    assert status == 408
    assert time.monotonic() - start >= REQUEST_TIMEOUT - 1
    r.close()


def test_garbage_never_crashes(web):
    rng = random.Random(21)
    for _ in range(40):
        n = rng.randrange(1, 3000)
        data = bytes(rng.randrange(256) for _ in range(n))
        s = socket.create_connection((HOST, web.http_port), timeout=5)
        try:
            s.sendall(data + b"\r\n\r\n")
            s.recv(4096)
        except (ConnectionResetError, socket.timeout, BrokenPipeError):
            pass
        finally:
            s.close()
    assert_alive(web)


def test_non_loopback_refused_at_start_without_tls_material(tmp_path):
    """Elsewhere than loopback the web view is TLS only: without
    tls-cert and tls-key the server says so and does not start."""
    for addr in ("0.0.0.0:%d" % free_port(), "192.0.2.1:8025"):
        p = run("serve", "--data", str(tmp_path / "d"), "--http", addr)
        assert p.returncode == 2
        assert "setting 'http'" in p.stderr and "loopback" in p.stderr
        assert "tls-cert and tls-key" in p.stderr
    assert not (tmp_path / "d").exists()


def test_drain_healthz_is_503(web):
    r = Raw(web.http_port)
    r.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")   # not finished yet
    time.sleep(0.3)
    web.proc.send_signal(signal.SIGQUIT)
    time.sleep(0.5)
    r.send(b"\r\n")
    status, headers, body = r.response()
    assert status == 503
    assert json.loads(body)["draining"] is True
    assert headers["connection"] == "close"
    assert r.closed()
    r.close()
    assert web.proc.wait(10) == 0
    web.proc = None


def test_dev_json_has_http(tmp_path):
    env = {"TMPDIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    p = subprocess.Popen([MAILREPD, "dev", "--ports", "auto", "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env)
    try:
        info = json.loads(p.stdout.readline())
        port = info["ports"]["http"]
        c = http.client.HTTPConnection(info["host"], port, timeout=10)
        c.request("GET", "/healthz")
        assert c.getresponse().status == 200
        c.close()
    finally:
        p.send_signal(signal.SIGQUIT)
        p.wait(10)
    assert p.returncode == 0


def deliver(srv, rcpt, subject, body=b"hello\r\n", sender="Alice A "
            "<alice@remote.test>", extra=b""):
    msg = ("From: %s\r\nTo: Bob <bob@example.com>, carol@example.com\r\n"
           "Subject: %s\r\nMessage-ID: <%s@remote.test>\r\n" % (
               sender, subject, subject.replace(" ", "."))).encode() + \
        extra + b"\r\n" + body
    srv.deliver("s@remote.test", [rcpt], msg)
    return msg


def api(srv, path):
    status, headers, body = get(srv, path)
    assert status == 200, (path, body)
    assert headers["content-type"] == "application/json"
    return json.loads(body)


def test_api_list_newest_first_and_paging(web):
    for i in range(5):
        deliver(web, "alice@example.com", "subject %d" % i)
    deliver(web, "bob@example.com", "for bob")
    page = api(web, "/api/v1/messages")
    assert page["total"] == 6 and page["unread"] == 6
    assert page["messages_count"] == 6 and page["count"] == 6
    assert page["start"] == 0 and page["tags"] == []
    subjects = [m["Subject"] for m in page["messages"]]
    assert set(subjects) == {"subject %d" % i for i in range(5)} | {
        "for bob"}
    alice = [s for s in subjects if s != "for bob"]
    assert alice == ["subject %d" % i for i in range(4, -1, -1)]
    m = page["messages"][0]
    for field in ("ID", "MessageID", "Read", "From", "To", "Cc", "Bcc",
                  "ReplyTo", "Subject", "Created", "Tags", "Size",
                  "Attachments", "Snippet"):
        assert field in m, field
    assert m["From"] == {"Name": "Alice A", "Address": "alice@remote.test"}
    assert m["To"] == [{"Name": "Bob", "Address": "bob@example.com"},
                       {"Name": "", "Address": "carol@example.com"}]
    assert m["Read"] is False
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z",
                        m["Created"])
    two = api(web, "/api/v1/messages?start=1&limit=2")
    assert [x["ID"] for x in two["messages"]] == \
        [x["ID"] for x in page["messages"][1:3]]
    assert two["count"] == 2 and two["start"] == 1
    assert api(web, "/api/v1/messages?start=6")["messages"] == []
    for bad in ("limit=x", "start=-1", "limit=%", "start=1e3"):
        status, _, body = get(web, "/api/v1/messages?" + bad)
        assert status == 400, bad


def test_api_message_and_raw(web):
    msg = deliver(web, "alice@example.com", "one", body=b"the text\r\n")
    m = api(web, "/api/v1/messages")["messages"][0]
    full = api(web, "/api/v1/message/" + m["ID"])
    assert full["ID"] == m["ID"] and full["Subject"] == "one"
    assert full["MessageID"] == "one@remote.test"
    assert full["Text"] == "the text\r\n"
    assert full["Attachments"] == [] and full["HTML"] == ""
    status, headers, raw = get(web, "/api/v1/message/%s/raw" % m["ID"])
    assert status == 200
    assert raw.endswith(msg) and int(headers["content-length"]) == len(raw)
    assert headers["x-content-type-options"] == "nosniff"
    assert m["Size"] == len(raw)
    for bad in ("nope", m["ID"][:-1] + "0", m["ID"] + "0" * 11,
                "0" * 32 + "-1", m["ID"].upper() + "x", "%2e%2e",
                m["ID"][:31] + "g-1"):
        for suffix in ("", "/raw"):
            status, _, _ = get(web, "/api/v1/message/%s%s" % (bad, suffix))
            assert status == 404, (bad, suffix)


def test_api_raw_of_a_large_message_is_streamed(web):
    rng = random.Random(7)
    body = b"".join(b"%08d %s\r\n" % (i, bytes(rng.choice(b"abcdef")
                                          for _ in range(60)))
                    for i in range(40000))          # 2.8 MB
    msg = deliver(web, "alice@example.com", "big", body=body)
    m = api(web, "/api/v1/messages")["messages"][0]
    r = Raw(web.http_port, timeout=30)
    r.send(b"GET /api/v1/message/%s/raw HTTP/1.1\r\nHost: x\r\n\r\n"
           b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" % m["ID"].encode())
    time.sleep(1)       # the client reads late: the server waits
    status, _, raw = r.response()
    assert status == 200 and raw.endswith(msg)
    assert r.response()[0] == 200
    r.close()
    full = api(web, "/api/v1/message/" + m["ID"])
    assert len(full["Text"]) == 64 * 1024


def test_api_search(web):
    deliver(web, "alice@example.com", "invoice march")
    deliver(web, "alice@example.com", "hello world", sender="Zed <z@zed.test>")
    deliver(web, "bob@example.com", "invoice april")
    def subjects(q):
        res = api(web, "/api/v1/search?query=" + q)
        assert res["count"] == len(res["messages"]) == res["messages_count"]
        return sorted(m["Subject"] for m in res["messages"])
    assert subjects("invoice") == ["invoice april", "invoice march"]
    assert subjects("subject:march") == ["invoice march"]
    assert subjects("from:zed.test") == ["hello world"]
    assert subjects("INVOICE+subject:april") == ["invoice april"]
    assert subjects("subject:%22hello%20world%22") == ["hello world"]
    assert subjects("is:unread+to:carol") == ["hello world", "invoice april",
                                              "invoice march"]
    assert subjects("is:read") == []
    assert subjects("nothing-like-this") == []
    res = api(web, "/api/v1/search?query=invoice&limit=1")
    assert res["count"] == 1 and res["messages_count"] == 2
    res = api(web, "/api/v1/search?query=invoice&start=1")
    assert res["count"] == 1 and res["messages_count"] == 2
    for bad in ("", "?query=" + "+".join(["a"] * 17), "?query=%zz",
                "?query=" + "a" * 600):
        status, _, _ = get(web, "/api/v1/search" + bad)
        assert status == 400, bad


def test_api_search_dates_and_attachments(web):
    """Mailpit's before:, after: (a date, YYYY-MM-DD, UTC: arrived before
    it, or on it or later) and has:attachment."""
    deliver(web, "alice@example.com", "plain one")
    deliver(web, "alice@example.com", "with a file", extra=(
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n"), body=(
        b"--b\r\nContent-Type: text/plain\r\n\r\nsee file\r\n"
        b"--b\r\nContent-Type: application/pdf\r\n"
        b"Content-Disposition: attachment; filename=\"a.pdf\"\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n"))
    def subjects(q):
        res = api(web, "/api/v1/search?query=" + q)
        return sorted(m["Subject"] for m in res["messages"])
    today = time.strftime("%Y-%m-%d", time.gmtime())
    tomorrow = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 86400))
    both = ["plain one", "with a file"]
    assert subjects("has:attachment") == ["with a file"]
    assert subjects("before:" + tomorrow) == both
    assert subjects("before:" + today) == []
    assert subjects("after:" + today) == both
    assert subjects("after:" + tomorrow) == []
    assert subjects("after:2001-02-03+before:" + tomorrow +
                    "+has:attachment+file") == ["with a file"]
    for bad in ("before:", "after:2024-13-01", "before:yesterday",
                "after:2024-02-30x"):
        status, _, _ = get(web, "/api/v1/search?query=" + bad)
        assert status == 400, bad


def test_api_list_is_chunked_and_pipelines(web):
    c = LMTPClientMany(web)
    c.send(60)
    r = Raw(web.http_port)
    r.send(b"GET /api/v1/messages?limit=1000 HTTP/1.1\r\nHost: x\r\n\r\n"
           b"HEAD /api/v1/messages HTTP/1.1\r\nHost: x\r\n\r\n"
           b"GET /api/v1/messages?limit=5 HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = r.response()
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert len(json.loads(body)["messages"]) == 60
    # HEAD: the head of the reply only, then the next reply.
    while b"\r\n\r\n" not in r.buf:
        r._fill()
    head, r.buf = r.buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200")
    status, _, body = r.response()
    assert status == 200 and len(json.loads(body)["messages"]) == 5
    r.close()


class LMTPClientMany:
    """Delivers n small messages to alice over one LMTP session."""

    def __init__(self, srv):
        self.srv = srv

    def send(self, n):
        import smtplib
        with smtplib.LMTP(HOST, self.srv.port) as c:
            for i in range(n):
                c.sendmail("s@remote.test", ["alice@example.com"],
                           "Subject: many %d\r\n\r\nx\r\n" % i)


def test_api_delete_by_id_and_all(web):
    for i in range(3):
        deliver(web, "alice@example.com", "d%d" % i)
    ids = [m["ID"] for m in api(web, "/api/v1/messages")["messages"]]
    status, _, body = get(web, "/api/v1/messages", method="DELETE",
                          body=json.dumps({"IDs": [ids[1]]}),
                          headers={"Content-Type": "application/json"})
    assert status == 200 and body == b"ok"
    left = [m["ID"] for m in api(web, "/api/v1/messages")["messages"]]
    assert left == [ids[0], ids[2]]
    assert run("messages", "--data", web.data, "--user",
               "alice").stdout.count("\n") == 2
    # An ID already gone, and one never seen: nothing to do.
    status, _, _ = get(web, "/api/v1/messages", method="DELETE",
                       body=json.dumps({"IDs": [ids[1], "0" * 32 + "-5"]}))
    assert status == 200
    assert api(web, "/api/v1/messages")["total"] == 2
    LMTPClientMany(web).send(150)       # more than one batch
    status, _, _ = get(web, "/api/v1/messages", method="DELETE")
    assert status == 200
    page = api(web, "/api/v1/messages")
    assert page["total"] == 0 and page["messages"] == []
    assert run("messages", "--data", web.data).stdout == ""


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.test"},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
])
def test_api_delete_refuses_other_origins(web, headers):
    deliver(web, "alice@example.com", "keep me")
    status, _, body = get(web, "/api/v1/messages", method="DELETE",
                          headers=headers)
    assert status == 403, body
    assert api(web, "/api/v1/messages")["total"] == 1
    same = {"Origin": "http://%s:%d" % (HOST, web.http_port),
            "Sec-Fetch-Site": "same-origin"}
    status, _, _ = get(web, "/api/v1/messages", method="DELETE",
                       headers=same)
    assert status == 200
    assert api(web, "/api/v1/messages")["total"] == 0


@pytest.mark.parametrize("body", [
    b"not json", b'{"IDs": "x"}', b'{"IDs": ["nope"]}', b'{"IDs": [1]}',
    b'{"IDs": ["' + b"0" * 32 + b'-1"', b'{"IDs": ["' + b"a" * 200 + b'"]}',
])
def test_api_delete_bad_body(web, body):
    deliver(web, "alice@example.com", "keep me")
    status, _, _ = get(web, "/api/v1/messages", method="DELETE", body=body)
    assert status == 400
    assert api(web, "/api/v1/messages")["total"] == 1
