"""The mass-delete guard across failovers: it counts only what a client
or an operator deleted (never the expunges of renumbering, of a
reconciliation or of MOVE), it pauses only the user it paused on, and
while it holds a user's records synchronous mode still acknowledges
nothing that no replica has.
"""
import time

from conftest import DOMAIN, HOST, free_port, run, run_ok
from test_guard import paused_by_expunge
from test_hard_failover import converged, deliver, pair, rejoin, split
from test_reconcile import inbox_subjects, wait_for_log
from test_replication import (cluster, lmtp_one,  # noqa: F401
                              message, secret, status)

__all__ = ["cluster", "secret"]


def test_rejoin_after_hard_failover_does_not_pause(server, secret):
    """10 shared messages, then 30 new ones on each side at UIDs 11-40;
    A comes back as B's replica: the renumbering's 60 expunges are not
    deletes, so A neither pauses nor misses a message."""
    a, b = pair(server, secret)
    for i in range(10):
        deliver(a, "base%d" % i)
    split(a, b, ["a-only%d" % i for i in range(30)],
          ["b-only%d" % i for i in range(30)])
    rejoin(a, b)
    converged(a, b)
    assert status(a.data)["paused"] is None
    assert "sync.guard.paused" not in a.log_text()
    subjects = sorted(s for _, s in inbox_subjects(a))
    assert subjects == sorted(["base%d" % i for i in range(10)] +
                              ["a-only%d" % i for i in range(30)] +
                              ["b-only%d" % i for i in range(30)])
    for node in (a, b):
        check = run("check", "--data", node.data)
        assert check.returncode == 0, check.stdout + check.stderr


def subjects_of(node, user):
    c = node.imap(user)
    c.select("INBOX", readonly=True)
    typ, data = c.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    c.logout()
    return sorted(item[1].decode().split(":", 1)[1].strip()
                  for item in data if isinstance(item, tuple))


def test_paused_user_does_not_stop_others_nor_sync(server, cluster,
                                                   secret):  # noqa: F811
    """alice's client expunges 60 of her 100 messages: the replica holds
    alice's records only.  bob's deliveries keep replicating, and in
    synchronous mode each 250 still waits for the replica; the master is
    killed, the replica promoted: every acknowledged message of bob's is
    there, and alice's (held) delivery appears once an operator resumes
    her."""
    port = free_port()
    master = server(imap=True, args=[
        "--repl-listen", "%s:%d" % (HOST, port),
        "--repl-secret-file", secret, "--repl-sync-timeout", "2000"])
    master.repl_port = port
    rep, c, left = paused_by_expunge(master, cluster, 100, 60, "a")
    c.logout()
    assert "alice" in status(rep.data)["paused"]
    # The setup's own counts reach the store once a second: let them.
    time.sleep(1.5)
    before = status(master.data)["sync"]["unreplicated"]
    acked = []
    for i in range(10):
        reply = lmtp_one(master.port, "bob@" + DOMAIN, message("bob%d" % i))
        if reply[0].startswith("250"):
            acked.append("bob%d" % i)
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("alice-held"))[0].startswith("250")
    assert acked, "no delivery acknowledged"
    # Each 250 waited for the replica (the counters reach the store
    # once a second).
    time.sleep(1.5)
    assert status(master.data)["sync"]["unreplicated"] == before
    master.kill9()
    p = run("promote", "--data", rep.data)
    assert p.returncode == 0, p.stdout + p.stderr
    wait_for_log(rep, "sync.promote")
    assert subjects_of(rep, "bob") == sorted(acked)
    # alice's messages are as the pause left them: the rest of her
    # deletes were held, not applied.
    assert len(subjects_of(rep, "alice")) == left
    out = run_ok("replica", "resume", "--allow-deletes", "--data", rep.data)
    assert "resumed" in out.stdout
    end = time.monotonic() + 20
    while time.monotonic() < end and status(rep.data)["paused"]:
        time.sleep(0.1)
    got = subjects_of(rep, "alice")
    assert "alice-held" in got and len(got) == 41, got
    check = run("check", "--data", rep.data)
    assert check.returncode == 0, check.stdout + check.stderr
