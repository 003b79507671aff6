"""Allocation failures (test/testalloc.c, as test_alloc_faults.py) in
the look-ups a command answers from: a look-up that fails is never read
as "not there".  Each scenario runs with the Nth allocation failing for
every N until it completes without reaching it; after each run the
server still serves, and at the end it exits 0 with a clean sanitizer
log and a clean store (the alloc_server fixture)."""
import base64
import http.client
import shutil

import pytest

from conftest import HOST, PASSWORD, IMAPError, IMAPRaw, free_port
from test_alloc_faults import AllocServer, alloc_runs, served, stop_clean
from test_io_faults import check_clean, mailboxes


@pytest.fixture
def alloc_server(tmp_path, template_data):
    """The test build, serving HTTP too (srv.http_port), on a copy of
    the template store."""
    data = tmp_path / "data"
    shutil.copytree(template_data, data)
    port = free_port()
    srv = AllocServer(tmp_path, data, ["--http", "%s:%d" % (HOST, port)])
    srv.http_port = port
    yield from served(srv)


def login(srv, n):
    """LOGIN as alice with her right password on a new session, the Nth
    allocation from the LOGIN on failing: the tagged reply, or None when
    the server cut the session."""
    try:
        c = IMAPRaw(srv.imap_port)
    except (OSError, IMAPError):
        return None
    with c:
        srv.arm(n)
        try:
            return c.cmd('LOGIN alice "%s"' % PASSWORD)[1]
        except (OSError, IMAPError):
            return None


def test_alloc_faults_never_refuse_the_right_password(alloc_server):
    """The right password with any one allocation failing: logged in, or
    told to try again (NO [UNAVAILABLE]), or cut off; never told that
    the password is wrong.  A failed look-up of the user or of her
    password's hash (the copy of it the store hands out) was read as
    "no such user": NO [AUTHENTICATIONFAILED], a failure counted
    against the client's address."""
    srv = alloc_server
    done = login(srv, 10 ** 9)
    total = srv.disarm()
    assert done is not None and done.startswith("OK"), done
    runs = 0
    for n in range(1, total + 1):
        done = login(srv, n)
        srv.disarm()
        assert done is None or done.startswith("OK") or \
            done.startswith("NO [UNAVAILABLE]"), \
            "LOGIN with allocation #%d failing: %r" % (n, done)
        runs += 1
        if not srv.injected():
            break
    assert login(srv, 10 ** 9).startswith("OK")
    srv.disarm()
    print("login: %d allocations, %d runs" % (total, runs))


def api_get(srv, n):
    """GET /api/v1/messages as alice with her right password (Basic) on
    a new connection, the Nth allocation from the request on failing:
    the status, or None when the server cut the connection."""
    cred = base64.b64encode(("alice:%s" % PASSWORD).encode()).decode()
    c = http.client.HTTPConnection(HOST, srv.http_port, timeout=30)
    try:
        c.connect()
        srv.arm(n)
        c.request("GET", "/api/v1/messages",
                  headers={"Authorization": "Basic " + cred})
        r = c.getresponse()
        r.read()
        return r.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        c.close()


def test_alloc_faults_never_refuse_the_right_password_on_the_web(
        alloc_server):
    """The API with the right password, any one allocation failing: 200,
    or a server error (503: try again; 500), or cut off; never 401.  A failed look-up of the
    user or her password's hash was read as "no such user"."""
    srv = alloc_server
    status = api_get(srv, 10 ** 9)
    total = srv.disarm()
    assert status == 200, status
    runs = 0
    for n in range(1, total + 1):
        status = api_get(srv, n)
        srv.disarm()
        assert status in (None, 200, 500, 503), \
            "GET with allocation #%d failing: %r" % (n, status)
        runs += 1
        if not srv.injected():
            break
    assert api_get(srv, 10 ** 9) == 200
    srv.disarm()
    print("web login: %d allocations, %d runs" % (total, runs))



def test_alloc_faults_never_skip_a_superior(tmp_path, template_data):
    """CREATE of "pN/c", pN not there, with the Nth allocation failing:
    OK with both made, or NO (or cut off) with pN/c not made; never a
    mailbox without its superior (RFC 3501 6.3.3: the server makes the
    superiors a name needs).  A failed look-up of pN was read as "pN is
    there", and pN/c made alone.  Each run is a new server's first
    CREATE: its look-ups prepare their statements, and a statement that
    fails to prepare leaves the transaction open (a failure in one that
    runs makes SQLite roll the transaction back, and every later
    statement of it fails too)."""
    data = tmp_path / "data"
    shutil.copytree(template_data, data)
    srv = AllocServer(tmp_path, data)
    runs = 0
    for f in alloc_runs():
        name = "p%d/c" % runs
        srv.start()
        c = IMAPRaw(srv.imap_port)
        c.login("alice")
        srv.arm(f.n)
        try:
            done = c.cmd("CREATE %s" % name)[1]
        except (OSError, IMAPError):
            done = None
        f.hit = srv.injected()
        counted = srv.disarm()
        c.close()
        srv.disarm(wake=False)
        stop_clean(srv, "server")
        boxes = mailboxes(data)
        what = "CREATE %s with allocation #%d failing: %r" % (name, f.n,
                                                               done)
        assert name not in boxes or name[:-2] in boxes, what
        assert done is None or done.startswith("OK") == (name in boxes), \
            what
        if f.counting:
            assert done.startswith("OK"), what
            total = f.counted = counted
        runs += 1
    check_clean(data)
    print("CREATE with superiors: %d allocations, %d runs" % (total,
                                                               runs - 1))
