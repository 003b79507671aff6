"""The loop's bounds under clients and processes that push against them:
another process holding SQLite's write lock stalls no one (the command
that needs the lock waits for it, the others go on), half-done TLS
handshakes on one listener leave the others working, per-address
connection limits, a global budget for queued output, messages per
mailbox, and a full disk that still lets users free space."""
import sqlite3
import threading
import time

from conftest import LMTPClient

LOCK_HOLD = 3.0


def hold_write_lock(data, seconds, held):
    """Holds the store's write lock from this (another) process."""
    con = sqlite3.connect(str(data / "mailrepd.db"), timeout=10,
                          isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    held.set()
    time.sleep(seconds)
    con.execute("COMMIT")
    con.close()


def test_write_lock_held_elsewhere_stalls_no_one(server):
    srv = server(imap=True)
    srv.deliver("a@remote.test", ["alice@example.com"],
                b"Subject: one\r\n\r\nhi\r\n")
    writer = srv.raw()
    writer.ok("SELECT INBOX")
    probe = srv.raw(user="bob")
    held = threading.Event()
    t = threading.Thread(target=hold_write_lock,
                         args=(srv.data, LOCK_HOLD, held))
    t.start()
    try:
        assert held.wait(10)
        lmtp = LMTPClient(srv.port)
        lmtp.cmd("LHLO x", "250")
        lmtp.cmd("MAIL FROM:<a@remote.test>", "250")
        lmtp.cmd("RCPT TO:<bob@example.com>", "250")
        lmtp.cmd("DATA", "354")
        start = time.monotonic()
        tag = writer.tag()
        writer.send("%s STORE 1 +FLAGS (\\Flagged)\r\n" % tag)
        lmtp.send(b"Subject: two\r\n\r\nhi\r\n.\r\n")
        worst = 0.0
        while time.monotonic() - start < LOCK_HOLD - 0.5:
            t0 = time.monotonic()
            probe.ok("NOOP")
            worst = max(worst, time.monotonic() - t0)
            time.sleep(0.02)
        assert worst < 1.0, "a NOOP took %.2f s while the lock was held " \
            "elsewhere" % worst
        untagged, done = writer.read_until(tag, timeout=30)
        assert done.startswith("OK"), done
        assert time.monotonic() - start >= LOCK_HOLD - 0.5
        lmtp.expect("250", timeout=30)
        lmtp.close()
    finally:
        t.join()
        writer.close()
        probe.close()
    with srv.raw() as c:
        c.ok("SELECT INBOX")
        assert "\\Flagged" in " ".join(c.ok("FETCH 1 FLAGS"))
