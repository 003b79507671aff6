#!/usr/bin/env python3
"""bench/imap_fetch.py — IMAP benchmarks for mailrepd and its peers.

Standard library only.  Talks IMAP over a plain socket with a small raw
reader (it counts bytes and skips literals without parsing them), so that
the client does not dominate the timings the way imaplib's parsing would.
Only 127.0.0.1 is ever contacted.

TLS and COMPRESS (fetch and idle): --tls talks implicit TLS (IMAPS) to
--port with Python's ssl, certificate verification off (the servers'
certificates are self-signed, on 127.0.0.1), TLS 1.2 with
--tls-ciphers (default ECDHE-ECDSA-AES128-GCM-SHA256) and the P-256 group
so that every server does the same handshake; --compress sends
COMPRESS DEFLATE (RFC 4978) after LOGIN and inflates with zlib.  The
reader counts bytes after decryption and inflation (the figures are the
message bytes delivered to the client), and also reports what came off
the TLS layer still compressed (body_wire_bytes).

Modes:

  fetch      log in, SELECT a mailbox, then time
               UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE)
               UID FETCH 1:* BODY.PEEK[]
             (each --passes times) and print one JSON line with messages/s
             and MiB/s (first pass at top level, every pass under "passes").

  idle       open N connections, log in (users taken in turn), SELECT INBOX
             and IDLE (or stay selected with --no-idle, or when the server
             lacks IDLE); print one JSON line when all are ready, then hold
             them until SIGTERM/SIGINT, end of stdin (--stdin) or --hold S.

  coldstart  run a server command, measure from exec to the first accepted
             connection and to the greeting on each --port NAME=PORT (or
             to its first line on stdout with --stdout-line, as for
             `mailrepd dev --json`), stop the server (SIGTERM to its
             process group) and repeat --runs times; print one JSON line
             with the median and minimum.

Examples:
  imap_fetch.py fetch --port 1143 --user fetch --password pw
  imap_fetch.py idle --port 1143 --connections 200 --users user1,user2 \\
      --password pw --hold 30
  imap_fetch.py coldstart --port imap=1143 --port lmtp=1024 --runs 5 -- \\
      /usr/sbin/dovecot -F -c /tmp/x/dovecot.conf
"""

import argparse
import json
import os
import re
import resource
import select
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
import zlib

HOST = "127.0.0.1"
LITERAL_RE = re.compile(rb"\{(\d+)\+?\}$")
MIB = 1024.0 * 1024.0
TLS_CIPHERS = "ECDHE-ECDSA-AES128-GCM-SHA256"


def tls_context(ciphers=TLS_CIPHERS):
    """A client context for the benchmark: no verification (self-signed
    certificates on 127.0.0.1), TLS 1.2 only, one cipher suite, P-256."""
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    c.minimum_version = ssl.TLSVersion.TLSv1_2
    c.maximum_version = ssl.TLSVersion.TLSv1_2
    c.set_ciphers(ciphers)
    c.set_ecdh_curve("prime256v1")
    c.options |= ssl.OP_NO_TICKET    # full handshakes: no resumption
    return c


class ImapError(Exception):
    """A tagged NO/BAD, a BYE or an unexpected reply from the server."""


class Conn:
    """One IMAP connection with a raw, literal-aware response reader."""

    CHUNK = 1 << 20

    def __init__(self, port, timeout=120.0, tls=None):
        """Connect to 127.0.0.1:port (implicit TLS with the ssl context
        tls, when given) and read the greeting."""
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock)
        self.inflater = None     # zlib objects once COMPRESS is on
        self.deflater = None
        self.wire_in = 0         # bytes read from the (TLS) socket
        self.pending = b""       # inflated bytes not yet consumed
        self.ppos = 0
        self.buf = bytearray()
        self.pos = 0
        self.chunk = bytearray(self.CHUNK)
        self.view = memoryview(self.chunk)
        self.bytes_in = 0
        self.ntag = 0
        self.greeting = self.readline()
        if not self.greeting.startswith(b"* OK") and \
                not self.greeting.startswith(b"* PREAUTH"):
            raise ImapError("bad greeting: %r" % self.greeting[:200])

    def _fill(self):
        """Read more bytes from the socket into the buffer."""
        if self.pos:
            del self.buf[:self.pos]
            self.pos = 0
        n = self._recv_into(self.view)
        if n == 0:
            raise ImapError("connection closed by server")
        self.bytes_in += n
        self.buf += self.view[:n]

    def readline(self):
        """Return the next line without its CRLF."""
        i = self.buf.find(b"\r\n", self.pos)
        while i < 0:
            self._fill()
            i = self.buf.find(b"\r\n", self.pos)
        line = bytes(self.buf[self.pos:i])
        self.pos = i + 2
        return line

    def skip(self, n):
        """Consume n bytes (a literal) without keeping them."""
        avail = len(self.buf) - self.pos
        if n <= avail:
            self.pos += n
            return
        n -= avail
        del self.buf[:]
        self.pos = 0
        while n > 0:
            k = self._recv_into(self.view[:min(n, self.CHUNK)])
            if k == 0:
                raise ImapError("connection closed inside a literal")
            self.bytes_in += k
            n -= k

    def _recv_into(self, mv):
        """Fill mv with the next bytes of the IMAP stream (decrypted, and
        inflated once COMPRESS is on); return how many, 0 at EOF."""
        if self.inflater is None:
            n = self.sock.recv_into(mv)
            self.wire_in += n
            return n
        while self.ppos >= len(self.pending):
            if not hasattr(self, "raw"):
                self.raw = bytearray(self.CHUNK)
                self.rawview = memoryview(self.raw)
            n = self.sock.recv_into(self.rawview)
            if n == 0:
                return 0
            self.wire_in += n
            self.pending = self.inflater.decompress(self.rawview[:n])
            self.ppos = 0
        k = min(len(mv), len(self.pending) - self.ppos)
        mv[:k] = self.pending[self.ppos:self.ppos + k]
        self.ppos += k
        return k

    def compress(self):
        """COMPRESS DEFLATE (RFC 4978): after the tagged OK, both ways
        are raw deflate streams."""
        self.run("COMPRESS DEFLATE")
        if self.pos != len(self.buf):
            raise ImapError("data after COMPRESS's OK before compression")
        self.inflater = zlib.decompressobj(-15)
        self.deflater = zlib.compressobj(6, zlib.DEFLATED, -15)

    def send(self, data):
        """Send raw bytes (deflated, flushed, once COMPRESS is on)."""
        if self.deflater is not None:
            data = self.deflater.compress(data) + \
                self.deflater.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def command(self, text):
        """Send a tagged command and return its tag."""
        self.ntag += 1
        tag = b"b%d" % self.ntag
        self.send(tag + b" " + text.encode() + b"\r\n")
        return tag

    def response(self, tag, keep=True):
        """Read until the tagged reply for tag.

        Returns (fetches, literal_bytes, untagged) where fetches counts
        untagged FETCH responses, literal_bytes sums their literal sizes
        and untagged holds the first line of other short untagged
        responses (when keep).  Raises ImapError unless the reply is OK.
        """
        fetches = 0
        literal_bytes = 0
        untagged = []
        prefix = tag + b" "
        while True:
            first = self.readline()
            line = first
            # A response may continue after each literal.
            while True:
                m = LITERAL_RE.search(line)
                if not m:
                    break
                n = int(m.group(1))
                literal_bytes += n
                self.skip(n)
                line = self.readline()
            if first.startswith(b"* "):
                if b" FETCH " in first[:40]:
                    fetches += 1
                elif first.startswith(b"* BYE"):
                    raise ImapError("BYE: %r" % first[:200])
                elif keep and len(untagged) < 1000:
                    untagged.append(first)
            elif first.startswith(prefix):
                status = first[len(prefix):len(prefix) + 3]
                if status != b"OK ":
                    raise ImapError("%r" % first[:300])
                return fetches, literal_bytes, untagged
            elif first.startswith(b"+"):
                raise ImapError("unexpected continuation: %r" % first[:200])

    def run(self, text):
        """Send a command and wait for its OK; returns response()'s tuple."""
        return self.response(self.command(text))

    def close(self):
        """Close the socket without LOGOUT."""
        try:
            self.sock.close()
        except OSError:
            pass


def quote(s):
    """Return s as an IMAP quoted string."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def conn_tls(a):
    """The ssl context the options ask for, or None (plain IMAP)."""
    return tls_context(a.tls_ciphers) if a.tls else None


def login_select(port, user, password, mailbox, tls=None, compress=False):
    """Connect, log in (then COMPRESS DEFLATE when compress) and SELECT;
    return (conn, number of messages)."""
    c = Conn(port, tls=tls)
    c.run("LOGIN %s %s" % (quote(user), quote(password)))
    if compress:
        c.compress()
    _, _, untagged = c.run("SELECT %s" % quote(mailbox))
    exists = None
    for line in untagged:
        m = re.match(rb"\* (\d+) EXISTS", line)
        if m:
            exists = int(m.group(1))
    if exists is None:
        raise ImapError("SELECT gave no EXISTS")
    return c, exists


def timed(conn, text):
    """Run a command; return (seconds, fetches, literal bytes, stream
    bytes (after TLS and inflation), client CPU seconds, bytes off the
    socket (after TLS, before inflation))."""
    b0 = conn.bytes_in
    w0 = conn.wire_in
    c0 = time.process_time()
    t0 = time.perf_counter()
    fetches, lit, _ = conn.response(conn.command(text), keep=False)
    t1 = time.perf_counter()
    return (t1 - t0, fetches, lit, conn.bytes_in - b0,
            time.process_time() - c0, conn.wire_in - w0)


def rate(n, secs):
    """n per second, rounded; 0 when no time passed."""
    return round(n / secs, 1) if secs > 0 else 0.0


def mode_fetch(a):
    """The fetch benchmark; prints one JSON line."""
    conn, exists = login_select(a.port, a.user, a.password, a.mailbox,
                                tls=conn_tls(a), compress=a.compress)
    cipher = conn.sock.cipher() if a.tls else None
    if a.expect is not None and exists != a.expect:
        print("imap_fetch: %s has %d messages, expected %d"
              % (a.mailbox, exists, a.expect), file=sys.stderr)
    passes = []
    failures = 0
    for _ in range(a.passes):
        hs, hn, _, hwire, hcpu, _ = timed(
            conn, "UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE)")
        bs, bn, blit, bwire, bcpu, bsock = timed(conn, "UID FETCH 1:* BODY.PEEK[]")
        failures += (hn != exists) + (bn != exists)
        passes.append({
            "header_s": round(hs, 4),
            "header_messages": hn,
            "header_messages_per_s": rate(hn, hs),
            "header_mib_per_s": rate(hwire / MIB, hs),
            "header_client_cpu_s": round(hcpu, 3),
            "body_s": round(bs, 4),
            "body_messages": bn,
            "body_messages_per_s": rate(bn, bs),
            "body_mib_per_s": rate(blit / MIB, bs),
            "body_bytes": blit,
            "body_stream_bytes": bwire,
            "body_wire_bytes": bsock,
            "body_client_cpu_s": round(bcpu, 3),
        })
    try:
        conn.run("LOGOUT")
    except (ImapError, OSError):
        pass
    conn.close()
    out = {"messages": exists, "failures": failures,
           "tls": "%s %s" % (cipher[1], cipher[0]) if cipher else None,
           "compress": bool(a.compress)}
    out.update(passes[0])
    out["passes"] = passes
    print(json.dumps(out))
    sys.stdout.flush()
    return 1 if failures else 0


def user_list(a):
    """The users for idle mode: --users, or --user-template over 1..K."""
    if a.users:
        return a.users.split(",")
    return [a.user_template.replace("%d", str(i + 1))
            for i in range(a.user_count)]


def mode_idle(a):
    """Open and hold idle connections; prints one JSON line when ready."""
    stop = []

    def on_signal(signum, frame):
        """Remember that we were asked to stop."""
        stop.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.connections + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (min(want, hard) if hard > 0 else want, hard))

    users = user_list(a)
    tls = conn_tls(a)
    conns = []
    idling = 0
    t0 = time.perf_counter()
    try:
        for i in range(a.connections):
            if stop:
                return 1
            c = Conn(a.port, tls=tls)
            if a.no_login:
                conns.append(c)
                continue
            user = users[i % len(users)]
            _, _, caps = c.run("LOGIN %s %s" % (quote(user), quote(a.password)))
            c.run("SELECT INBOX")
            if not a.no_idle:
                if not any(b"CAPABILITY" in l for l in caps):
                    _, _, caps = c.run("CAPABILITY")
                if any(b" IDLE" in l for l in caps):
                    c.command("IDLE")
                    line = c.readline()
                    while not line.startswith(b"+"):
                        if line.startswith(b"b") or line.startswith(b"* BYE"):
                            raise ImapError("IDLE refused: %r" % line[:200])
                        line = c.readline()
                    idling += 1
            conns.append(c)
    except (ImapError, OSError) as e:
        print(json.dumps({"connections": len(conns), "idling": idling,
                          "error": str(e)}))
        sys.stdout.flush()
        for c in conns:
            c.close()
        return 1
    print(json.dumps({"connections": len(conns), "idling": idling,
                      "ready_s": round(time.perf_counter() - t0, 3)}))
    sys.stdout.flush()

    deadline = time.monotonic() + a.hold if a.hold else None
    while not stop:
        wait = 1.0
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0:
                break
            wait = min(wait, 1.0)
        fds = [sys.stdin] if a.stdin else []
        try:
            r, _, _ = select.select(fds, [], [], wait)
        except InterruptedError:
            continue
        if r and not sys.stdin.buffer.read1(4096):
            break
    for c in conns:
        c.close()
    return 0


def wait_ready(port, deadline):
    """Return (connect time, greeting time) of 127.0.0.1:port, polling
    connect every 0.5 ms; None values if the deadline passes."""
    t_conn = None
    while time.perf_counter() < deadline:
        s = socket.socket()
        try:
            s.connect((HOST, port))
        except OSError:
            s.close()
            time.sleep(0.0005)
            continue
        t_conn = time.perf_counter()
        s.settimeout(max(0.001, deadline - t_conn))
        try:
            data = s.recv(512)
        except OSError:
            data = b""
        t_greet = time.perf_counter()
        s.close()
        if data:
            return t_conn, t_greet
        return t_conn, None
    return t_conn, None


def stop_group(p):
    """SIGTERM the process group of p, SIGKILL it after 10 s, reap p."""
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()


def mode_coldstart(a):
    """Measure exec-to-accept and exec-to-greeting on every port (each
    polled by its own thread), or exec-to-first-stdout-line with
    --stdout-line; prints one JSON line."""
    if not a.cmd or a.cmd[0] != "--" or len(a.cmd) < 2:
        print("coldstart: give the server command after --", file=sys.stderr)
        return 2
    if not a.port_spec and not a.stdout_line:
        print("coldstart: give --port NAME=PORT or --stdout-line",
              file=sys.stderr)
        return 2
    cmd = a.cmd[1:]
    ports = []
    for spec in a.port_spec or []:
        name, _, num = spec.partition("=")
        ports.append((name, int(num)))
    conn_ms = {n: [] for n, _ in ports}
    greet_ms = {n: [] for n, _ in ports}
    ready_ms = []
    failures = 0
    log = open(a.log, "ab") if a.log else subprocess.DEVNULL
    for _ in range(a.runs):
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE if a.stdout_line else log,
                             stderr=log, start_new_session=True)
        try:
            deadline = t0 + a.timeout
            if a.stdout_line:
                r, _, _ = select.select([p.stdout], [], [], a.timeout)
                line = p.stdout.readline() if r else b""
                if line:
                    ready_ms.append((time.perf_counter() - t0) * 1000.0)
                else:
                    failures += 1
                continue
            results = {}

            def poll_port(name, port):
                """Thread body: wait for one port."""
                results[name] = wait_ready(port, deadline)

            threads = [threading.Thread(target=poll_port, args=np)
                       for np in ports]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if any(tg is None for _, tg in results.values()):
                failures += 1
                continue
            for name, (tc, tg) in results.items():
                conn_ms[name].append((tc - t0) * 1000.0)
                greet_ms[name].append((tg - t0) * 1000.0)
            ready_ms.append(max(tg for _, tg in results.values()) * 1000.0
                            - t0 * 1000.0)
        finally:
            stop_group(p)
            if p.stdout:
                p.stdout.close()
        time.sleep(a.pause)

    def summary(v):
        """Median and minimum of a list of milliseconds."""
        if not v:
            return None
        return {"median": round(statistics.median(v), 2),
                "min": round(min(v), 2)}

    out = {
        "runs": a.runs,
        "failures": failures,
        "ready_ms": summary(ready_ms),
        "connect_ms": {n: summary(v) for n, v in conn_ms.items()},
        "greeting_ms": {n: summary(v) for n, v in greet_ms.items()},
    }
    print(json.dumps(out))
    sys.stdout.flush()
    return 1 if failures else 0


def main():
    """Parse the command line and run the chosen mode."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default=HOST,
                    help="must be 127.0.0.1 (the only host contacted)")
    sub = ap.add_subparsers(dest="mode", required=True)

    f = sub.add_parser("fetch", help="time header fetch and body download")
    f.add_argument("--port", type=int, required=True)
    f.add_argument("--user", required=True)
    f.add_argument("--password", required=True)
    f.add_argument("--mailbox", default="INBOX")
    f.add_argument("--passes", type=int, default=1,
                   help="repeat both fetches this many times (default 1)")
    f.add_argument("--expect", type=int,
                   help="warn unless the mailbox holds this many messages")

    i = sub.add_parser("idle", help="hold N idle IMAP connections")
    i.add_argument("--port", type=int, required=True)
    i.add_argument("--connections", type=int, default=200)
    i.add_argument("--users", help="comma-separated users, used in turn")
    i.add_argument("--user-template", default="user%d")
    i.add_argument("--user-count", type=int, default=20)
    i.add_argument("--password", required=True)
    i.add_argument("--no-idle", action="store_true",
                   help="stay selected instead of issuing IDLE")
    i.add_argument("--hold", type=float, default=0,
                   help="seconds to hold (default: until signalled)")
    i.add_argument("--stdin", action="store_true",
                   help="also stop at end of standard input")
    i.add_argument("--no-login", action="store_true",
                   help="only connect (and handshake) and read the greeting")

    c = sub.add_parser("coldstart", help="exec-to-ready time of a server")
    c.add_argument("--port", dest="port_spec", action="append",
                   help="NAME=PORT to wait for (repeatable)")
    c.add_argument("--stdout-line", action="store_true",
                   help="ready when the command prints its first line")
    c.add_argument("--runs", type=int, default=5)
    c.add_argument("--timeout", type=float, default=20.0)
    c.add_argument("--pause", type=float, default=0.3,
                   help="seconds between runs")
    c.add_argument("--log", help="append the server's output to this file")
    c.add_argument("cmd", nargs=argparse.REMAINDER)

    for p in (f, i):
        p.add_argument("--tls", action="store_true",
                       help="implicit TLS (IMAPS) on --port, no verification")
        p.add_argument("--tls-ciphers", default=TLS_CIPHERS,
                       help="TLS 1.2 cipher suites to offer (OpenSSL names)")
    f.add_argument("--compress", action="store_true",
                   help="COMPRESS DEFLATE after LOGIN")
    a = ap.parse_args()
    if a.host != HOST:
        ap.error("refusing to contact %r: only 127.0.0.1 is allowed" % a.host)
    try:
        if a.mode == "fetch":
            return mode_fetch(a)
        if a.mode == "idle":
            return mode_idle(a)
        return mode_coldstart(a)
    except (ImapError, OSError) as e:
        print("imap_fetch: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
