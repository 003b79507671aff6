"""A scripted replication peer that speaks mailrepd's protocol over the
real TLS-PSK channel, for the hostile-peer tests.

Python's ssl module has no TLS-PSK on every version this runs on, so the
TLS end is `openssl s_client` (a scripted replica) or `openssl s_server`
(a scripted master) with the key mailrepd derives from the secret file
(HKDF-SHA256, sync.h's SYNC_PSK_INFO), the identity and the only cipher
suite mailrepd offers.  Their stdin and stdout carry the clear bytes:
frames (type, 4-byte big-endian length, payload) that this module
encodes and decodes as sync_chan.c does.
"""
import hashlib
import hmac
import os
import re
import selectors
import sqlite3
import struct
import subprocess
import threading
import time
import zlib

from conftest import HOST, free_port


def _sync_h():
    """The protocol's constants as sync.h defines them, so the scripted
    peers speak the version and frame types of the binary under test."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "..", "..", "sync.h")
    with open(path) as f:
        text = f.read()
    frames = {m.group(1): ord(m.group(2)) for m in
              re.finditer(r"^#define\s+SF_(\w+)\s+'(.)'", text, re.M)}
    nums = {m.group(1): int(m.group(2)) for m in
            re.finditer(r"^#define\s+SYNC_(\w+)\s+(\d+)\b", text, re.M)}
    strs = {m.group(1): m.group(2) for m in
            re.finditer(r'^#define\s+SYNC_(\w+)\s+"([^"]*)"', text, re.M)}
    return frames, nums, strs


_FRAMES, _NUMS, _STRS = _sync_h()
PSK_IDENTITY = _STRS["PSK_IDENTITY"]
PSK_INFO = _STRS["PSK_INFO"].encode()
CIPHER = "ECDHE-PSK-CHACHA20-POLY1305"
VERSION = _NUMS["VERSION"]
HDR = _NUMS["HDR_LEN"]
MAX_FRAME = 64 * 1024 + 1024
NODE_ID_LEN, EPOCH_LEN, HASH_LEN, MAILBOX_ID_LEN = 16, 8, 32, 16
FRAME_DEADLINE = 15.0
BODY_CHUNK = 32 * 1024		# a DATA frame's body bytes, as a master sends

# Frame types (sync.h).
(HELLO, START, REFUSE, RECORD, DATA, END, ACK, PING) = (_FRAMES[n] for n in (
    "HELLO", "START", "REFUSE", "RECORD", "DATA", "END", "ACK", "PING"))
(RECONCILE, INV_MAILBOX, INV_END, INV_WANT, INV_MSGS) = (
    _FRAMES[n] for n in ("RECONCILE", "INV_MAILBOX", "INV_END", "INV_WANT",
                         "INV_MSGS"))
PULL, PUSH, PUSH_DATA, RELOCATE, EXPUNGED, NEVER_HELD = (
    _FRAMES[n] for n in ("PULL", "PUSH", "PUSH_DATA", "RELOCATE",
                         "EXPUNGED", "NEVER_HELD"))

REASONS = ("client", "operator", "move", "renumber", "reconcile")


def psk_hex(secret):
    """The TLS-PSK key of a secret line: HKDF-SHA256 without salt."""
    prk = hmac.new(b"\0" * 32, secret.encode(), hashlib.sha256).digest()
    return hmac.new(prk, PSK_INFO + b"\x01", hashlib.sha256).hexdigest()


def frame(ftype, payload=b""):
    return bytes([ftype]) + struct.pack(">I", len(payload)) + payload


def u64(v):
    return struct.pack(">Q", v)


def string(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">H", len(b)) + b


def head(node_id, epoch, pos, log_hash=b"\0" * HASH_LEN):
    """START and RECONCILE: node id, epoch, position, hash there."""
    return node_id + epoch + u64(pos) + log_hash


def record(seq, kind, user="", mailbox=None, uid=0, guid=None, flags=0,
           keywords="", name="", value="", body_size=None, reason="client",
           internaldate=1700000000, modseq=0):
    """One log record as sync_rec_encode() writes it."""
    bits = (1 if mailbox else 0) | (2 if guid else 0) | \
        (4 if body_size is not None else 0)
    out = u64(seq) + u64(int(time.time())) + string(kind)
    out += bytes([REASONS.index(reason), bits]) + string(user)
    if mailbox:
        out += mailbox
    out += u64(uid)
    if guid:
        out += guid
    out += u64(modseq) + u64(flags) + string(keywords) + u64(internaldate)
    out += string(name) + string(value)
    if body_size is not None:
        out += u64(body_size)
    return out


def push(mailbox, uid, body, size=None, guid=None, above=None):
    """A replica's PUSH of its copy at uid; above is its UIDNEXT (by
    default uid + 1: the copy is its newest message)."""
    return (mailbox + u64(uid) + (guid or hashlib.sha256(body).digest()) +
            u64(0) + u64(1700000000) + u64(len(body) if size is None
                                            else size) +
            string("") + u64(uid + 1 if above is None else above))


def parse_hello(p):
    """A replica's HELLO as a dict."""
    d = {"version": p[0], "node_id": p[1:17], "has_master": p[17],
         "master_id": p[18:34], "epoch": p[34:42]}
    d["applied"] = struct.unpack(">Q", p[42:50])[0]
    d["hash"] = p[50:82]
    n = struct.unpack(">H", p[82:84])[0]
    d["name"] = p[84:84 + n].decode()
    return d


class TLSPeer:
    """One openssl process: `client` connects to port (a scripted
    replica), `server` listens on it (a scripted master, one connection
    after another on the same process).  What the far end sends piles up
    in self.buf; read_frame() takes frames off it."""

    def __init__(self, secret, port, role):
        args = ["openssl", "s_client" if role == "client" else "s_server"]
        if role == "client":
            args += ["-connect", "%s:%d" % (HOST, port)]
        else:
            args += ["-accept", "%s:%d" % (HOST, port), "-nocert"]
        args += ["-psk", psk_hex(secret), "-psk_identity", PSK_IDENTITY,
                 "-tls1_2", "-cipher", CIPHER, "-quiet"]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.buf = bytearray()
        self.err = bytearray()
        self.eof = False
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ, self.buf)
        sel.register(self.proc.stderr, selectors.EVENT_READ, self.err)
        open_ = 2
        while open_:
            for key, _ in sel.select():
                data = os.read(key.fileobj.fileno(), 65536)
                with self.cond:
                    if not data:
                        sel.unregister(key.fileobj)
                        open_ -= 1
                        if key.data is self.buf:
                            self.eof = True
                    key.data.extend(data)
                    self.cond.notify_all()

    def send(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send_frame(self, ftype, payload=b""):
        self.send(frame(ftype, payload))

    def read_frame(self, deadline=FRAME_DEADLINE, skip_pings=True):
        """The next frame (type, payload); AssertionError on timeout or
        end of stream."""
        end = time.monotonic() + deadline
        with self.cond:
            while True:
                if len(self.buf) >= HDR:
                    n = struct.unpack(">I", self.buf[1:5])[0]
                    if len(self.buf) >= HDR + n:
                        t, p = self.buf[0], bytes(self.buf[HDR:HDR + n])
                        del self.buf[:HDR + n]
                        if t == PING and skip_pings:
                            continue
                        return t, p
                left = end - time.monotonic()
                assert not self.eof, "the peer closed the connection"
                assert left > 0, "no frame within %.0f s" % deadline
                self.cond.wait(left)

    def closed(self, deadline=FRAME_DEADLINE):
        """Waits until the far end closes (client: the process's stdout
        ends); True when it did."""
        end = time.monotonic() + deadline
        with self.cond:
            while not self.eof and time.monotonic() < end:
                self.cond.wait(end - time.monotonic())
            return self.eof

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.thread.join(5)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass


class Deflater:
    """One end's zlib stream: every item is flushed (Z_SYNC_FLUSH), as
    chan_send_deflated() does."""

    def __init__(self):
        self.z = zlib.compressobj()

    def __call__(self, data):
        return self.z.compress(data) + self.z.flush(zlib.Z_SYNC_FLUSH)


def query(data, sql, args=()):
    """Every row of sql (with args) on the store, opened read-only."""
    db = sqlite3.connect("file:%s/mailrepd.db?mode=ro" % data, uri=True,
                         timeout=10)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def messages(data):
    """(uid, guid hex) of every message the store holds."""
    return query(data, "SELECT m.uid, hex(b.guid) FROM message m "
                 "JOIN blob b ON b.id = m.blob_id ORDER BY m.uid")


def wait_messages(data, settled, deadline=FRAME_DEADLINE):
    """Polls messages(data) until settled(list) holds; returns the list.
    A log line comes before the loop commits what it reports, so a test
    that reads the store after one waits for the commit this way."""
    end = time.monotonic() + deadline
    while True:
        got = messages(data)
        if settled(got):
            return got
        assert time.monotonic() < end, "store never settled: %r" % (got,)
        time.sleep(0.05)


class ScriptedMaster:
    """A master that the test scripts frame by frame."""

    def __init__(self, port, secret):
        self.tls = TLSPeer(secret, port, "server")
        self.node_id = os.urandom(16)
        self.epoch = os.urandom(8)
        self.pos = 0
        self.mailbox = os.urandom(16)
        self.z = None

    def accept(self, deadline=20.0):
        """The replica's next HELLO (leftovers of the last connection
        are dropped)."""
        while True:
            t, p = self.tls.read_frame(deadline)
            if t == HELLO:
                self.z = Deflater()
                return parse_hello(p)

    def start(self, hello):
        assert hello["applied"] == self.pos, hello
        self.tls.send_frame(START, head(self.node_id, self.epoch,
                                        self.pos))

    def record(self, kind, body=None, seq=None, **kw):
        """Sends one record (the next position unless seq), and its
        body in DATA frames of BODY_CHUNK bytes."""
        seq = seq or self.pos + 1
        if body is not None:
            kw.setdefault("guid", hashlib.sha256(body).digest())
            kw["body_size"] = len(body)
        self.tls.send_frame(RECORD, self.z(record(seq, kind, **kw)))
        for i in range(0, len(body or b""), BODY_CHUNK):
            self.tls.send_frame(DATA, self.z(body[i:i + BODY_CHUNK]))
        return seq

    def batch(self, *recs):
        """Sends records (kind, kwargs) as one batch; waits for its ACK."""
        seq = self.pos
        for kind, kw in recs:
            seq = self.record(kind, seq=seq + 1, **kw)
        self.tls.send_frame(END, u64(seq) + b"\0" * 32)
        t, p = self.tls.read_frame()
        assert (t, p) == (ACK, u64(seq)), (t, p)
        self.pos = seq

    def passwd(self):
        """A harmless good batch: alice's password again."""
        self.batch(("user.passwd", dict(user="alice", value="x")))

    def reconcile(self):
        """RECONCILE at this master's position; returns the frames of
        the replica's inventory, up to and without its INV_END."""
        self.tls.send_frame(RECONCILE, head(self.node_id, self.epoch,
                                            self.pos))
        inventory = []
        while True:
            t, p = self.tls.read_frame()
            if t == INV_END:
                return inventory
            inventory.append((t, p))

    def reconciled(self):
        """START after the comparison: the replica commits the position
        and acknowledges it (ACK of START's position)."""
        self.tls.send_frame(START, head(self.node_id, self.epoch,
                                        self.pos))
        t, p = self.tls.read_frame()
        assert (t, p) == (ACK, u64(self.pos)), (t, p)


def scripted_master_for(start, secret, name="r0"):
    """A ScriptedMaster on a free port and the node start(args) starts
    as its replica (args name the master, secret, the file of the
    replication secret, and name): (master, node).  The master has not
    read the node's HELLO yet."""
    port = free_port()
    with open(secret) as f:
        m = ScriptedMaster(port, f.read().strip())
    try:
        node = start(["--replicate-from", "%s:%d" % (HOST, port),
                      "--repl-secret-file", str(secret), "--name", name])
    except BaseException:
        m.tls.close()
        raise
    return m, node


class ScriptedReplica:
    """A replica that the test scripts frame by frame."""

    def __init__(self, secret, port, name="hostile"):
        self.tls = TLSPeer(secret, port, "client")
        self.node_id = os.urandom(16)
        self.name = name

    def hello(self, version=VERSION, extra=b"", follows=None, applied=0,
              log_hash=b"\0" * 32):
        """HELLO; follows is (master node id, epoch) when it names the
        log it applied up to applied, whose hash there is log_hash."""
        master = b"\1" + follows[0] + follows[1] if follows else \
            b"\0" * 25
        p = bytes([version]) + self.node_id + master + u64(applied) + \
            log_hash + string(self.name) + extra
        self.tls.send_frame(HELLO, p)

    def reconciling(self):
        """HELLO as a new node; after the master's RECONCILE, the empty
        inventory.  Returns self."""
        self.hello()
        t, _ = self.tls.read_frame()
        assert t == RECONCILE, t
        self.tls.send_frame(INV_END)
        return self

    def until_start(self, answer=None):
        """Acknowledges every batch of the comparison and returns the
        position of the START that ends it, unacknowledged; answer(t, p)
        takes the other frames (records and bodies are dropped)."""
        while True:
            t, p = self.tls.read_frame()
            if t == START:
                return struct.unpack(">Q", p[24:32])[0]
            if t == END:
                self.tls.send_frame(ACK, p[:8])
            elif answer is not None and t not in (RECORD, DATA):
                answer(t, p)

    def close(self):
        self.tls.close()


def wait_log(server, pattern, since=0, deadline=FRAME_DEADLINE):
    """Waits until the server's log holds pattern after offset since;
    returns the log text from since."""
    end = time.monotonic() + deadline
    while True:
        text = server.log_text()[since:]
        if pattern in text:
            return text
        assert time.monotonic() < end, "no %r in the log:\n%s" % (
            pattern, text[-4000:])
        time.sleep(0.05)
