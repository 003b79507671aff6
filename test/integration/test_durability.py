"""Durability: what got 250 survives a restart and a kill -9, byte-exact,
exactly once; `mailrepd check` passes on the store afterwards."""
import os
import random
import re
import smtplib
import threading
import time

from conftest import (DOMAIN, LMTPClient, LMTPError, check_store, dot_stuff,
                      export, make_message, stored)

ALICE = "alice@" + DOMAIN
BOB = "bob@" + DOMAIN


def test_fifty_messages_byte_exact_after_restart(srv, rng):
    """The issue's acceptance test: 50 messages of 1 KiB-100 KiB, some
    with lines starting with '.', over LMTP; restart; export; every file
    is exactly Return-Path + Delivered-To + the bytes sent, one to one."""
    sender = "acceptance@remote.test"
    sent = []
    with smtplib.LMTP("127.0.0.1", srv.port, local_hostname="client.test",
                      timeout=60) as c:
        assert c.ehlo()[0] == 250
        for i in range(50):
            size = rng.randint(1024, 100 * 1024)
            body = make_message("accept-%d" % i, size, rng, dots=i % 2 == 0)
            assert len(body) == size
            if i % 2 == 0:
                assert re.search(rb"(?m)^\.", body), "no dot line in %d" % i
            assert c.mail(sender)[0] == 250
            assert c.rcpt(ALICE)[0] == 250
            code, msg = c.data(body)
            assert code == 250, (i, code, msg)
            sent.append(body)
    srv.restart()
    got = srv.export("alice")
    assert all(m.mailbox == "INBOX" and m.flags == "" for m in got)
    expected = sorted(stored(sender, b, ALICE) for b in sent)
    assert len(got) == 50
    for m in got:
        assert m.data.startswith(b"Return-Path: <%s>\r\nDelivered-To: %s\r\n"
                                 % (sender.encode(), ALICE.encode()))
    assert sorted(m.data for m in got) == expected
    srv.stop()
    p = check_store(srv.data)
    assert p.stdout.startswith("ok: 50 messages re-hashed, 0 problems"), \
        p.stdout


def test_same_message_to_many_recipients_survives_restart(srv, rng):
    body = make_message("multi", 50000, rng)
    with srv.client() as c:
        c.lhlo()
        rr, dr = c.transaction("m@remote.test", [ALICE, BOB, "alice+Archive@"
                                                 + DOMAIN], body)
        assert all(r.startswith("250 2.0.0") for r in dr) and len(dr) == 3
    srv.restart()
    a = {m.mailbox: m.data for m in srv.export("alice")}
    assert a == {"INBOX": stored("m@remote.test", body),
                 "Archive": stored("m@remote.test", body)}
    assert [m.data for m in srv.export("bob")] == [stored("m@remote.test",
                                                          body)]
    srv.stop()
    check_store(srv.data)


class Deliverer(threading.Thread):
    """Delivers messages over one LMTP session until the server goes away.

    `attempted` holds every marker whose final dot was sent; `acked` maps
    each recipient to the markers it got 250 for.
    """

    def __init__(self, port, name, seed, bodies):
        super().__init__(daemon=True)
        self.port, self.tag = port, name
        self.rng = random.Random(seed)
        self.bodies = bodies
        self.attempted = set()
        self.acked = {ALICE: set(), BOB: set()}
        self.error = None

    def run(self):
        try:
            c = LMTPClient(self.port, timeout=15)
            c.lhlo()
        except (OSError, LMTPError):
            return
        n = 0
        try:
            while True:
                n += 1
                marker = "dur-%s-%d" % (self.tag, n)
                rcpts = [ALICE, BOB] if n % 3 == 0 else [ALICE]
                body = make_message(marker, self.rng.randint(500, 6000),
                                    self.rng, dots=n % 2 == 0)
                self.bodies[marker] = (body, rcpts)
                c.send("MAIL FROM:<d@remote.test>\r\n"
                       + "".join("RCPT TO:<%s>\r\n" % r for r in rcpts)
                       + "DATA\r\n")
                c.expect("250 2.1.0")
                for r in rcpts:
                    c.expect("250 2.1.5")
                c.expect("354 ")
                self.attempted.add(marker)
                c.send(dot_stuff(body))
                for r in rcpts:
                    reply = c.expect("")
                    if not reply.startswith("250 2.0.0 <%s>" % r):
                        self.error = "unexpected reply %r" % reply
                        return
                    self.acked[r].add(marker)
        except (OSError, LMTPError):
            return                     # the server was killed
        except AssertionError as e:
            self.error = str(e)
        finally:
            c.close()


def test_kill9_during_delivery_loses_nothing_acknowledged(server):
    seed = int(os.environ.get("MAILREPD_SEED") or time.time_ns() % 10**9)
    print("kill -9 test seed: %d (set MAILREPD_SEED to repeat)" % seed)
    rng = random.Random(seed)
    s = server()
    bodies = {}
    attempted = set()
    acked = {ALICE: set(), BOB: set()}
    rounds = 5
    for rnd in range(rounds):
        threads = [Deliverer(s.port, "r%dt%d" % (rnd, t), rng.random(),
                             bodies) for t in range(4)]
        for t in threads:
            t.start()
        # Let some mail through, then kill at a random moment.
        deadline = time.monotonic() + 10
        while sum(len(t.acked[ALICE]) for t in threads) < 3:
            assert time.monotonic() < deadline, \
                "no delivery acknowledged (seed %d); log:\n%s" % (
                    seed, s.log_text())
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 1.5))
        s.kill9()
        for t in threads:
            t.join(20)
            assert not t.is_alive(), "client thread hung (seed %d)" % seed
            assert t.error is None, "%s (seed %d)" % (t.error, seed)
            attempted |= t.attempted
            for r in acked:
                acked[r] |= t.acked[r]
        # check works on the store of a crashed server.
        check_store(s.data)
        s.start()
    s.stop()
    print("acknowledged: %d to alice, %d to bob; attempted %d" % (
        len(acked[ALICE]), len(acked[BOB]), len(attempted)))
    for rcpt, user in ((ALICE, "alice"), (BOB, "bob")):
        counts = {}
        for m in export(s.data, user):
            found = re.search(rb"\r\nmarker (dur-[a-z0-9-]+)\r\n", m.data)
            assert found, "unknown message in %s's store" % user
            marker = found.group(1).decode()
            assert marker in attempted, \
                "%s never sent, but stored (seed %d)" % (marker, seed)
            body, rcpts = bodies[marker]
            assert m.data == stored("d@remote.test", body,
                                    rcpt if len(rcpts) == 1 else None), \
                "%s stored with other bytes (seed %d)" % (marker, seed)
            counts[marker] = counts.get(marker, 0) + 1
        dup = sorted(k for k, v in counts.items() if v > 1)
        assert dup == [], "stored twice (seed %d): %s" % (seed, dup)
        lost = sorted(acked[rcpt] - set(counts))
        assert lost == [], "acknowledged but lost (seed %d): %s" % (seed,
                                                                     lost)
        assert len(acked[rcpt]) > 0
    check_store(s.data)


def test_sigterm_with_sessions_in_every_state(server):
    """SIGTERM exits at once (status 0, sanitizer-clean) whatever the
    sessions are doing; a half-received message is not stored."""
    s = server(unix=True)
    clients = []
    c = s.client()
    c.lhlo()
    c.send("MAIL FROM:<a@remote.test>\r\nRCPT TO:<%s>\r\nDATA\r\n" % ALICE)
    for p in ("250", "250", "354"):
        c.expect(p)
    c.send(b"Subject: half\r\n\r\nhalf a line")
    clients.append(c)
    c = s.client()
    c.lhlo()
    c.cmd("MAIL FROM:<a@remote.test>", "250")
    c.cmd("RCPT TO:<%s>" % BOB, "250")
    clients.append(c)
    clients.append(s.unix_client())
    c = s.client()
    c.send(b"NOOP " + b"x" * 1500)          # half a command
    clients.append(c)
    with s.client() as c:                   # all of the above is read
        c.cmd("NOOP", "250")
    t0 = time.monotonic()
    s.stop()
    assert time.monotonic() - t0 < 5
    for c in clients:
        assert c.wait_closed() == []
        c.close()
    assert not os.path.exists(s.unix), "unix socket left behind"
    s.start()
    assert s.export("alice") == [] and s.export("bob") == []


def test_restart_after_kill9_with_unix_socket(server):
    """A kill -9 leaves the unix socket file behind; the restarted server
    replaces it and serves on both listeners, with the mail kept."""
    s = server(unix=True)
    body = b"Subject: before the crash\r\n\r\nkept\r\n"
    with s.unix_client() as c:
        c.lhlo()
        _, dr = c.transaction("u@remote.test", [ALICE], body)
        assert dr[0].startswith("250 2.0.0")
    s.kill9()
    assert os.path.exists(s.unix)
    check_store(s.data)
    s.start()
    with s.unix_client() as c:
        c.lhlo()
        _, dr = c.transaction("u@remote.test", [ALICE], body)
        assert dr[0].endswith(" UID 2"), dr
    assert [m.data for m in s.export("alice")] == [
        stored("u@remote.test", body, ALICE)] * 2


def test_idle_server_does_not_hold_the_write_lock(srv):
    """No write transaction stays open across the event loop's wait: a
    second process (an admin command, a backup) gets the store's write
    lock at once, also right after the periodic log purge."""
    import sqlite3
    db = sqlite3.connect(str(srv.data / "mailrepd.db"), timeout=0,
                         isolation_level=None)
    longest = streak = 0.0
    end = time.monotonic() + 12
    while time.monotonic() < end:
        t0 = time.monotonic()
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
            streak = 0.0
        except sqlite3.OperationalError:
            streak += time.monotonic() - t0 + 0.02
            longest = max(longest, streak)
        time.sleep(0.02)
    db.close()
    assert longest < 0.5, "write lock held for %.2f s" % longest
