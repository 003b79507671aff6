"""Idle and vanishing IMAP clients, with the timeout shortened by its
setting: a logged-in client that says nothing for --idle-timeout seconds
is told `* BYE Disconnected for inactivity` and disconnected; one that
asks for a large answer and resets the connection without reading it
costs the server nothing (its output is dropped) and everyone else is
served; one that stops reading in the middle of a large answer and
stays silent is dropped after the idle timeout."""
import socket
import struct
import time

from conftest import IMAPRaw

MSG = (b"From: a@b.test\r\nSubject: s\r\n\r\n" +
       b"a line of a body that takes some room\r\n" * 2000)


def test_inactive_client_is_logged_out(server):
    s = server(imap=True, args=["--idle-timeout", "2"])
    with s.raw() as c:
        start = time.monotonic()
        line = c.line(timeout=20)
        assert line.startswith("* BYE") and "inactivity" in line, line
        assert time.monotonic() - start >= 1.5
        c.wait_closed(10)


def test_reset_during_large_answer(server):
    s = server(imap=True)
    with s.raw() as c:
        for _ in range(20):
            c.append("INBOX", MSG)
    for _ in range(3):
        c = IMAPRaw(s.imap_port)
        c.login("alice")
        c.ok("SELECT INBOX")
        c.send(b"f FETCH 1:* BODY.PEEK[]\r\n")
        # RST at once: the answer has no one to go to.
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                          struct.pack("ii", 1, 0))
        c.sock.close()
    with s.raw() as c:
        assert c.status("INBOX") == {"MESSAGES": 20}


def test_client_that_stops_reading_is_dropped(server):
    """Far more output than the socket buffers hold: the server's writes
    stall, and after the idle timeout the client is cut off -- without a
    BYE spliced into the middle of a message it was sending."""
    s = server(imap=True, args=["--idle-timeout", "2"])
    with s.raw() as c:
        for _ in range(10):
            c.append("INBOX", MSG)
        c.ok("SELECT INBOX")
        for _ in range(6):
            c.ok("COPY 1:* INBOX")
    n = 10 * 2 ** 6
    c = IMAPRaw(s.imap_port)
    c.login("alice")
    c.ok("SELECT INBOX")
    c.send(b"f FETCH 1:* BODY.PEEK[]\r\n")
    time.sleep(6)
    c.sock.settimeout(20)
    data = bytearray()
    while True:
        try:
            chunk = c.sock.recv(1 << 20)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    c.close()
    assert len(data) < n * len(MSG) // 2, len(data)
    assert b"* BYE" not in data
    with s.raw() as c:
        assert c.status("INBOX") == {"MESSAGES": n}
