"""The mass-delete guard's edges: expunges past GUARD_MIN_EXPUNGES but
within the percentage apply and pause nobody; while a user is paused,
another user's record that names no mailbox is not held; a plain
`replica resume` (which counts the held deletes again) applies them
once the limit allows them; `replica resume` refuses what it cannot
run.
"""
import time

from conftest import run, run_ok
from repl_peer import query
from test_guard import expunged_on_master, paused_by_expunge, user_messages
from test_reconcile import wait_for_log
from test_replication import (SYNC_DEADLINE, cluster,  # noqa: F401
                              secret, status, wait_same)


def password(data, user):
    return query(data, "SELECT password FROM user WHERE name = ?", (user,))


def test_expunges_within_the_percentage_apply(cluster):
    master, _ = cluster(0)
    # 22 of 50: past the minimum the percentage needs, within its 50%.
    rep, c = expunged_on_master(master, cluster, 50, 22, "w")
    c.logout()
    wait_same(master, rep)
    assert user_messages(rep.data)["alice"] == 28
    assert status(rep.data)["paused"] is None
    assert "sync.guard.paused" not in rep.log_text()


def test_a_plain_resume_applies_once_the_limit_allows(cluster):
    """Paused by an expunge over the percentage; restarted with a limit
    that allows it, a plain resume counts the held deletes again and
    applies them (no --allow-deletes needed), and the replica ends
    equal to its master."""
    master, _ = cluster(0)
    rep, c, left = paused_by_expunge(master, cluster, 30, 30, "p")
    c.logout()
    # Another user's record that names no mailbox is not held.
    run_ok("user", "passwd", "bob", "--data", master.data,
           input="bob's new\n")
    end = time.monotonic() + SYNC_DEADLINE
    while password(rep.data, "bob") != password(master.data, "bob"):
        assert time.monotonic() < end, "bob's password was held"
        time.sleep(0.05)
    rep.stop()
    i = rep.args.index("--guard-max-expunge-percent")
    rep.args[i + 1] = "100"
    rep.start()
    assert status(rep.data)["paused"], status(rep.data)
    p = run_ok("replica", "resume", "--data", rep.data)
    assert "resumed 1 user" in p.stdout, p.stdout
    wait_for_log(rep, "sync.guard.resumed")
    wait_same(master, rep)
    assert status(rep.data)["paused"] is None
    assert rep.log_text().count("sync.guard.paused") == 1


def test_resume_refuses_what_it_cannot_run(tmp_path):
    p = run("replica", "resume", "--help")
    assert p.returncode == 0 and "--allow-deletes" in p.stdout, p
    p = run("replica", "resume", "now", "--data", tmp_path)
    assert p.returncode == 2 and "unexpected argument 'now'" in \
        p.stderr, p
    p = run("replica", "resume", "--data", tmp_path / "none")
    assert p.returncode != 0 and "resumed" not in p.stdout, p
    assert not (tmp_path / "none").exists()
