"""Graceful drain (issue 6): SIGQUIT, `mailrepd drain`, `mailrepd promote`.

SIGQUIT closes the listeners at once; an idle IMAP session (in IDLE) gets
BYE; an LMTP transaction in the middle of DATA finishes with 250 and then
gets 421; the exit status is 0 when every replica has everything, 3 when
a known replica is behind (the log names it), 4 when the timeout cut a
session off, 5 when a second SIGQUIT cut the drain short.
"""
import os
import signal
import socket
import time

import pytest

from conftest import DOMAIN, HOST, MAILREPD, LMTPClient, LMTPError, run
from test_replication import (cluster, lmtp_one, message,  # noqa: F401
                              secret, wait_same)

DRAIN_DEADLINE = 15.0


def wait_exit(s, deadline=DRAIN_DEADLINE):
    """Waits for the server to exit on its own; returns its status."""
    p, s.proc = s.proc, None
    p.wait(deadline)
    s.assert_clean()
    return p.returncode


def quit_and_wait(s, deadline=DRAIN_DEADLINE):
    s.proc.send_signal(signal.SIGQUIT)
    return wait_exit(s, deadline)


def mid_data(port):
    """An LMTP client stopped in the middle of DATA."""
    c = LMTPClient(port)
    c.lhlo()
    c.cmd("MAIL FROM:<s@remote.test>", "250")
    c.cmd("RCPT TO:<alice@%s>" % DOMAIN, "250")
    c.cmd("DATA", "354")
    c.send("Subject: drain\r\n\r\nfirst half\r\n")
    return c


def refused(port):
    try:
        socket.create_connection((HOST, port), timeout=1).close()
    except OSError:
        return True
    return False


def test_pid_file_written_and_removed(server):
    s = server()
    pid = int((s.data / "mailrepd.pid").read_text())
    assert pid == s.proc.pid
    assert quit_and_wait(s) == 0
    assert not (s.data / "mailrepd.pid").exists()
    assert (s.data / "mailrepd.exit").read_text().strip() == "0"


@pytest.mark.serial
def test_idle_gets_bye_mid_data_finishes_then_421(server):
    s = server(imap=True)
    idle = s.raw("alice")
    idle.ok("SELECT INBOX")
    idle.send("i1 IDLE\r\n")
    assert idle.line().startswith("+")
    lmtp = mid_data(s.port)
    t0 = time.monotonic()
    s.proc.send_signal(signal.SIGQUIT)
    assert idle.line(timeout=5).startswith("* BYE")
    idle.wait_closed()
    deadline = time.monotonic() + 2
    while not refused(s.port) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert refused(s.port), "listener still open after SIGQUIT"
    assert time.monotonic() - t0 < 1.0
    lmtp.send("second half\r\n.\r\n")
    assert lmtp.expect("250", timeout=5)
    assert lmtp.expect("421", timeout=5).startswith("421 4.3.2")
    lmtp.wait_closed()
    lmtp.close()
    assert wait_exit(s) == 0
    log = s.log_text()
    for step in ("drain.start", "drain.sessions", "drain.replicas",
                 "drain.checkpoint", "drain.done"):
        assert step in log, log
    assert len(s.export("alice")) == 1


def test_idle_lmtp_session_gets_421(server):
    s = server()
    c = LMTPClient(s.port)
    c.lhlo()
    s.proc.send_signal(signal.SIGQUIT)
    assert c.expect("421", timeout=5).startswith("421 4.3.2")
    c.close()
    assert wait_exit(s) == 0


def test_timeout_cuts_off_stuck_session(server):
    s = server(args=["--drain-timeout", "1"])
    c = mid_data(s.port)
    t0 = time.monotonic()
    assert quit_and_wait(s) == 4
    assert time.monotonic() - t0 < 5
    assert "drain.timeout" in s.log_text()
    c.close()


@pytest.mark.serial
def test_second_sigquit_exits_at_once(server):
    s = server()
    c = mid_data(s.port)
    s.proc.send_signal(signal.SIGQUIT)
    time.sleep(0.2)
    t0 = time.monotonic()
    assert quit_and_wait(s, 3) == 5
    assert time.monotonic() - t0 < 1.0
    c.close()


def test_shutdown_commands_run_in_order(server, tmp_path):
    out = tmp_path / "ran"
    s = server(args=["--shutdown-command", "echo one >> %s" % out,
                     "--shutdown-command", "echo two >> %s; exit 3" % out])
    assert quit_and_wait(s) == 0
    assert out.read_text() == "one\ntwo\n"
    assert "status=3" in s.log_text()


def test_drain_command_reports_status(server):
    s = server()
    p = run("drain", "--data", s.data)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "exited with status 0" in p.stdout
    s.proc.wait(5)
    s.proc = None
    assert run("drain", "--data", s.data).returncode == 1


def test_caught_up_replica_exit_0(cluster):
    master, (rep,) = cluster(1)
    # Connected means through the TLS handshake and streaming: a drain
    # waits for authenticated replicas only.
    end = time.monotonic() + 10
    while "sync.replica.connected" not in master.log_text() and \
            time.monotonic() < end:
        time.sleep(0.02)
    for i in range(3):
        assert lmtp_one(master.port, "alice@" + DOMAIN,
                        message("d%d" % i))[0].startswith("250")
    assert quit_and_wait(master) == 0
    assert "drain.replicas connected=1" in master.log_text()
    wait_same(master, rep)


def with_a_replica_behind(cluster):
    """A master whose only replica stopped before its last delivery."""
    master, (rep,) = cluster(1)
    wait_same(master, rep)
    rep.stop()
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("late"))[0].startswith("250")
    return master


def test_stopped_replica_exit_3_named(cluster):
    master = with_a_replica_behind(cluster)
    assert quit_and_wait(master) == 3
    log = master.log_text()
    assert "drain.replica.behind" in log and 'name=replica0' in log, log


@pytest.mark.serial
def test_promote_accepts_writes(cluster):
    master, (rep,) = cluster(1)
    wait_same(master, rep)
    with LMTPClient(rep.port) as c:
        c.lhlo()
        c.cmd("MAIL FROM:<s@remote.test>", "451")
    master.stop()
    t0 = time.monotonic()
    p = run("promote", "--data", rep.data)
    assert p.returncode == 0, p.stdout + p.stderr
    assert time.monotonic() - t0 < 1.5
    assert lmtp_one(rep.port, "alice@" + DOMAIN,
                    message("rw"))[0].startswith("250")
    assert "sync.promote" in rep.log_text()


def test_append_under_way_completes_then_bye(server):
    s = server(imap=True)
    c = s.raw("alice")
    body = b"Subject: big\r\n\r\n" + b"x" * 200000 + b"\r\n"
    c.send(b"a1 APPEND INBOX {%d}\r\n" % len(body))
    assert c.line().startswith("+")
    c.send(body[:100000])
    time.sleep(0.1)
    s.proc.send_signal(signal.SIGQUIT)
    time.sleep(0.3)
    c.send(body[100000:] + b"\r\n")
    _, tagged = c.read_until("a1")
    assert tagged.startswith("OK"), tagged
    assert c.line(timeout=5).startswith("* BYE")
    assert wait_exit(s) == 0
    assert len(s.export("alice")) == 1
