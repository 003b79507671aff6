"""Full reconciliation (issue 5): a replica the master's log cannot serve
(new, or behind records the master purged) is brought up to date by
comparing mailboxes, never by a blind copy, and then follows the log.

Each test ends with every node's listing (users, mailboxes by identity,
every message's uid, guid and flags) equal, and the replica following
the master's log at its head.
"""
import time

from conftest import DOMAIN, LMTPClient, run
from test_replication import (SYNC_DEADLINE, cluster, listing, lmtp_one,
                              message, secret, status, wait_same)

__all__ = ["cluster", "secret"]     # fixtures, used by name


def deliver_many(port, rcpt, n, tag):
    """n deliveries over one LMTP connection; each must get 250."""
    with LMTPClient(port) as c:
        c.lhlo()
        for i in range(n):
            c.cmd("MAIL FROM:<s@remote.test>", "250")
            c.cmd("RCPT TO:<%s>" % rcpt, "250")
            c.cmd("DATA", "354")
            c.send(message("%s%d" % (tag, i)) + b".\r\n")
            assert c.reply()[0].startswith("250")


def wait_for_log(node, text, deadline=SYNC_DEADLINE):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if text in node.log_text():
            return
        time.sleep(0.05)
    raise AssertionError("%r not in log:\n%s" % (text, node.log_text()))


def wait_purged(master, after):
    """Until the master's log no longer holds position after + 1."""
    end = time.monotonic() + SYNC_DEADLINE
    while time.monotonic() < end:
        if status(master.data)["log_first"] > after + 1 or \
                status(master.data)["log_first"] == 0:
            return
        time.sleep(0.2)
    raise AssertionError("log not purged: %r" % status(master.data))


def follows_head(master, rep):
    end = time.monotonic() + SYNC_DEADLINE
    while time.monotonic() < end:
        if status(rep.data).get("master", {}).get("applied") == \
                status(master.data)["log_head"]:
            return
        time.sleep(0.05)
    raise AssertionError("replica %r, master %r\nreplica log:\n%s\n"
                         "master log:\n%s" % (
                             status(rep.data), status(master.data),
                             rep.log_text()[-3000:],
                             master.log_text()[-3000:]))


def test_new_replica_reconciles_many_messages(cluster):
    """More messages than one comparison chunk, in a replica that starts
    empty: every one arrives once, and then the log streams."""
    master, _ = cluster(0)
    deliver_many(master.port, "alice@" + DOMAIN, 2300, "m")
    c = master.imap("alice")
    c.select("INBOX")
    assert c.store("1:500", "+FLAGS", "(\\Seen $Work)")[0] == "OK"
    assert c.store("1000:1100", "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert c.expunge()[0] == "OK"
    c.logout()
    rep = cluster.replica(master, 0)
    wait_same(master, rep, deadline=60)
    wait_for_log(master, "sync.reconcile.done name=replica0")
    follows_head(master, rep)
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("streamed"))[0].startswith("250")
    users, boxes, msgs = wait_same(master, rep)
    assert len(msgs) == 2300 - 101 + 1
    check = run("check", "--data", rep.data)
    assert check.returncode == 0, check.stdout + check.stderr


def test_purged_replica_reconciles_every_kind_of_change(cluster):
    """A replica that was down while the master purged its log comes
    back by comparison: new and expunged messages, flags, a rename, a
    created and a deleted mailbox, a new user and a new password."""
    master, _ = cluster(0)
    master.args += ["--repl-log-retention", "0"]
    master.stop()
    master.start()
    for i in range(1, 4):
        assert lmtp_one(master.port, "alice@" + DOMAIN,
                        message("old%d" % i))[0].startswith("250")
    c = master.imap("alice")
    assert c.create("Old")[0] == "OK"
    assert c.create("Keep")[0] == "OK"
    c.logout()
    rep = cluster.replica(master, 0)
    wait_same(master, rep)
    follows_head(master, rep)
    applied = status(rep.data)["master"]["applied"]
    rep.stop()

    c = master.imap("alice")
    c.select("INBOX")
    assert c.store("1", "+FLAGS", "(\\Flagged)")[0] == "OK"
    assert c.store("2", "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert c.expunge()[0] == "OK"
    assert c.rename("Keep", "Kept")[0] == "OK"
    assert c.delete("Old")[0] == "OK"
    assert c.create("New")[0] == "OK"
    c.logout()
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("new"))[0].startswith("250")
    run("user", "add", "dave", "--data", master.data, input="pw-dave\n")
    run("user", "passwd", "bob", "--data", master.data, input="pw-bob2\n")
    wait_purged(master, applied)

    rep.start()
    users, boxes, msgs = wait_same(master, rep)
    wait_for_log(master, "sync.reconcile.done name=replica0")
    log = rep.log_text()
    assert "sync.reconcile.start" in log and "sync.reconcile.done" in log
    names = [b[1] for b in boxes if b[0] == "alice"]
    assert "Kept" in names and "New" in names
    assert "Keep" not in names and "Old" not in names
    assert [u for u, _ in users] == ["alice", "bob", "dave"]
    follows_head(master, rep)
    r = rep.imap("bob", "pw-bob2")
    r.logout()


def split_replica(cluster, policy_args=()):
    """A master and a replica that both took deliveries while apart:
    UID 2 holds another message on each side, UID 3 only the replica's
    (as an old master after a hard failover would)."""
    master, _ = cluster(0)
    master.args += ["--repl-log-retention", "0"]
    master.stop()
    master.start()
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("shared"))[0].startswith("250")
    rep = cluster.replica(master, 0, policy_args)
    wait_same(master, rep)
    applied = status(rep.data)["master"]["applied"]
    rep.stop()
    local = rep.__class__(rep.tmp, rep.data, [])
    local.start()
    for tag in ("replica-2", "replica-3"):
        assert lmtp_one(local.port, "alice@" + DOMAIN,
                        message(tag))[0].startswith("250")
    local.stop()
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("master-2"))[0].startswith("250")
    wait_purged(master, applied)
    return master, rep


def inbox_subjects(node):
    """INBOX as (uid, Subject) pairs, over IMAP."""
    c = node.imap("alice")
    c.select("INBOX", readonly=True)
    typ, data = c.uid("FETCH", "1:*", "(UID BODY.PEEK[HEADER.FIELDS "
                      "(SUBJECT)])")
    c.logout()
    out = []
    for item in data:
        if isinstance(item, tuple):
            uid = int(item[0].split(b"UID ")[1].split()[0])
            subj = item[1].decode().split(":", 1)[1].strip()
            out.append((uid, subj))
    return sorted(out)


def test_reconcile_renumbers_what_only_the_replica_has(cluster):
    """Policy renumber (the default): the replica's copy at UID 2 and its
    message at UID 3 go to the master, which gives them and its own
    UID 2 message new UIDs above both sides' UIDNEXT; nothing is lost,
    nothing stays under an old UID, and the two stores end identical."""
    master, rep = split_replica(cluster)
    rep.start()
    wait_for_log(master, "sync.renumber name=replica0 uid=3")
    wait_for_log(master, "sync.renumber name=replica0 uid=2")
    users, boxes, msgs = wait_same(master, rep)
    got = inbox_subjects(master)
    assert got == inbox_subjects(rep)
    assert sorted(s for _, s in got) == sorted(
        ["shared", "master-2", "replica-2", "replica-3"]), got
    assert got[0] == (1, "shared")
    # UIDs only grow: the three moved above the replica's UIDNEXT (4).
    assert all(uid >= 4 for uid, _ in got[1:]), got
    end = time.monotonic() + SYNC_DEADLINE
    while time.monotonic() < end and status(rep.data)["conflicts_open"]:
        time.sleep(0.1)
    assert status(rep.data)["conflicts_open"] == 0, status(rep.data)
    follows_head(master, rep)
    for node in (master, rep):
        check = run("check", "--data", node.data)
        assert check.returncode == 0, check.stdout + check.stderr


def test_reconcile_keep_policy_waits_for_resolve(cluster):
    """Policy keep: the replica keeps its copies and records them; the
    operator's `conflicts resolve` then renumbers one."""
    master, rep = split_replica(cluster, ["--conflict-policy", "keep"])
    before = {(m[0], m[1]): m[2] for m in listing(rep.data)[2]}
    rep.start()
    wait_for_log(rep, "sync.reconcile.done")
    wait_for_log(rep, "conflict mailbox=INBOX uid=2")
    wait_for_log(rep, "conflict mailbox=INBOX uid=3")
    follows_head(master, rep)
    time.sleep(1)
    after = {(m[0], m[1]): m[2] for m in listing(rep.data)[2]}
    assert after == before, (before, after)
    assert "sync.renumber" not in master.log_text()
    listed = run("conflicts", "list", "--json", "--data", rep.data)
    assert listed.returncode == 0, listed.stderr
    ks = __import__("json").loads(listed.stdout)
    assert sorted(k["uid"] for k in ks) == [2, 3]
    assert all(k["state"] == "open" for k in ks)
    k2 = next(k for k in ks if k["uid"] == 2)
    shown = run("conflicts", "show", str(k2["id"]), "--data", rep.data)
    assert shown.returncode == 0, shown.stderr
    assert "replica-2" in shown.stdout, shown.stdout
    raw = run("conflicts", "show", str(k2["id"]), "--raw", "local",
              "--data", rep.data)
    assert raw.returncode == 0 and "Subject: replica-2" in raw.stdout
    done = run("conflicts", "resolve", str(k2["id"]), "--data", rep.data)
    assert done.returncode == 0, done.stderr
    wait_for_log(master, "sync.renumber name=replica0 uid=2")
    end = time.monotonic() + SYNC_DEADLINE
    while time.monotonic() < end:
        got = inbox_subjects(rep)
        if "replica-2" in [s for u, s in got if u > 3]:
            break
        time.sleep(0.1)
    got = inbox_subjects(rep)
    assert (3, "replica-3") in got, got        # still kept, still open
    assert [s for u, s in got if u > 3].count("replica-2") == 1, got
    assert [s for u, s in got if u > 3].count("master-2") == 1, got


def test_streamed_expunge_of_another_message_renumbers(cluster):
    """While streaming: the master appends and then expunges UID 2, which
    the replica holds as a message of its own.  Both records meet another
    GUID; under renumber the replica's message moves to a new UID on
    every node and the expunged one is gone everywhere."""
    master, _ = cluster(0)
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("shared"))[0].startswith("250")
    rep = cluster.replica(master, 0)
    wait_same(master, rep)
    follows_head(master, rep)
    rep.stop()
    local = rep.__class__(rep.tmp, rep.data, [])
    local.start()
    assert lmtp_one(local.port, "alice@" + DOMAIN,
                    message("replica-own"))[0].startswith("250")
    local.stop()
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("master-gone"))[0].startswith("250")
    c = master.imap("alice")
    c.select("INBOX")
    assert c.uid("STORE", "2", "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert c.expunge()[0] == "OK"
    c.logout()
    rep.start()
    wait_for_log(master, "sync.renumber name=replica0 uid=2")
    wait_same(master, rep)
    got = inbox_subjects(rep)
    assert got == inbox_subjects(master)
    assert [s for _, s in got] == ["shared", "replica-own"], got
    assert got[1][0] > 2, got
    assert "sync.reconcile.start" not in rep.log_text(since=True)  # streamed
