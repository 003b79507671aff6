"""COMPRESS=DEFLATE (RFC 4978) with a raw-socket client on Python's zlib:
in the clear and on top of TLS, a large FETCH and APPEND through the
compressed stream, the refusals, and a corrupt stream."""
import re
import socket
import ssl
import time
import zlib

import pytest

from conftest import HOST, PASSWORD, free_port

TIMEOUT = 10


def ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


class Client:
    """IMAP lines over a socket, compressed once compress() is called."""

    def __init__(self, port, tls=False):
        self.sock = socket.create_connection((HOST, port), timeout=TIMEOUT)
        if tls:
            self.sock = ctx().wrap_socket(self.sock)
        self.z_out = self.z_in = None
        self.buf = b""
        self.n = 0
        self.wire_in = 0
        self.greeting = self.line()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        if self.z_out is not None:
            data = self.z_out.compress(data) + \
                self.z_out.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("closed; have %r" % self.buf[-200:])
        self.wire_in += len(chunk)
        if self.z_in is not None:
            chunk = self.z_in.decompress(chunk)
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        m = re.search(rb"\{(\d+)\}$", line)
        if m:
            n = int(m.group(1))
            while len(self.buf) < n:
                self._fill()
            line += b"\r\n" + self.buf[:n]
            self.buf = self.buf[n:]
            line += self.line().encode("latin-1")
        return line.decode("latin-1")

    def cmd(self, text):
        self.n += 1
        tag = "t%d" % self.n
        self.send("%s %s\r\n" % (tag, text))
        lines = []
        while True:
            lines.append(self.line())
            if lines[-1].startswith(tag + " "):
                return lines[:-1], lines[-1][len(tag) + 1:]

    def compress(self):
        untagged, done = self.cmd("COMPRESS DEFLATE")
        assert done == "OK DEFLATE active", done
        assert self.buf == b"", "uncompressed bytes after the OK"
        self.z_out = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.z_in = zlib.decompressobj(-15)

    def close(self):
        self.sock.close()


def imap_server(server):
    imap, imaps = free_port(), free_port()
    s = server(args=["--imap", "%s:%d" % (HOST, imap),
                     "--imaps", "%s:%d" % (HOST, imaps)])
    s.imap, s.imaps = imap, imaps
    return s


def big_message(n):
    lines = [b"Subject: big\r\n", b"\r\n"]
    i = 0
    while sum(map(len, lines)) < n:
        lines.append(b"line %08d of a fairly compressible message body\r\n"
                     % i)
        i += 1
    return b"".join(lines)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_compress_deflate_session(server, tls):
    s = imap_server(server)
    c = Client(s.imaps if tls else s.imap, tls=tls)
    untagged, done = c.cmd('LOGIN alice "%s"' % PASSWORD)
    assert "COMPRESS=DEFLATE" in done, done
    c.compress()
    untagged, done = c.cmd("CAPABILITY")
    assert done.startswith("OK")
    assert "COMPRESS=DEFLATE" not in untagged[0], untagged
    untagged, done = c.cmd("COMPRESS DEFLATE")
    assert done.startswith("NO [COMPRESSIONACTIVE]"), done
    msg = big_message(600 * 1024)
    c.send("a APPEND INBOX {%d+}\r\n" % len(msg))
    c.send(msg + b"\r\n")
    while True:
        l = c.line()
        if l.startswith("a "):
            break
    assert l.startswith("a OK [APPENDUID"), l
    untagged, done = c.cmd("SELECT INBOX")
    assert done.startswith("OK"), done
    before = c.wire_in
    untagged, done = c.cmd("FETCH 1 BODY.PEEK[]")
    assert done.startswith("OK"), done
    body = untagged[0].split("\r\n", 1)[1].encode("latin-1")
    assert body[:len(msg)] == msg
    # The text compresses: far fewer bytes came over the wire.
    assert c.wire_in - before < len(msg) / 4, (c.wire_in - before, len(msg))
    untagged, done = c.cmd("LOGOUT")
    assert untagged[0].startswith("* BYE")
    c.close()


def test_compress_refused_before_login_and_with_bad_arguments(server):
    s = imap_server(server)
    c = Client(s.imap)
    untagged, done = c.cmd("COMPRESS DEFLATE")
    assert done.startswith("BAD"), done
    c.cmd('LOGIN alice "%s"' % PASSWORD)
    untagged, done = c.cmd("COMPRESS GZIP")
    assert done.startswith("BAD"), done
    untagged, done = c.cmd("COMPRESS")
    assert done.startswith("BAD"), done
    untagged, done = c.cmd("NOOP")
    assert done.startswith("OK")
    c.close()


def test_pipelined_compressed_command_after_compress(server):
    """A client that sends compressed bytes right behind COMPRESS (in the
    same packet) is understood: they are taken as compressed."""
    s = imap_server(server)
    c = Client(s.imap)
    c.cmd('LOGIN alice "%s"' % PASSWORD)
    z = zlib.compressobj(6, zlib.DEFLATED, -15)
    c.sock.sendall(b"x COMPRESS DEFLATE\r\n" + z.compress(b"y NOOP\r\n") +
                   z.flush(zlib.Z_SYNC_FLUSH))
    assert c.line() == "x OK DEFLATE active"
    c.z_out, c.z_in = z, zlib.decompressobj(-15)
    c.z_in.decompress(b"")
    c.buf = c.z_in.decompress(c.buf)
    assert c.line() == "y OK NOOP completed"
    c.close()


def test_corrupt_deflate_stream_ends_the_session(server):
    s = imap_server(server)
    c = Client(s.imap)
    c.cmd('LOGIN alice "%s"' % PASSWORD)
    c.compress()
    c.sock.sendall(b"\xff\xff\xff\xff garbage that is not deflate")
    c.sock.settimeout(5)
    with pytest.raises((EOFError, ConnectionResetError, zlib.error)):
        while True:
            c._fill()
    c.close()
    c = Client(s.imap)
    untagged, done = c.cmd('LOGIN alice "%s"' % PASSWORD)
    assert done.startswith("OK")
    c.close()


def test_compressed_commands_byte_by_byte(server):
    """The compressed stream arriving a byte at a time, commands split
    anywhere inside deflate blocks: every command runs once."""
    s = imap_server(server)
    c = Client(s.imap)
    c.cmd('LOGIN alice "%s"' % PASSWORD)
    c.compress()
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    wire = b""
    for i in range(3):
        text = "b%d NOOP\r\n" % i
        wire += c.z_out.compress(text.encode()) + \
            c.z_out.flush(zlib.Z_SYNC_FLUSH)
    for i in range(len(wire)):
        c.sock.sendall(wire[i:i + 1])
        time.sleep(0.005)
    for i in range(3):
        assert c.line().startswith("b%d OK" % i)
    untagged, done = c.cmd("SELECT INBOX")
    assert done.startswith("OK"), done
    c.close()
