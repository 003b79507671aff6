"""Keep-alives and dead-peer detection on the replication link, with
the timings shortened by their settings (--repl-ping-interval 1,
--repl-dead-after 3, --repl-handshake-timeout 1).

A half-open link -- the peer's process stopped (SIGSTOP), so its kernel
still holds the connection but nothing answers -- is detected on each
end: the master drops a silent replica, a replica drops a silent master
and reconnects; once the peer runs again replication catches up.  A
peer that completes TLS but never says HELLO is dropped after the
handshake timeout.  The settings refuse timings that would cut a
healthy link.
"""
import os
import signal
import time

import pytest

from conftest import DOMAIN, HOST, free_port, run
from repl_peer import TLSPeer, wait_log
from test_replication import (SECRET, lmtp_one, message,  # noqa: F401
                              secret, wait_same)

FAST = ["--repl-ping-interval", "1", "--repl-dead-after", "3",
        "--repl-handshake-timeout", "1"]
DETECT_DEADLINE = 20.0


def pair(server, secret):
    port = free_port()
    master = server(args=["--repl-listen", "%s:%d" % (HOST, port),
                          "--repl-secret-file", secret] + FAST)
    master.repl_port = port
    rep = server(users=(), args=[
        "--replicate-from", "%s:%d" % (HOST, port),
        "--repl-secret-file", secret, "--name", "r0"] + FAST)
    wait_same(master, rep)
    return master, rep


def stopped(node, seconds_until):
    """SIGSTOPs node's process; the caller waits; SIGCONT after."""
    os.kill(node.proc.pid, signal.SIGSTOP)
    try:
        seconds_until()
    finally:
        os.kill(node.proc.pid, signal.SIGCONT)


@pytest.mark.parametrize("frozen", ["master", "replica"])
def test_stopped_peer_is_detected(server, secret, frozen):
    master, rep = pair(server, secret)
    node, other = (master, rep) if frozen == "master" else (rep, master)
    since = len(other.log_text())
    stopped(node, lambda: wait_log(other, "sync.dead", since,
                                   DETECT_DEADLINE))
    if frozen == "replica":
        wait_log(master, "sync.replica.gone", since)
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("after-stop"))[0].startswith("250")
    wait_same(master, rep)


def test_keepalives_hold_an_idle_link(server, secret):
    """Idle for more than twice the dead-peer time: pings keep it."""
    master, rep = pair(server, secret)
    since = len(rep.log_text())
    time.sleep(7)
    assert "sync.dead" not in rep.log_text()[since:]
    assert "sync.dead" not in master.log_text()


def test_silent_peer_after_tls_is_dropped(server, secret):
    port = free_port()
    master = server(args=["--repl-listen", "%s:%d" % (HOST, port),
                          "--repl-secret-file", secret] + FAST)
    since = len(master.log_text())
    peer = TLSPeer(SECRET, port, "client")
    try:
        wait_log(master, "sync.handshake", since, DETECT_DEADLINE)
        assert peer.closed(), "the master kept a peer that said nothing"
    finally:
        peer.close()


def test_timings_that_would_cut_a_healthy_link_are_refused(tmp_path,
                                                          secret):
    for args, said in (
            (["--repl-dead-after", "2"], "repl-dead-after"),
            (["--repl-ping-interval", "0"], "repl-ping-interval"),
            (["--repl-handshake-timeout", "0"], "repl-handshake-timeout"),
            (["--repl-ping-interval", "5", "--repl-dead-after", "10"],
             "more than twice")):
        p = run("serve", "--data", tmp_path / "d", "--lmtp",
                "%s:%d" % (HOST, free_port()), "--repl-listen",
                "%s:%d" % (HOST, free_port()), "--repl-secret-file",
                secret, *args, timeout=20)
        assert p.returncode == 2, (args, p.stderr)
        assert said in p.stderr, (args, p.stderr)


def test_bad_replication_setup_is_refused(tmp_path, secret):
    """Each mistake in setting up the channel stops the start, naming
    the setting."""
    short, open_ = tmp_path / "short.secret", tmp_path / "open.secret"
    short.write_text("too short\n")
    short.chmod(0o600)
    open_.write_text(SECRET + "\n")
    open_.chmod(0o644)
    listen = ["--repl-listen", "%s:%d" % (HOST, free_port())]
    for args, said in (
            (listen, "needed with --repl-listen"),
            (listen + ["--repl-secret-file", tmp_path / "none"],
             "cannot read"),
            (listen + ["--repl-secret-file", short], "16 to 1024 bytes"),
            (listen + ["--repl-secret-file", open_], "chmod 600"),
            (["--replicate-from", "nowhere", "--repl-secret-file",
              secret], "wants HOST:PORT"),
            (["--repl-sync-timeout", "100"], "needs 'repl-listen'")):
        p = run("serve", "--data", tmp_path / "d", "--lmtp",
                "%s:%d" % (HOST, free_port()), *args, timeout=20)
        assert p.returncode == 2, (args, p.stderr)
        assert said in p.stderr, (args, p.stderr)
