"""Limits and failures: message size, long lines, idle timeout, the
connection cap, storage failure.  Errors found in DATA are answered after
the final dot, once per recipient, and the session goes on."""
import os
import time

import pytest

from conftest import DOMAIN, dot_stuff, run_ok, stored

ALICE = "alice@" + DOMAIN
BOB = "bob@" + DOMAIN
BODY = b"Subject: small\r\n\r\nsmall message\r\n"


def open_data(c, rcpts, sender="s@remote.test"):
    c.send("MAIL FROM:<%s>\r\n" % sender
           + "".join("RCPT TO:<%s>\r\n" % r for r in rcpts) + "DATA\r\n")
    c.expect("250 2.1.0")
    for _ in rcpts:
        c.expect("250 2.1.5")
    c.expect("354 ")


def deliver_ok(c, body=BODY, rcpt=ALICE):
    rr, dr = c.transaction("s@remote.test", [rcpt], body)
    assert dr[0].startswith("250 2.0.0"), dr


def test_oversize_message_refused_after_dot(server):
    s = server(args=["--max-message-size", "20000"])
    big = b"Subject: big\r\n\r\n" + (b"x" * 98 + b"\r\n") * 300  # ~30 KB
    with s.client() as c:
        c.lhlo()
        open_data(c, [ALICE, BOB])
        c.send(dot_stuff(big)[:-3])          # all but the final dot
        c.silent_for(0.5)                    # never an early reply
        c.send(b".\r\n")
        assert c.expect("552 5.3.4").startswith("552 5.3.4 <%s>" % ALICE)
        assert c.expect("552 5.3.4").startswith("552 5.3.4 <%s>" % BOB)
        # The session goes on, and a message under the limit is stored.
        small = b"Subject: fits\r\n\r\n" + b"y" * 15000 + b"\r\n"
        deliver_ok(c, small)
    assert s.export("bob") == []
    assert [m.data for m in s.export("alice")] == [
        stored("s@remote.test", small, ALICE)]


def test_oversize_message_far_over_limit(server):
    """Several MB against a 20000-byte limit: read and dropped, not
    buffered; one 552 per recipient; then the session works."""
    s = server(args=["--max-message-size", "20000"])
    line = b"z" * 1000 + b"\r\n"
    with s.client(timeout=60) as c:
        c.lhlo()
        open_data(c, [ALICE])
        for _ in range(40):
            c.send(line * 100)               # 4 MB in all
        c.silent_for(0.2)
        c.send(b".\r\n")
        c.expect("552 5.3.4 <%s>" % ALICE)
        deliver_ok(c)
    assert len(s.export("alice")) == 1


def test_long_data_line_refused_after_dot(srv):
    body = (b"Subject: long line\r\n\r\nbefore\r\n" + b"L" * 70000
            + b"\r\nafter\r\n")
    with srv.client() as c:
        c.lhlo()
        open_data(c, [ALICE, BOB])
        c.send(dot_stuff(body)[:-3])
        c.silent_for(0.5)
        c.send(b".\r\n")
        r1, r2 = c.expect("5"), c.expect("5")
        assert r1.startswith("554 5.6.0 <%s>" % ALICE), r1
        assert r2.startswith("554 5.6.0 <%s>" % BOB), r2
        deliver_ok(c)
        c.cmd("QUIT", "221")
    assert srv.export("bob") == []
    assert [m.data for m in srv.export("alice")] == [
        stored("s@remote.test", BODY, ALICE)]


def test_very_long_data_line_with_dot_right_after(srv):
    """A 300 KB line, the final dot straight after it: the dot is still
    seen; nothing is stored."""
    with srv.client() as c:
        c.lhlo()
        open_data(c, [ALICE])
        c.send(b"Subject: x\r\n\r\n" + b"Q" * 300000 + b"\r\n.\r\n")
        c.expect("554 5.6.0 <%s>" % ALICE)
        c.cmd("NOOP", "250 2.0.0")
    assert srv.export("alice") == []


def test_data_line_at_the_limit_is_accepted(srv):
    """64 KiB per line, CRLF included, is allowed."""
    line = b"A" * (64 * 1024 - 2)
    body = b"Subject: wide\r\n\r\n" + line + b"\r\n"
    with srv.client() as c:
        c.lhlo()
        deliver_ok(c, body)
    assert [m.data for m in srv.export("alice")] == [
        stored("s@remote.test", body, ALICE)]


def test_long_command_line_is_500_and_session_continues(srv):
    with srv.client() as c:
        c.lhlo()
        c.send(b"NOOP " + b"x" * 5000 + b"\r\nNOOP\r\n")
        c.expect("500 5.5.2")
        c.expect("250 2.0.0")
        # Split over several writes, and inside a transaction.
        c.cmd("MAIL FROM:<s@remote.test>", "250 2.1.0")
        c.send(b"RCPT TO:<" + b"a" * 3000)
        time.sleep(0.2)
        c.send(b"b" * 3000)
        time.sleep(0.2)
        c.send(b"@example.com>\r\nRCPT TO:<%s>\r\nDATA\r\n" % ALICE.encode())
        c.expect("500 5.5.2")
        c.expect("250 2.1.5")
        c.expect("354")
        c.send(dot_stuff(BODY))
        c.expect("250 2.0.0")
    assert [m.data for m in srv.export("alice")] == [
        stored("s@remote.test", BODY, ALICE)]


def test_command_line_at_the_limit_is_accepted(srv):
    """2048 bytes, CRLF included, is still a command."""
    with srv.client() as c:
        c.lhlo()
        c.cmd("NOOP " + "n" * (2048 - 7), "250 2.0.0")


def test_idle_timeout(server):
    s = server(args=["--idle-timeout", "1"])
    with s.client() as c:
        c.lhlo()
        t0 = time.monotonic()
        c.expect("421 4.4.2", timeout=6)
        assert c.wait_closed() == []
        assert time.monotonic() - t0 < 5
    # An active session is not cut off early: keep talking for 3 s.
    with s.client() as c:
        c.lhlo()
        for _ in range(5):
            time.sleep(0.5)
            c.cmd("NOOP", "250 2.0.0")


def test_idle_timeout_mid_data(server):
    """A client that stalls in the middle of DATA is cut off too, and the
    half-sent message is not stored."""
    s = server(args=["--idle-timeout", "1"])
    with s.client() as c:
        c.lhlo()
        open_data(c, [ALICE])
        c.send(b"Subject: stalled\r\n\r\nhalf a mess")
        c.expect("421 4.4.2", timeout=6)
        assert c.wait_closed() == []
    assert s.export("alice") == []


def test_max_connections(server):
    s = server(args=["--max-connections", "2"])
    c1, c2 = s.client(), s.client()
    try:
        with s.client() as c3:
            assert c3.greeting == [
                "421 4.3.2 Too many connections, try again later"]
            assert c3.wait_closed() == []
        # The two admitted sessions work.
        c1.lhlo()
        c2.lhlo()
        c1.cmd("QUIT", "221")
        c1.wait_closed()
        # A freed slot is reused.
        deadline = time.monotonic() + 5
        while True:
            with s.client() as c4:
                if c4.greeting[0].startswith("220 "):
                    c4.lhlo()
                    break
            assert time.monotonic() < deadline, "slot never freed"
            time.sleep(0.05)
    finally:
        c1.close()
        c2.close()


def test_storage_failure_is_451_and_nothing_stored(srv):
    """With the spool directory unusable, DATA gets 451 4.3.0; once it is
    back, delivery works and nothing half-written shows up."""
    tmpdir = srv.data / "tmp"
    if tmpdir.is_dir():
        os.rmdir(tmpdir)
    tmpdir.write_text("not a directory\n")
    try:
        with srv.client() as c:
            c.lhlo()
            c.send("MAIL FROM:<s@remote.test>\r\nRCPT TO:<%s>\r\nDATA\r\n"
                   % ALICE)
            c.expect("250 2.1.0")
            c.expect("250 2.1.5")
            c.expect("451 4.3.0")
            c.cmd("RSET", "250")
            tmpdir.unlink()
            tmpdir.mkdir()
            deliver_ok(c)
    finally:
        if tmpdir.is_file():
            tmpdir.unlink()
    assert [m.data for m in srv.export("alice")] == [
        stored("s@remote.test", BODY, ALICE)]


def test_client_vanishing_mid_data_stores_nothing(srv):
    with srv.client() as c:
        c.lhlo()
        open_data(c, [ALICE])
        c.send(b"Subject: cut\r\n\r\n" + b"x" * 10000)
    with srv.client() as c:
        c.lhlo()
        open_data(c, [ALICE])
        c.send(b"Subject: cut\r\n\r\nline\r\n")   # no final dot
    with srv.client() as c:                       # a sync point
        c.lhlo()
        deliver_ok(c)
    assert [m.data for m in srv.export("alice")] == [
        stored("s@remote.test", BODY, ALICE)]


def test_too_many_recipients(srv):
    rcpt = "RCPT TO:<%s>\r\n" % ALICE
    with srv.client(timeout=60) as c:
        c.lhlo()
        c.send("MAIL FROM:<s@remote.test>\r\n" + rcpt * 1001 + "DATA\r\n")
        c.expect("250 2.1.0")
        for _ in range(1000):
            c.expect("250 2.1.5")
        c.expect("452 4.5.3")
        c.expect("354 ")
        c.send(dot_stuff(BODY))
        uids = [int(c.expect("250 2.0.0 <%s>" % ALICE).rsplit(" ", 1)[1])
                for _ in range(1000)]
        assert uids == list(range(1, 1001))
        c.cmd("NOOP", "250 2.0.0")
    got = srv.export("alice")
    assert len(got) == 1000 and {m.data for m in got} == {
        stored("s@remote.test", BODY)}


def test_recipient_deleted_during_transaction(srv):
    """A recipient whose user is deleted between RCPT and the final dot
    gets a temporary failure; the others get their 250."""
    with srv.client() as c:
        c.lhlo()
        open_data(c, [ALICE, BOB])
        run_ok("user", "del", "alice", "--data", srv.data)
        c.send(dot_stuff(BODY))
        assert c.expect("4").startswith("450 4.2.0 <%s>" % ALICE)
        c.expect("250 2.0.0 <%s>" % BOB)
        c.cmd("NOOP", "250 2.0.0")
    assert [m.data for m in srv.export("bob")] == [stored("s@remote.test",
                                                          BODY)]


def test_long_data_line_whose_crlf_straddles_the_limit(srv):
    """A 65535-byte line: its CR is the 65536th byte, its LF the next.
    The final dot right after it must still end the data."""
    with srv.client() as c:
        c.lhlo()
        open_data(c, [ALICE])
        c.send(b"X" * 65535 + b"\r\n.\r\nNOOP\r\n")
        c.expect("554 5.6.0 <%s>" % ALICE, timeout=3)
        c.expect("250 2.0.0", timeout=3)


def test_message_of_exactly_the_advertised_size_is_accepted(server):
    s = server(args=["--max-message-size", "20000"])
    head = b"Subject: exactly at the limit\r\n\r\n"
    body = head + b"s" * (20000 - len(head) - 2) + b"\r\n"
    assert len(body) == 20000
    with s.client() as c:
        assert "SIZE 20000" in c.lhlo()
        c.cmd("MAIL FROM:<s@remote.test> SIZE=20000", "250 2.1.0")
        c.cmd("RCPT TO:<%s>" % ALICE, "250 2.1.5")
        c.cmd("DATA", "354")
        c.send(dot_stuff(body))
        c.expect("250 2.0.0")
