"""IPv6: every listener on [::1], and who may log in in the clear.

LMTP, IMAP, IMAPS, SMTP and the replication channel each listen on
[::1] and serve there.  The policy that lets a loopback client log in
without TLS (net_is_local) holds for IPv6: ::1 is local, and so is
127.0.0.1 reaching a [::] listener as ::ffff:127.0.0.1; this machine's
own non-loopback addresses, IPv6 or v4-mapped, are not, and get
LOGINDISABLED.  Skipped, saying why, when the machine has no IPv6
loopback.
"""
import imaplib
import smtplib
import socket
import subprocess

import pytest

from conftest import DOMAIN, PASSWORD
from test_replication import secret, wait_same  # noqa: F401
from test_tls import client_context

MSG = (b"From: <s@remote.test>\r\nTo: <alice@example.com>\r\n"
       b"Subject: over v6\r\n\r\nover IPv6\r\n")


def v6_port(addr="::1"):
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


def global_address(family):
    """One of this machine's non-loopback addresses, or None."""
    p = subprocess.run(["ip", "-o", "-4" if family == socket.AF_INET
                        else "-6", "addr", "show", "scope", "global"],
                       stdout=subprocess.PIPE, text=True)
    for line in p.stdout.splitlines():
        addr = line.split()[3].split("/")[0]
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.bind((addr, 0))
            return addr
        except OSError:
            continue
    return None


@pytest.fixture
def ipv6():
    if not socket.has_ipv6:
        pytest.skip("this Python has no IPv6")
    try:
        v6_port()
    except OSError as e:
        pytest.skip("no IPv6 loopback (::1) on this machine: %s" % e)


def v6_server(server, extra_lmtp, args):
    """A server whose LMTP also listens on extra_lmtp."""
    s = server(start=False, args=args)
    base = s.command

    def command():
        cmd = base()
        cmd[cmd.index("--lmtp") + 1] += "," + extra_lmtp
        return cmd
    s.command = command
    return s.start()


def capabilities(host, port, source=None):
    c = imaplib.IMAP4(host, port, timeout=10) if source is None else \
        BoundIMAP(host, port, source)
    try:
        return c.capabilities, c
    except Exception:
        c.shutdown()
        raise


class BoundIMAP(imaplib.IMAP4):
    """imaplib from a chosen source address."""

    def __init__(self, host, port, source):
        self.source = source
        super().__init__(host, port, timeout=10)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self.source, 0))


def test_every_listener_on_ipv6_loopback(server, ipv6):
    lmtp, imap, imaps, smtp = (v6_port() for _ in range(4))
    s = v6_server(server, "[::1]:%d" % lmtp, [
        "--imap", "[::1]:%d" % imap, "--imaps", "[::1]:%d" % imaps,
        "--smtp", "[::1]:%d" % smtp, "--domains", DOMAIN])
    with smtplib.LMTP("::1", lmtp) as c:
        assert not c.sendmail("s@remote.test", ["alice@" + DOMAIN], MSG)
    with smtplib.SMTP("::1", smtp, timeout=10) as c:
        assert not c.sendmail("s@remote.test", ["alice@" + DOMAIN], MSG)
    log = s.log_text()
    assert "[::1]" in log
    caps, c = capabilities("::1", imap)
    assert "LOGINDISABLED" not in caps and "AUTH=PLAIN" in caps
    c.login("alice", PASSWORD)
    typ, dat = c.select("INBOX")
    assert typ == "OK" and dat == [b"2"]
    c.logout()
    c = imaplib.IMAP4_SSL("::1", imaps, ssl_context=client_context(),
                          timeout=10)
    c.login("alice", PASSWORD)
    c.logout()


def test_replication_over_ipv6(server, secret, ipv6):
    port = v6_port()
    master = server(args=["--repl-listen", "[::1]:%d" % port,
                          "--repl-secret-file", secret])
    rep = server(users=(), args=["--replicate-from", "[::1]:%d" % port,
                                 "--repl-secret-file", secret,
                                 "--name", "v6"])
    reply = master.deliver("s@remote.test", ["alice@" + DOMAIN], MSG)
    assert reply[0] == 250, reply
    wait_same(master, rep)
    assert "peer=[::1]:" in master.log_text()


def test_cleartext_login_only_from_loopback(server, ipv6):
    any_port = v6_port("::")
    s = server(args=["--imap", "[::]:%d" % any_port])
    # ::1 and 127.0.0.1 (as ::ffff:127.0.0.1) are loopback.
    for host in ("::1", "127.0.0.1"):
        caps, c = capabilities(host, any_port)
        assert "LOGINDISABLED" not in caps, (host, caps)
        c.login("alice", PASSWORD)
        c.logout()
    tried = 0
    for family in (socket.AF_INET6, socket.AF_INET):
        addr = global_address(family)
        if addr is None:
            continue
        tried += 1
        caps, c = capabilities(addr, any_port, source=addr)
        assert "LOGINDISABLED" in caps and "AUTH=PLAIN" not in caps, (
            addr, caps)
        with pytest.raises(imaplib.IMAP4.error):
            c.login("alice", PASSWORD)
        c.shutdown()
    if not tried:
        pytest.skip("no non-loopback address to connect from")
    assert s.running()
