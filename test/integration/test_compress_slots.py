"""COMPRESS=DEFLATE holds one of --max-compress-sessions slots (each
compressing session costs its zlib states, ~80 KiB; config.h): a real
client (imaplib with zlib under it) compresses while a slot is free;
one more is answered NO [LIMIT] and goes on uncompressed; a session that
ends gives its slot back."""
import imaplib
import socket
import time
import zlib

from conftest import HOST, PASSWORD, free_port

SLOTS = 3


class CompressingIMAP(imaplib.IMAP4):
    """imaplib's client with RFC 4978 DEFLATE under it once compress()
    succeeded (imaplib reads and writes through read/readline/send)."""

    def compress(self):
        imaplib.Commands.setdefault("COMPRESS", ("AUTH", "SELECTED"))
        typ, data = self._simple_command("COMPRESS", "DEFLATE")
        if typ == "OK":
            self.z_out = zlib.compressobj(6, zlib.DEFLATED, -15)
            self.z_in = zlib.decompressobj(-15)
            self.plain = b""
        return typ, data

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise imaplib.IMAP4.abort("closed")
        self.plain += self.z_in.decompress(chunk)

    def read(self, size):
        if not hasattr(self, "z_in"):
            return super().read(size)
        while len(self.plain) < size:
            self._fill()
        out, self.plain = self.plain[:size], self.plain[size:]
        return out

    def readline(self):
        if not hasattr(self, "z_in"):
            return super().readline()
        while b"\n" not in self.plain:
            self._fill()
        i = self.plain.index(b"\n") + 1
        out, self.plain = self.plain[:i], self.plain[i:]
        return out

    def send(self, data):
        if hasattr(self, "z_out"):
            data = self.z_out.compress(data) + \
                self.z_out.flush(zlib.Z_SYNC_FLUSH)
        super().send(data)


def logged_in(port):
    c = CompressingIMAP(HOST, port, timeout=30)
    c.login("alice", PASSWORD)
    return c


def works(c):
    """A compressed (or not) session that appends, selects, fetches."""
    body = b"Subject: slot\r\n\r\n" + b"compressible line\r\n" * 2000
    assert c.append("INBOX", None, None, body)[0] == "OK"
    typ, data = c.select("INBOX")
    assert typ == "OK", data
    n = int(data[0])
    typ, data = c.fetch(str(n), "(BODY.PEEK[])")
    assert typ == "OK" and data[0][1] == body, data[:1]
    assert c.noop()[0] == "OK"


def test_compress_sessions_have_slots(server):
    imap = free_port()
    srv = server(args=["--imap", "%s:%d" % (HOST, imap),
                       "--max-compress-sessions", str(SLOTS)])
    held = [logged_in(imap) for _ in range(SLOTS)]
    extra = logged_in(imap)
    try:
        for c in held:
            typ, data = c.compress()
            assert typ == "OK", data
            works(c)
        typ, data = extra.compress()
        assert typ == "NO" and data[0].startswith(b"[LIMIT]"), (typ, data)
        assert not hasattr(extra, "z_out")
        works(extra)	# goes on uncompressed
        # A second try while every slot is held: the same answer.
        typ, data = extra.compress()
        assert typ == "NO" and data[0].startswith(b"[LIMIT]"), (typ, data)
        held.pop().logout()
        end = time.monotonic() + 10
        while True:
            typ, data = extra.compress()
            if typ == "OK" or time.monotonic() > end:
                break
            time.sleep(0.1)
        assert typ == "OK", "a closed session kept its slot: %r" % data
        works(extra)
    finally:
        for c in held + [extra]:
            try:
                c.logout()
            except (imaplib.IMAP4.error, OSError):
                pass
    assert "max-compress-sessions" in srv.log_text()


def test_compress_slot_is_taken_once_per_session(server):
    """Sessions that ask in the same instant, pipelined behind their
    logins, still get no more than the slots: the slot is taken when the
    command is answered, not when its reply has gone out."""
    imap = free_port()
    server(args=["--imap", "%s:%d" % (HOST, imap),
                 "--max-compress-sessions", "1"])
    socks = []
    for _ in range(4):
        s = socket.create_connection((HOST, imap), timeout=30)
        s.recv(4096)
        socks.append(s)
    for s in socks:
        s.sendall(b'a LOGIN alice "%s"\r\nb COMPRESS DEFLATE\r\n'
                  % PASSWORD.encode())
    answers = []
    for s in socks:
        buf = b""
        while not any(l.startswith(b"b ") for l in buf.split(b"\r\n")[:-1]):
            chunk = s.recv(4096)
            assert chunk, buf
            buf += chunk
        answers += [l[2:] for l in buf.split(b"\r\n") if l.startswith(b"b ")]
    # Closed only now: a session gone frees its slot for a later login.
    for s in socks:
        s.close()
    ok = [a for a in answers if a.startswith(b"OK")]
    assert len(ok) == 1, answers
    assert all(a.startswith(b"NO [LIMIT]") for a in answers
               if not a.startswith(b"OK")), answers
