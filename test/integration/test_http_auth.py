"""The web view off loopback: TLS only (curl --cacert, openssl s_client,
Python's ssl), HTTP basic authentication against the users' passwords
with the penalty of a wrong one, each user seeing only their own mail
through every API call and the event stream, and the admin view (every
user's mail) from loopback or with the admin token.

"Not loopback" is this machine's own global address, connected to from
that address (as test_ipv6 tests IMAP's clear-text login policy): the
server sees a peer that net_is_local() does not call local."""
import base64
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import time

import pytest

from conftest import DOMAIN, HOST, PASSWORD, free_port, run
from test_http_events import SSE, letter
from test_ipv6 import global_address

CURL = shutil.which("curl")
OPENSSL = shutil.which("openssl")
TOKEN = "an-admin-token-of-some-length-0123456789"
GUESS = "Tr0ub4dor&3"        # a wrong password, never logged
FAIL_DELAY = 2.0            # config.h IMAP_AUTH_FAIL_DELAY_MS, seconds
TIMEOUT = 15


@pytest.fixture
def addr():
    a = global_address(socket.AF_INET)
    if a is None:
        pytest.skip("no non-loopback address on this machine")
    if OPENSSL is None:
        pytest.skip("no openssl")
    return a


def make_cert(tmp_path, addr):
    cert, key = tmp_path / "web.crt", tmp_path / "web.key"
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "2", "-subj",
                    "/CN=mailrepd-test", "-addext",
                    "subjectAltName=IP:%s,IP:127.0.0.1" % addr],
                   check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return cert, key


@pytest.fixture
def tls_web(server, tmp_path, addr):
    """A server whose HTTP listens on the global address (TLS) and on
    loopback (plain), with an admin token."""
    cert, key = make_cert(tmp_path, addr)
    token = tmp_path / "admin.token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    port, lport = free_port(), free_port()
    s = server(imap=True, args=[
        "--http", "%s:%d,%s:%d" % (addr, port, HOST, lport),
        "--tls-cert", cert, "--tls-key", key,
        "--http-admin-token-file", token])
    s.addr, s.https_port, s.http_port, s.cert = addr, port, lport, cert
    return s


def context(srv):
    ctx = ssl.create_default_context(cafile=str(srv.cert))
    return ctx


def basic(user, password=PASSWORD):
    return "Basic " + base64.b64encode(
        ("%s:%s" % (user, password)).encode()).decode()


def call(srv, path, auth=None, method="GET", body=None):
    """One request over TLS from the global address: (status, headers,
    body)."""
    c = http.client.HTTPSConnection(srv.addr, srv.https_port,
                                    context=context(srv), timeout=TIMEOUT,
                                    source_address=(srv.addr, 0))
    headers = {"Authorization": auth} if auth else {}
    try:
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def deliver_both(srv):
    """One message to bob, then one to alice; their IDs (admin view)."""
    for who in ("bob", "alice"):
        code, _ = srv.deliver("s@remote.test", [who + "@" + DOMAIN],
                              letter("for-" + who, to=who))
        assert code == 250
    _, _, body = call(srv, "/api/v1/messages", "Bearer " + TOKEN)
    return {m["Username"]: m["ID"] for m in json.loads(body)["messages"]}


def test_plain_http_is_refused_on_a_non_loopback_listener(tls_web):
    s = socket.create_connection((tls_web.addr, tls_web.https_port),
                                 timeout=TIMEOUT,
                                 source_address=(tls_web.addr, 0))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    try:
        while True:
            data = s.recv(4096)
            if not data:
                break
            got += data
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    assert not got.startswith(b"HTTP/"), got
    assert "tls.fail" in tls_web.log_text()
    # The listener still serves TLS.
    assert call(tls_web, "/healthz")[0] == 200


@pytest.mark.skipif(CURL is None, reason="no curl")
def test_curl_with_cacert_and_basic_auth(tls_web):
    url = "https://%s:%d/api/v1/messages" % (tls_web.addr,
                                             tls_web.https_port)
    base = [CURL, "-sS", "--cacert", str(tls_web.cert), "--interface",
            tls_web.addr, "--max-time", "20", "-o", "-", "-w",
            "\n%{http_code}"]
    p = subprocess.run(base + [url], stdout=subprocess.PIPE, text=True)
    assert p.stdout.rsplit("\n", 1)[1] == "401", p.stdout
    p = subprocess.run(base + ["-u", "alice:" + PASSWORD, url],
                       stdout=subprocess.PIPE, text=True)
    body, code = p.stdout.rsplit("\n", 1)
    assert code == "200", p.stdout
    assert json.loads(body)["total"] == 0
    # Without the CA, curl refuses the certificate.
    p = subprocess.run([CURL, "-sS", "--max-time", "20", url],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.returncode != 0


def test_openssl_s_client_speaks_tls12_or_later(tls_web):
    p = subprocess.run(
        [OPENSSL, "s_client", "-connect", "%s:%d" % (tls_web.addr,
                                                      tls_web.https_port),
         "-CAfile", str(tls_web.cert), "-verify_return_error", "-quiet"],
        input=b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close"
              b"\r\n\r\n", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        timeout=30)
    assert p.stdout.startswith(b"HTTP/1.1 200"), (p.stdout, p.stderr)
    p = subprocess.run(
        [OPENSSL, "s_client", "-connect", "%s:%d" % (tls_web.addr,
                                                      tls_web.https_port),
         "-tls1_1"], input=b"", stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, timeout=30)
    assert b"HTTP/1.1" not in p.stdout


def test_wrong_password_is_401_after_the_penalty(tls_web):
    t = time.monotonic()
    status, headers, _ = call(tls_web, "/api/v1/messages",
                              basic("alice", GUESS))
    took = time.monotonic() - t
    assert status == 401
    assert headers["www-authenticate"].startswith("Basic realm=")
    assert took >= FAIL_DELAY * 0.9, took
    assert "http.auth.fail" in tls_web.log_text()
    # A user that does not exist: the same answer.
    status, _, _ = call(tls_web, "/api/v1/messages", basic("nobody"))
    assert status == 401
    # No credentials at all from off loopback: 401 at once.
    assert call(tls_web, "/api/v1/messages")[0] == 401
    # The right password still works, and clears the penalty.
    assert call(tls_web, "/api/v1/messages", basic("alice"))[0] == 200
    assert GUESS not in tls_web.log_text()


def test_a_user_sees_only_their_own_mail(tls_web):
    ids = deliver_both(tls_web)
    alice = basic("alice")
    status, _, body = call(tls_web, "/api/v1/messages", alice)
    page = json.loads(body)
    assert status == 200 and page["total"] == 1
    assert [m["Username"] for m in page["messages"]] == ["alice"]
    # Bob's message, by ID, raw and by search, is not there for alice.
    assert call(tls_web, "/api/v1/message/" + ids["bob"], alice)[0] == 404
    assert call(tls_web, "/api/v1/message/%s/raw" % ids["bob"],
                alice)[0] == 404
    assert call(tls_web, "/api/v1/message/" + ids["alice"],
                alice)[0] == 200
    _, _, body = call(tls_web, "/api/v1/search?query=for-bob", alice)
    assert json.loads(body)["messages"] == []
    _, _, body = call(tls_web, "/api/v1/search?query=for", alice)
    assert [m["ID"] for m in json.loads(body)["messages"]] == [ids["alice"]]
    # Deleting "every message" deletes hers only; a delete naming bob's
    # ID leaves it alone.
    status, _, _ = call(tls_web, "/api/v1/messages", alice, "DELETE",
                        json.dumps({"IDs": [ids["bob"]]}))
    assert status == 200
    status, _, _ = call(tls_web, "/api/v1/messages", alice, "DELETE")
    assert status == 200
    _, _, body = call(tls_web, "/api/v1/messages", "Bearer " + TOKEN)
    assert [m["ID"] for m in json.loads(body)["messages"]] == [ids["bob"]]


def tls_stream(srv, auth):
    sock = socket.create_connection((srv.addr, srv.https_port),
                                    timeout=TIMEOUT,
                                    source_address=(srv.addr, 0))
    sock = context(srv).wrap_socket(sock, server_hostname=srv.addr)
    return SSE(srv.https_port, headers=[("Authorization", auth)],
               host=srv.addr, sock=sock)


def test_a_users_event_stream_has_their_events_only(tls_web):
    s = tls_stream(tls_web, basic("alice"))
    assert s.status == 200
    admin = tls_stream(tls_web, "Bearer " + TOKEN)
    deliver_both(tls_web)
    e = s.event()["json"]     # bob's came first, and is not alice's
    assert e["User"] == "alice" and e["Subject"] == "for-alice"
    users = [admin.until("new")["json"]["User"] for _ in range(2)]
    assert users == ["bob", "alice"]
    # Bob's change of his own mail reaches the admin, not alice.
    c = tls_web.imap("bob")
    c.select("INBOX")
    c.store("1", "+FLAGS", "(\\Seen)")
    c.logout()
    assert admin.until("flags")["json"]["User"] == "bob"
    tls_web.deliver("s@remote.test", ["alice@" + DOMAIN], letter("later"))
    e = s.event()       # the very next one: nothing of bob's between
    assert e["event"] == "new" and e["json"]["Subject"] == "later", e
    for c in (s, admin):
        c.close()
    # Without credentials, or with a wrong password: no stream.
    assert tls_stream(tls_web, "Basic eDp5").status == 401


def test_admin_view_needs_the_token_off_loopback(tls_web):
    deliver_both(tls_web)
    status, _, body = call(tls_web, "/api/v1/messages", "Bearer " + TOKEN)
    assert status == 200 and json.loads(body)["total"] == 2
    assert call(tls_web, "/metrics", "Bearer " + TOKEN)[0] == 200
    assert call(tls_web, "/metrics", basic("alice"))[0] == 403
    t = time.monotonic()
    assert call(tls_web, "/metrics", "Bearer not-the-token")[0] == 401
    assert time.monotonic() - t >= FAIL_DELAY * 0.9
    assert call(tls_web, "/healthz")[0] == 200      # a load balancer's


def test_loopback_is_the_admin_view_but_not_for_other_sites(tls_web):
    deliver_both(tls_web)
    c = http.client.HTTPConnection(HOST, tls_web.http_port, timeout=TIMEOUT)
    c.request("GET", "/api/v1/messages")
    r = c.getresponse()
    assert r.status == 200 and json.loads(r.read())["total"] == 2
    # A page of another site whose name points here (DNS rebinding).
    c.request("GET", "/api/v1/messages",
              headers={"Host": "evil.example:%d" % tls_web.http_port})
    r = c.getresponse()
    assert r.status == 403 and b"loopback" in r.read()
    # Credentials from loopback: that user's view.
    c.request("GET", "/api/v1/messages",
              headers={"Authorization": basic("bob")})
    r = c.getresponse()
    assert [m["Username"] for m in json.loads(r.read())["messages"]] == [
        "bob"]
    c.close()


def test_token_file_must_be_private(tmp_path):
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    os.chmod(token, 0o644)
    p = run("serve", "--data", str(tmp_path / "d"), "--http",
            "%s:%d" % (HOST, free_port()), "--http-admin-token-file",
            str(token))
    assert p.returncode == 2
    assert "http-admin-token-file" in p.stderr and "chmod 600" in p.stderr
    token.chmod(0o600)
    token.write_text("short\n")
    p = run("serve", "--data", str(tmp_path / "d"), "--http",
            "%s:%d" % (HOST, free_port()), "--http-admin-token-file",
            str(token))
    assert p.returncode == 2 and "one line of 16 to 256" in p.stderr


def test_same_origin_check_knows_https(tls_web):
    """A browser's DELETE over TLS names an https:// origin: its own
    passes, another site's is refused."""
    origin = "https://%s:%d" % (tls_web.addr, tls_web.https_port)
    for sent, want in ((origin, 200), ("https://evil.example", 403),
                       ("http://%s:%d" % (tls_web.addr, tls_web.https_port),
                        403)):
        c = http.client.HTTPSConnection(tls_web.addr, tls_web.https_port,
                                        context=context(tls_web),
                                        timeout=TIMEOUT,
                                        source_address=(tls_web.addr, 0))
        c.request("DELETE", "/api/v1/messages", headers={
            "Authorization": basic("alice"), "Origin": sent,
            "Host": "%s:%d" % (tls_web.addr, tls_web.https_port)})
        r = c.getresponse()
        r.read()
        c.close()
        assert r.status == want, (sent, r.status)
