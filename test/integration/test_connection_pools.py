"""Connection pools and the pre-login timeout: clients of one protocol
cannot take the slots of another, replicas always find room, and a
client that never logs in (or greets) is cut off after
--prelogin-timeout however often it sends a byte."""
import socket
import time

from conftest import LMTPClient


def idle_imap(srv, n):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", srv.imap_port), timeout=10)
        assert s.recv(1024).startswith(b"* OK")
        socks.append(s)
    return socks


def test_imap_clients_do_not_lock_out_lmtp(server):
    srv = server(imap=True, args=["--max-connections", "8"])
    socks = idle_imap(srv, 8)
    try:
        extra = socket.create_connection(("127.0.0.1", srv.imap_port),
                                         timeout=10)
        assert extra.recv(1024).startswith(b"* BYE [UNAVAILABLE]")
        extra.close()
        with LMTPClient(srv.port) as c:
            c.cmd("LHLO x", "250")
        srv.deliver("a@remote.test", ["alice@example.com"],
                    b"Subject: through\r\n\r\nhi\r\n")
    finally:
        for s in socks:
            s.close()


def test_prelogin_timeout_despite_trickle(server):
    srv = server(imap=True, args=["--prelogin-timeout", "2"])
    logged = srv.raw()
    start = time.monotonic()
    s = socket.create_connection(("127.0.0.1", srv.imap_port), timeout=10)
    assert s.recv(1024).startswith(b"* OK")
    closed = None
    try:
        while time.monotonic() - start < 15 and closed is None:
            try:
                s.sendall(b"a")     # a command that never ends
                s.settimeout(0.5)
                if s.recv(1024) == b"":
                    closed = time.monotonic() - start
            except socket.timeout:
                pass
            except OSError:
                closed = time.monotonic() - start
        assert closed is not None and 2 <= closed < 15, closed
        logged.ok("NOOP")   # a logged-in session stays
    finally:
        s.close()
        logged.close()


def test_lmtp_prelogin_timeout(server):
    srv = server(args=["--prelogin-timeout", "2"])
    with LMTPClient(srv.port) as c:
        time.sleep(3.5)
        c.sock.settimeout(10)
        assert c.sock.recv(1024).startswith(b"421"), "no 421"
    with LMTPClient(srv.port) as c:
        c.cmd("LHLO x", "250")
        time.sleep(3.5)
        c.cmd("NOOP", "250")
