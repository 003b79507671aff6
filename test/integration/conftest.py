"""Fixtures and helpers for mailrepd's integration tests.

The tests drive the real binary: $MAILREPD (default: <repo>/mailrepd),
normally the ASan+UBSan build from `make check`.  Servers listen on free
127.0.0.1 ports only; every data directory lives under pytest's tmp_path.
A server or command whose stderr shows a sanitizer report fails the test.
"""
import collections
import imaplib
import os
import random
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAILREPD = os.environ.get("MAILREPD", str(REPO / "mailrepd"))
HOST = "127.0.0.1"
USERS = ("alice", "bob")
PASSWORD = "correct horse battery staple"
DOMAIN = "example.com"
SERVER_NAME = "mx.test"
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:",
                     "LeakSanitizer", "ERROR: UndefinedBehaviorSanitizer")
IMAP_TIMEOUT = 10.0
READY_DEADLINE = 10.0
STOP_DEADLINE = 10.0
CMD_TIMEOUT = 60


def pytest_configure(config):
    if not os.access(MAILREPD, os.X_OK):
        raise pytest.UsageError("no mailrepd binary at %s: build it (make "
                                "asan) or set MAILREPD" % MAILREPD)
    config.addinivalue_line(
        "markers", "serial: measures latency or memory under its own load; "
        "with -n N it runs after every other test, alone (serial_last.py)")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Puts the tests marked serial in serial_last.py's xdist group.
    tryfirst: xdist's own hook reads the groups into the test ids."""
    for item in items:
        if item.get_closest_marker("serial"):
            item.add_marker(pytest.mark.xdist_group("serial"))


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """--dist loadgroup (make check) runs the serial tests last, alone."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from serial_last import SerialLastScheduling
    return SerialLastScheduling(config, log)


def pytest_report_header(config):
    return "mailrepd binary: %s" % MAILREPD


def sanitizer_report(text):
    """The first sanitizer line in text, or None."""
    for line in text.splitlines():
        if any(m in line for m in SANITIZER_MARKERS):
            return line
    return None


class PortPool:
    """Hands out ports below the kernel's ephemeral range, where no
    client connection takes one between the pick and the server's bind.
    Each pytest-xdist worker has its own slice, walked in order from a
    random place, so neither two workers nor two picks of one run meet
    (another run on the machine may start anywhere in the slice)."""
    FLOOR = 10000           # below it: ports that services may own

    def __init__(self):
        try:
            with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
                ceiling = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            ceiling = 32768
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        me = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
        size = (ceiling - self.FLOOR) // max(workers, 1)
        self.first = self.FLOOR + me * size
        self.size = size
        self.offset = random.SystemRandom().randrange(size) if size > 0 else 0

    def take(self):
        """A port that nothing is bound to now; the kernel's choice when
        there is no room below the ephemeral range."""
        for _ in range(self.size):
            port = self.first + self.offset
            self.offset = (self.offset + 1) % self.size
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind((HOST, port))
                except OSError:
                    continue
            return port
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            return s.getsockname()[1]


_ports = PortPool()


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now, and
    that no other test running at the same time is given."""
    return _ports.take()


def run(*args, input=None, timeout=CMD_TIMEOUT, cwd=None):
    """Runs `mailrepd ARGS...`; returns the CompletedProcess (text).

    Fails the test when the command's stderr holds a sanitizer report.
    """
    if isinstance(input, str):
        input = input.encode()
    p = subprocess.run([MAILREPD] + [str(a) for a in args], input=input,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, cwd=cwd)
    p.stdout = p.stdout.decode("utf-8", "replace")
    p.stderr = p.stderr.decode("utf-8", "replace")
    bad = sanitizer_report(p.stderr)
    assert bad is None, "sanitizer report from mailrepd %s:\n%s" % (
        " ".join(map(str, args)), p.stderr)
    return p


def run_ok(*args, **kw):
    p = run(*args, **kw)
    assert p.returncode == 0, "mailrepd %s exited %d\nstdout: %s\nstderr: %s" % (
        " ".join(map(str, args)), p.returncode, p.stdout, p.stderr)
    return p


def user_add(data, name, password=PASSWORD):
    return run_ok("user", "add", name, "--data", data,
                  input=password + "\n")


def check_store(data):
    """Runs `mailrepd check` and asserts that it reports no problem."""
    p = run("check", "--data", data)
    assert p.returncode == 0, "check failed:\n%s%s" % (p.stdout, p.stderr)
    assert p.stdout.startswith("ok: "), p.stdout
    assert "problem" not in p.stdout.replace("0 problems", ""), p.stdout
    return p


# --- export -----------------------------------------------------------------

Exported = collections.namedtuple("Exported",
                                  "mailbox name flags data mtime path")


def maildir_flags(name):
    """The flag letters after ':2,' in a Maildir file name."""
    return name.split(":2,", 1)[1] if ":2," in name else None


def read_maildir(root, mailbox=None):
    """Reads a Maildir (mailbox given) or a Maildir++ tree written by export.

    Returns a list of Exported, one per message file.  The root of a tree
    is INBOX and ".a.b" is "a/b".  Export writes into cur/ only.
    """
    root = Path(root)
    folders = []
    if mailbox is not None:
        folders.append((mailbox, root))
    else:
        folders.append(("INBOX", root))
        for d in sorted(root.iterdir()):
            if d.name.startswith(".") and (d / "cur").is_dir():
                folders.append((d.name[1:].replace(".", "/"), d))
    out = []
    for name, d in folders:
        assert sorted(os.listdir(d / "new")) == [], "export wrote into new/"
        for f in sorted(os.listdir(d / "cur")):
            p = d / "cur" / f
            out.append(Exported(name, f, maildir_flags(f), p.read_bytes(),
                                int(p.stat().st_mtime), p))
    return out


_export_count = 0


def export(data, user, mailbox=None, dest=None):
    """Exports a user (or one mailbox) and returns read_maildir()'s list."""
    global _export_count
    if dest is None:
        _export_count += 1
        dest = Path(data).parent / ("export-%d" % _export_count)
    args = ["export", user] + ([mailbox] if mailbox else []) + [
        "--maildir", dest, "--data", data]
    run_ok(*args)
    return read_maildir(dest, mailbox)


def stored(sender, body, rcpt=None):
    """The bytes export shows for `body` delivered from `sender`: the
    Return-Path, the Delivered-To when there was one recipient, the body."""
    head = b"Return-Path: <%s>\r\n" % sender.encode()
    if rcpt is not None:
        head += b"Delivered-To: %s\r\n" % rcpt.encode()
    return head + body


# --- messages ---------------------------------------------------------------

def make_message(marker, size, rng, dots=True, sender="sender@remote.test",
                 rcpt="alice@" + DOMAIN):
    """A CRLF message of exactly `size` bytes with a unique Message-ID.

    Body lines are random printable and 8-bit bytes; with dots, some lines
    start with '.' (".", "..", ".x") so that dot-stuffing is exercised.
    """
    head = (b"From: <%s>\r\nTo: <%s>\r\nSubject: test %s\r\n"
            b"Message-ID: <%s@mailrepd.test>\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n" % (
                sender.encode(), rcpt.encode(), marker.encode(),
                marker.encode()))
    alphabet = bytes(range(0x20, 0x7f)) + bytes(range(0xa0, 0x100)) + b"\t"
    lines = [b"marker " + marker.encode()]
    if dots:
        lines.append(b".. always one dot line")
    total = len(head) + sum(len(l) + 2 for l in lines)
    while total < size:
        rem = size - total
        if rem < 2:                    # no room for a line: widen the last
            lines[-1] += b"p" * rem
            total += rem
            break
        r = rng.random()
        if dots and r < 0.05:
            line = rng.choice([b".", b"..", b"...", b".x", b". leading dot",
                               b".." + bytes(rng.choices(alphabet, k=20))])
        elif r < 0.08:
            line = b""
        elif r < 0.10:
            line = bytes(rng.choices(alphabet, k=rng.randint(900, 2000)))
        else:
            line = bytes(rng.choices(alphabet, k=rng.randint(1, 120)))
        line = line[:rem - 2]
        lines.append(line)
        total += len(line) + 2
    return head + b"\r\n".join(lines) + b"\r\n"


def dot_stuff(body):
    """Dot-stuffs a CRLF message and adds the terminating dot line."""
    assert body.endswith(b"\r\n")
    lines = body.split(b"\r\n")[:-1]
    return b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n"
                    for l in lines) + b".\r\n"


# --- LMTP clients -----------------------------------------------------------

class LMTPError(Exception):
    pass


class LMTPClient:
    """A raw-socket LMTP client: bytes out, reply lines in, with timeouts."""

    def __init__(self, port=None, path=None, timeout=10.0, greet=True):
        if path is not None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(str(path))
        else:
            self.sock = socket.create_connection((HOST, port),
                                                 timeout=timeout)
        self.timeout = timeout
        self.buf = b""
        self.greeting = self.reply() if greet else None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def readline(self, timeout=None):
        """One reply line without its CRLF; LMTPError on EOF or timeout."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LMTPError("timeout waiting for a reply; have %r"
                                % self.buf)
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise LMTPError("timeout waiting for a reply; have %r"
                                % self.buf)
            if not chunk:
                raise LMTPError("connection closed; have %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        assert line.endswith(b"\r"), "reply line without CRLF: %r" % line
        return line[:-1].decode("utf-8", "replace")

    def reply(self, timeout=None):
        """A whole (multi-line) reply: the list of its lines."""
        lines = [self.readline(timeout)]
        while len(lines[-1]) > 3 and lines[-1][3] == "-":
            lines.append(self.readline(timeout))
        for l in lines:
            assert len(l) >= 3 and l[:3].isdigit(), "bad reply %r" % l
        return lines

    def expect(self, prefix, timeout=None):
        """Reads one reply; asserts its last line starts with prefix."""
        lines = self.reply(timeout)
        assert lines[-1].startswith(prefix), \
            "expected %r, got %r" % (prefix, lines)
        return lines[-1]

    def cmd(self, line, prefix=None):
        self.send(line + "\r\n")
        if prefix is None:
            return self.reply()
        return self.expect(prefix)

    def lhlo(self, name="client.test"):
        lines = self.cmd("LHLO " + name)
        assert all(l.startswith("250") for l in lines), lines
        return [l[4:] for l in lines]

    def silent_for(self, seconds):
        """Asserts that the server says nothing for `seconds`."""
        self.sock.settimeout(seconds)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return
        finally:
            self.sock.settimeout(self.timeout)
        if not data:
            raise AssertionError("server closed the connection early")
        raise AssertionError("server spoke early: %r" % (self.buf + data))

    def wait_closed(self, timeout=5.0):
        """Reads until EOF; returns whatever lines came first."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("connection still open; have %r"
                                     % self.buf)
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                rest = self.buf.decode("utf-8", "replace")
                self.buf = b""
                return [l for l in rest.split("\r\n") if l]
            self.buf += chunk

    def transaction(self, sender, rcpts, body, stuffed=False):
        """MAIL, RCPT..., DATA and the message, pipelined.  Returns
        (rcpt replies, data replies); data replies are one per accepted
        recipient, or [] when DATA was refused."""
        self.send("MAIL FROM:<%s>\r\n" % sender
                  + "".join("RCPT TO:<%s>\r\n" % r for r in rcpts)
                  + "DATA\r\n")
        self.expect("250 ")
        rr = [self.expect("") for _ in rcpts]
        ok = sum(r.startswith("250") for r in rr)
        d = self.expect("")
        if not d.startswith("354"):
            return rr, [d]
        self.send(body if stuffed else dot_stuff(body))
        return rr, [self.expect("") for _ in range(ok)]


def lmtp_deliver(port, sender, rcpts, body):
    """Delivers one message with Python's smtplib.LMTP.  Returns the
    DATA reply code; asserts every recipient was accepted."""
    with smtplib.LMTP(HOST, port, local_hostname="client.test",
                      timeout=30) as c:
        code, msg = c.ehlo()
        assert code == 250, (code, msg)
        code, msg = c.mail(sender)
        assert code == 250, (code, msg)
        for r in rcpts:
            code, msg = c.rcpt(r)
            assert code == 250, (r, code, msg)
        code, msg = c.data(body)
        return code, msg


# --- IMAP clients -----------------------------------------------------------

class IMAPError(Exception):
    pass


class IMAPRaw:
    """A raw-socket IMAP client for exact protocol bytes.

    Lines are str decoded as Latin-1 (byte for byte) without their CRLF;
    a line that announces a literal {N} comes back with the N literal
    bytes and the rest of the line joined on, as one string.
    """

    def __init__(self, port, timeout=IMAP_TIMEOUT, source=None):
        """source: a local address to connect from (127.0.0.N), so that
        per-address login delays can be told apart."""
        self.sock = socket.create_connection(
            (HOST, port), timeout=timeout,
            source_address=(source, 0) if source else None)
        self.timeout = timeout
        self.buf = b""
        self.ntag = 0
        self.greeting = self.line()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise IMAPError("timeout; have %r" % self.buf[-300:])
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(1 << 16)
        except socket.timeout:
            raise IMAPError("timeout; have %r" % self.buf[-300:])
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise IMAPError("connection closed; have %r" % self.buf[-300:])
        self.buf += chunk

    def line(self, timeout=None):
        """One response line (literals joined in); IMAPError on EOF or
        timeout."""
        deadline = time.monotonic() + (timeout or self.timeout)
        out = b""
        while True:
            while b"\r\n" not in self.buf:
                self._fill(deadline)
            part, self.buf = self.buf.split(b"\r\n", 1)
            out += part
            m = re.search(rb"\{(\d+)\}$", part)
            if not m:
                return out.decode("latin-1")
            n = int(m.group(1))
            out += b"\r\n"
            while len(self.buf) < n:
                self._fill(deadline)
            out, self.buf = out + self.buf[:n], self.buf[n:]

    def tag(self):
        self.ntag += 1
        return "t%d" % self.ntag

    def read_until(self, tag, timeout=None):
        """(untagged and continuation lines, tagged line after the tag)."""
        lines = []
        while True:
            l = self.line(timeout)
            if l.startswith(tag + " "):
                return lines, l[len(tag) + 1:]
            lines.append(l)

    def cmd(self, command, timeout=None):
        """Sends one command with a fresh tag; returns read_until()."""
        t = self.tag()
        self.send("%s %s\r\n" % (t, command))
        return self.read_until(t, timeout)

    def ok(self, command, timeout=None):
        """cmd() that asserts a tagged OK; returns the untagged lines."""
        untagged, done = self.cmd(command, timeout)
        assert done.startswith("OK"), "%s -> %r %r" % (command, untagged,
                                                         done)
        return untagged

    def login(self, user, password=PASSWORD):
        return self.ok('LOGIN "%s" "%s"' % (user, password))

    def status(self, mailbox, items="MESSAGES"):
        """STATUS as {ITEM: int}; the name may come back quoted or not."""
        untagged = self.ok("STATUS %s (%s)" % (mailbox, items))
        assert len(untagged) == 1, untagged
        m = re.match(r'^\* STATUS (.+) \(([^)]*)\)$', untagged[0])
        assert m, untagged
        name = m.group(1)
        if name.startswith('"'):
            name = re.sub(r'\\(.)', r'\1', name[1:-1])
        want = mailbox.strip('"').replace('\\"', '"').replace('\\\\', '\\')
        assert name == want or name.upper() == want.upper() == "INBOX", \
            (mailbox, untagged)
        v = m.group(2).split()
        return dict(zip(v[0::2], map(int, v[1::2])))

    def append(self, mailbox, message, flags=None, date=None):
        """APPEND with a LITERAL+ literal; returns the tagged reply."""
        if isinstance(message, str):
            message = message.encode("latin-1")
        t = self.tag()
        self.send(("%s APPEND %s%s%s {%d+}\r\n" % (
            t, mailbox, " (%s)" % flags if flags is not None else "",
            ' "%s"' % date if date else "", len(message))).encode()
            + message + b"\r\n")
        untagged, done = self.read_until(t)
        assert done.startswith("OK"), "APPEND -> %r" % done
        return done

    def silent_for(self, seconds):
        """Asserts that the server says nothing for `seconds`."""
        assert self.buf == b"", "server spoke early: %r" % self.buf
        self.sock.settimeout(seconds)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return
        finally:
            self.sock.settimeout(self.timeout)
        if not data:
            raise AssertionError("server closed the connection early")
        raise AssertionError("server spoke early: %r" % data)

    def wait_closed(self, timeout=5.0):
        """Reads until EOF; returns the lines that came first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._fill(deadline)
            except IMAPError as e:
                if "closed" not in str(e):
                    raise AssertionError("connection still open: %s" % e)
                rest, self.buf = self.buf.decode("latin-1"), b""
                return [l for l in rest.split("\r\n") if l]


def parse_value(s, i=0):
    """Parses one IMAP value of s (a response line as IMAPRaw gives it)
    at i: returns (value, next i).  Lists are lists, quoted strings and
    literals are bytes, NIL is None, numbers are int, other atoms are str
    (a section such as BODY[HEADER.FIELDS (A B)]<0> is one atom)."""
    c = s[i]
    if c == "(":
        out, i = [], i + 1
        while True:
            while s[i] == " ":
                i += 1
            if s[i] == ")":
                return out, i + 1
            v, i = parse_value(s, i)
            out.append(v)
    if c == '"':
        out, i = [], i + 1
        while s[i] != '"':
            if s[i] == "\\":
                i += 1
            out.append(s[i])
            i += 1
        return "".join(out).encode("latin-1"), i + 1
    if c == "~" and s[i + 1:i + 2] == "{":  # a literal8 (BINARY)
        i, c = i + 1, "{"
    if c == "{":
        j = s.index("}", i)
        n = int(s[i + 1:j].rstrip("+"))
        assert s[j + 1:j + 3] == "\r\n", s[j:j + 3]
        return s[j + 3:j + 3 + n].encode("latin-1"), j + 3 + n
    j = i
    while j < len(s) and s[j] not in " ()":
        if s[j] == "[":
            j = s.index("]", j)
        j += 1
    atom = s[i:j]
    if atom.upper() == "NIL":
        return None, j
    if atom.isdigit():
        return int(atom), j
    return atom, j


def parse_fetch(line):
    """'* N FETCH (K V ...)' -> (N, {K upper-cased: V}); asserts that
    nothing follows the list and that no item comes twice."""
    m = re.match(r"^\* (\d+) FETCH ", line)
    assert m, "not a FETCH response: %r" % line[:200]
    items, end = parse_value(line, m.end())
    assert end == len(line), "junk after FETCH: %r" % line[end:end + 100]
    assert len(items) % 2 == 0, items
    out = {}
    for k, v in zip(items[0::2], items[1::2]):
        assert k.upper() not in out, "%s twice in %r" % (k, line[:200])
        out[k.upper()] = v
    return int(m.group(1)), out


# --- the server -------------------------------------------------------------

class Server:
    """One `mailrepd serve` process on a data dir that outlives restarts."""

    def __init__(self, tmp, data, args=(), unix=False, imap=False):
        self.tmp = Path(tmp)
        self.data = Path(data)
        self.args = [str(a) for a in args]
        self.log = self.tmp / "serve.log"
        self.port = None
        self.imap_wanted = imap
        self.imap_port = None
        self.sock_dir = tempfile.mkdtemp(prefix="mrd") if unix else None
        self.unix = os.path.join(self.sock_dir, "lmtp.sock") if unix else None
        self.proc = None
        self.log_start = 0

    def command(self):
        lmtp = "%s:%d" % (HOST, self.port)
        if self.unix:
            lmtp += ",unix:" + self.unix
        imap = ["--imap", "%s:%d" % (HOST, self.imap_port)] \
            if self.imap_port else []
        return [MAILREPD, "serve", "--data", str(self.data), "--lmtp", lmtp,
                "--name", SERVER_NAME] + imap + self.args

    def start(self, port=None):
        """Starts serve and waits until it answers on its port.  Keeps
        the port across restarts unless it was taken meanwhile."""
        assert self.proc is None
        for attempt in range(5):
            self.port = port or self.port or free_port()
            if self.imap_wanted:
                self.imap_port = self.imap_port or free_port()
            with open(self.log, "ab") as logf:
                self.log_start = logf.tell()
                self.proc = subprocess.Popen(
                    self.command(), stdin=subprocess.DEVNULL,
                    stdout=logf, stderr=logf, start_new_session=True)
            err = self._wait_ready()
            if err is None:
                return self
            in_use = "Address already in use" in self.log_text(since=True)
            self._reap()
            if not in_use or port is not None:
                pytest.fail("mailrepd serve did not become ready (%s); "
                            "log:\n%s" % (err, self.log_text()))
            self.port = self.imap_port = None
        pytest.fail("no free port for mailrepd serve")

    def _wait_ready(self):
        """Connects until a session works: greeting, QUIT, 221, EOF.
        Waiting for EOF means the probe session is gone from the count."""
        deadline = time.monotonic() + READY_DEADLINE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return "exited with status %d" % self.proc.returncode
            try:
                with LMTPClient(self.port, timeout=2) as c:
                    assert c.greeting[-1].startswith("220 ")
                    c.cmd("QUIT", "221 ")
                    c.wait_closed()
                if self.imap_port:
                    with IMAPRaw(self.imap_port, timeout=2) as c:
                        assert c.greeting.startswith("* OK"), c.greeting
                        c.cmd("LOGOUT")
                        c.wait_closed()
                return None
            except (OSError, LMTPError, IMAPError):
                time.sleep(0.02)
        return "not ready after %.0f s" % READY_DEADLINE

    def _reap(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()
        self.proc = None

    def log_text(self, since=False):
        try:
            data = self.log.read_bytes()
        except FileNotFoundError:
            return ""
        if since:
            data = data[self.log_start:]
        return data.decode("utf-8", "replace")

    def assert_clean(self):
        bad = sanitizer_report(self.log_text())
        assert bad is None, "sanitizer report in the server log:\n%s" % (
            self.log_text())

    def stop(self):
        """SIGTERM; the server must exit 0 within STOP_DEADLINE seconds
        with a clean sanitizer log."""
        if self.proc is None:
            return
        p, self.proc = self.proc, None
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                pytest.fail("mailrepd did not exit within %.0f s of "
                            "SIGTERM; log:\n%s" % (STOP_DEADLINE,
                                                   self.log_text()))
        self.assert_clean()
        assert p.returncode == 0, "mailrepd serve exited %d; log:\n%s" % (
            p.returncode, self.log_text())

    def kill9(self):
        """SIGKILL, as a power cut would."""
        p, self.proc = self.proc, None
        assert p is not None and p.poll() is None, \
            "server died on its own; log:\n%s" % self.log_text()
        p.kill()
        p.wait()
        self.assert_clean()

    def restart(self):
        self.stop()
        return self.start()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def client(self, **kw):
        return LMTPClient(self.port, **kw)

    def unix_client(self, **kw):
        return LMTPClient(path=self.unix, **kw)

    def deliver(self, sender, rcpts, body):
        return lmtp_deliver(self.port, sender, rcpts, body)

    def export(self, user, mailbox=None):
        return export(self.data, user, mailbox)

    def imap(self, user="alice", password=PASSWORD, login=True):
        """A Python imaplib client, logged in as user unless not login."""
        c = imaplib.IMAP4(HOST, self.imap_port, timeout=IMAP_TIMEOUT)
        if login:
            c.login(user, password)
        return c

    def raw(self, user="alice", password=PASSWORD, login=True, **kw):
        """An IMAPRaw client, logged in as user unless not login."""
        c = IMAPRaw(self.imap_port, **kw)
        if login:
            c.login(user, password)
        return c

    def cleanup(self):
        try:
            self.stop()
        finally:
            if self.sock_dir:
                shutil.rmtree(self.sock_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def template_data(tmp_path_factory):
    """A data dir with USERS already added, copied by each test: adding a
    user hashes its password (PBKDF2), slow under ASan."""
    d = tmp_path_factory.mktemp("template") / "data"
    for u in USERS:
        user_add(d, u)
    return d


@pytest.fixture
def server(tmp_path, template_data):
    """A factory: server(users=USERS, args=[...], start=True, unix=False)
    returns a running Server on a fresh data dir under tmp_path.  Every
    server is stopped (SIGTERM) at the end and must have been clean."""
    made = []

    def make(users=USERS, args=(), start=True, unix=False, data=None,
             imap=False):
        sub = tmp_path / ("srv%d" % len(made))
        sub.mkdir()
        if data is None:
            data = sub / "data"
            if tuple(users) == USERS:
                shutil.copytree(template_data, data)
            else:
                for u in users:
                    user_add(data, u)
        s = Server(sub, data, args, unix=unix, imap=imap)
        made.append(s)
        if start:
            s.start()
        return s

    yield make
    errors = []
    for s in made:
        try:
            s.cleanup()
        except BaseException as e:  # report every server, then fail
            errors.append(e)
    if errors:
        raise errors[0]


@pytest.fixture
def srv(server):
    """The common case: one running server with alice and bob."""
    return server()


@pytest.fixture
def imap_srv(server):
    """One running server with alice and bob, listening for IMAP too."""
    return server(imap=True)


@pytest.fixture
def rng(request):
    """A random.Random seeded from the test's name (or $MAILREPD_SEED)."""
    seed = os.environ.get("MAILREPD_SEED")
    seed = int(seed) if seed else sum(map(ord, request.node.name))
    print("random seed: %d (set MAILREPD_SEED to repeat)" % seed)
    return random.Random(seed)
