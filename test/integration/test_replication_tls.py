"""Replication channel security (issue 5): TLS-PSK between the nodes.

A relay on 127.0.0.1 sits between a replica and its master and keeps
every byte that crosses it, each way:
- Confidentiality: markers inside a message whose body deflate cannot
  shrink (random 8-bit bytes: zlib stores such blocks verbatim, so the
  old clear channel carried them as they are), the replica's name and
  the user's never appear in the relayed bytes, while the replica gets
  the message.
- Integrity: one byte flipped in the master-to-replica stream, in the
  middle of a body after the handshake, makes the replica reject the
  TLS record, log it and reconnect; it ends up with the right message
  (GUIDs, `mailrepd check`, the bytes over IMAP).
And a peer that speaks the old clear protocol gets no frame back.
"""
import hashlib
import selectors
import socket
import threading
import time

import pytest

from conftest import DOMAIN, HOST, run
from test_replication import (SYNC_DEADLINE, cluster,  # noqa: F401
                              listing, lmtp_one, secret, wait_same)

RELAY_DEADLINE = 30.0


class Relay:
    """A TCP relay from 127.0.0.1:port to target_port.  Keeps what it
    passes on: `up` (replica to master) and `down` (master to replica),
    every connection's bytes in order.  arm(ahead) flips the lowest bit
    of the byte `ahead` bytes further down the master-to-replica stream,
    once."""

    def __init__(self, target_port):
        self.target = target_port
        self.lsock = socket.socket()
        self.lsock.bind((HOST, 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.up = bytearray()
        self.down = bytearray()
        self.connections = 0
        self.flip_at = None
        self.flipped = None
        self.lock = threading.Lock()
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def arm(self, ahead):
        with self.lock:
            self.flip_at = len(self.down) + ahead

    def _pass(self, direction, data):
        """Records data (flipping the armed byte) and returns it."""
        with self.lock:
            buf = self.down if direction == "down" else self.up
            at = self.flip_at
            if direction == "down" and at is not None and \
                    self.flipped is None and \
                    len(buf) <= at < len(buf) + len(data):
                data = bytearray(data)
                data[at - len(buf)] ^= 0x01
                self.flipped = at
            buf.extend(data)
        return bytes(data)

    def run(self):
        sel = selectors.DefaultSelector()
        sel.register(self.lsock, selectors.EVENT_READ, None)
        while not self.stop:
            for key, _ in sel.select(0.1):
                if key.data is None:
                    c, _ = self.lsock.accept()
                    try:
                        u = socket.create_connection((HOST, self.target))
                    except OSError:
                        c.close()
                        continue
                    self.connections += 1
                    sel.register(c, selectors.EVENT_READ, ("up", u))
                    sel.register(u, selectors.EVENT_READ, ("down", c))
                    continue
                direction, dst = key.data
                try:
                    data = key.fileobj.recv(65536)
                except OSError:
                    data = b""
                if data:
                    try:
                        dst.sendall(self._pass(direction, data))
                        continue
                    except OSError:
                        pass
                for s in (key.fileobj, dst):
                    try:
                        sel.unregister(s)
                    except (KeyError, ValueError):
                        pass
                    s.close()
        for key in list(sel.get_map().values()):
            key.fileobj.close()

    def close(self):
        self.stop = True
        self.thread.join(5)


@pytest.fixture
def relayed(server, secret):
    """make(name) -> (master, replica, relay): the replica follows the
    master through a Relay."""
    made = []

    def make(name="replica0"):
        port = socket.socket()
        port.bind((HOST, 0))
        repl_port = port.getsockname()[1]
        port.close()
        master = server(imap=True, args=[
            "--repl-listen", "%s:%d" % (HOST, repl_port),
            "--repl-secret-file", secret])
        relay = Relay(repl_port)
        made.append(relay)
        rep = server(users=(), imap=True, args=[
            "--replicate-from", "%s:%d" % (HOST, relay.port),
            "--repl-secret-file", secret, "--name", name])
        return master, rep, relay

    yield make
    for r in made:
        r.close()


def incompressible(rng, size, tag):
    """A message whose body is random 8-bit bytes (no NUL, CR or LF) in
    lines of 990, with a line of its own every 8 KiB holding a marker:
    tag and random hex, each one different so that deflate finds no
    match for it.  Returns the message and its markers.  Deflate at
    BLOB_ZLIB_LEVEL stores most such blocks as they are, so the old
    clear channel carried most markers verbatim."""
    head = ("From: <s@remote.test>\r\nTo: <alice@%s>\r\nSubject: secret\r\n"
            "Message-ID: <%s@test>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: application/octet-stream\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n" % (DOMAIN, tag))
    alphabet = bytes(b for b in range(1, 256) if b not in (10, 13))
    out = bytearray(head.encode())
    markers = []
    while len(out) < size:
        if len(out) % (8 * 1024) < 992:
            markers.append(b"%s-%032x" % (tag.encode(),
                                          rng.getrandbits(128)))
            out += markers[-1] + b"\r\n"
        out += bytes(rng.choice(alphabet) for _ in range(990)) + b"\r\n"
    return bytes(out), markers


def fetch_body(node, uid):
    c = node.imap("alice")
    try:
        c.select("INBOX", readonly=True)
        typ, d = c.uid("FETCH", str(uid), "(BODY.PEEK[])")
        assert typ == "OK", d
        return d[0][1]
    finally:
        c.logout()


def assert_same_message(master, rep, uid, guid, body):
    """The message at uid is the delivered body (behind the trace
    headers LMTP adds), byte for byte the same over IMAP on both nodes,
    and hashes to its GUID."""
    got = fetch_body(rep, uid)
    assert got == fetch_body(master, uid)
    assert got.endswith(body) and got.startswith(b"Return-Path: ")
    assert hashlib.sha256(got).hexdigest() == guid.lower()


def inbox_uids(data):
    _, boxes, msgs = listing(data)
    inbox = next(b[2] for b in boxes if b[0] == "alice" and b[1] == "INBOX")
    return [(m[1], m[2]) for m in msgs if m[0] == inbox]


def test_nothing_crosses_in_the_clear(relayed, rng):
    name = "replica-%016x" % rng.getrandbits(64)
    master, rep, relay = relayed(name)
    body, markers = incompressible(rng, 200 * 1024, "CONFIDENTIAL")
    assert len(markers) >= 20
    assert lmtp_one(master.port, "alice@" + DOMAIN, body)[0].startswith(
        "250")
    wait_same(master, rep)
    (uid, guid), = inbox_uids(rep.data)
    assert_same_message(master, rep, uid, guid, body)
    with relay.lock:
        up, down = bytes(relay.up), bytes(relay.down)
    assert len(down) > len(body), "the body did not cross the relay"
    # Nothing said on the channel is readable on the wire...
    for what in markers + [name.encode(), b"alice", b"message.append"]:
        assert what not in up and what not in down, what
    # ...because both directions are TLS from the first byte.
    assert up[:1] == b"\x16" and down[:1] == b"\x16", (up[:8], down[:8])
    log = master.log_text()
    assert "sync.replica.connected name=%s" % name in log, log
    assert "TLS-ECDHE-PSK-WITH-CHACHA20-POLY1305-SHA256" in log, log


def test_flipped_byte_is_rejected_and_resent(relayed, rng):
    master, rep, relay = relayed()
    wait_same(master, rep)
    body, _ = incompressible(rng, 300 * 1024, "FLIP")
    # The stream is idle now: what comes next is this message's record
    # and body; flip a byte a third of the way into the body.
    relay.arm(100 * 1024)
    assert lmtp_one(master.port, "alice@" + DOMAIN, body)[0].startswith(
        "250")
    wait_same(master, rep, deadline=RELAY_DEADLINE)
    assert relay.flipped is not None
    assert relay.connections >= 2, "the replica did not reconnect"
    log = rep.log_text()
    assert "sync.tls.failed master=" in log, log
    assert "Verification of the message MAC failed" in log, log
    assert log.count("sync.streaming") >= 2, log
    (uid, guid), = inbox_uids(rep.data)
    assert inbox_uids(master.data) == [(uid, guid)]
    assert_same_message(master, rep, uid, guid, body)
    check = run("check", "--data", rep.data)
    assert check.returncode == 0, check.stdout + check.stderr
    # The master saw the connection go, and the replica come back.
    assert master.log_text().count("sync.replica.connected") >= 2


def test_clear_peer_gets_nothing(cluster):
    """A version-1 HELLO in the clear is not TLS: the master answers with
    no frame (a TLS alert at most), reads no further and says why."""
    master, _ = cluster(0)
    got = b""
    with socket.create_connection((HOST, master.repl_port), timeout=5) as c:
        c.sendall(b"H\x00\x00\x00\x21\x01" + b"\x00" * 32)
        try:
            while len(got) < 65536:
                d = c.recv(4096)
                if not d:
                    break
                got += d
        except OSError:
            pass
    assert got == b"" or got[:1] == b"\x15", got[:16]
    end = time.monotonic() + SYNC_DEADLINE
    while "sync.handshake.failed peer=" not in master.log_text() and \
            time.monotonic() < end:
        time.sleep(0.05)
    assert "sync.handshake.failed peer=" in master.log_text(), \
        master.log_text()
    assert "sync.replica.connected" not in master.log_text()
