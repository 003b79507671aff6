"""Hard failover without losing mail (issue 7).

A master dies before its last deliveries reached the replica; the replica
is promoted and takes deliveries of its own at the same UIDs; the old
master comes back as a replica of the new one.  Both stores must end with
every message exactly once, the colliding UIDs expunged and the messages
under new UIDs above them, and an IMAP client on the new master must see
EXPUNGE and EXISTS, never another message under a UID it knows.
"""
import re
import time

from conftest import DOMAIN, HOST, free_port, run, run_ok
from test_replication import (SYNC_DEADLINE, listing, lmtp_one, message,
                              secret, status, wait_same)
from test_reconcile import inbox_subjects, wait_for_log

__all__ = ["secret"]


def pair(server, secret):
    """A master with a replica that listens for replicas itself, ready to
    be promoted."""
    a_port, b_port = free_port(), free_port()
    a = server(imap=True, args=[
        "--repl-listen", "%s:%d" % (HOST, a_port),
        "--repl-secret-file", secret, "--name", "A"])
    b = server(users=(), imap=True, args=[
        "--repl-listen", "%s:%d" % (HOST, b_port),
        "--replicate-from", "%s:%d" % (HOST, a_port),
        "--repl-secret-file", secret, "--name", "B"])
    a.repl_port, b.repl_port = a_port, b_port
    return a, b


def deliver(node, tag):
    assert lmtp_one(node.port, "alice@" + DOMAIN,
                    message(tag))[0].startswith("250")


def split(a, b, only_a, only_b, on_split=None):
    """B misses A's last deliveries; A dies; B is promoted and takes its
    own.  on_split(a, b) runs more changes on both sides meanwhile."""
    wait_same(a, b)
    b.stop()
    for tag in only_a:
        deliver(a, tag)
    if on_split:
        on_split(a, None)
    a.kill9()
    b.start()
    p = run("promote", "--data", b.data)
    assert p.returncode == 0, p.stdout + p.stderr
    wait_for_log(b, "sync.promote")
    for tag in only_b:
        deliver(b, tag)
    if on_split:
        on_split(None, b)


def rejoin(a, b):
    """A comes back as a replica of B (its --repl-listen stays)."""
    a.args = [x for x in a.args] + [
        "--replicate-from", "%s:%d" % (HOST, b.repl_port)]
    a.start()


def converged(a, b):
    """Waits until both stores are the same and no conflict is open."""
    end = time.monotonic() + SYNC_DEADLINE * 2
    while time.monotonic() < end:
        if listing(a.data) == listing(b.data) and \
                status(a.data)["conflicts_open"] == 0:
            return listing(b.data)
        time.sleep(0.1)
    raise AssertionError("not converged:\nA %r\nB %r\nA log:\n%s\nB log:\n%s"
                         % (listing(a.data)[2], listing(b.data)[2],
                            a.log_text()[-4000:], b.log_text()[-4000:]))


def test_collision_converges_without_loss(server, secret):
    a, b = pair(server, secret)
    for i in range(5):
        deliver(a, "base%d" % i)
    # An IMAP client on B sees the failover's effects once B is master.
    split(a, b, ["a-only%d" % i for i in range(3)],
          ["b-only%d" % i for i in range(3)])
    watcher = b.raw("alice")
    watcher.cmd("SELECT INBOX")
    seen = {}
    for line in watcher.ok("UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS "
                           "(SUBJECT)])"):
        m = re.search(r"UID (\d+)", line)
        s = re.search(r"Subject: (\S+)", line)
        if m and s:
            seen[int(m.group(1))] = s.group(1)
    assert sorted(seen) == list(range(1, 9)), seen
    rejoin(a, b)
    users, boxes, msgs = converged(a, b)
    got = inbox_subjects(b)
    subjects = sorted(s for _, s in got)
    want = sorted(["base%d" % i for i in range(5)] +
                  ["a-only%d" % i for i in range(3)] +
                  ["b-only%d" % i for i in range(3)])
    assert subjects == want, got           # all 11, each exactly once
    uids = dict(got)
    for uid in range(1, 6):
        assert uids[uid] == "base%d" % (uid - 1)
    for uid in (6, 7, 8):
        assert uid not in uids, got        # the colliding UIDs are gone
    assert len([u for u in uids if u > 8]) == 6, got
    # UIDVALIDITY never changed: one value per mailbox on both nodes.
    assert listing(a.data)[1] == boxes
    # The client saw the three UIDs expunged and six arrive; every UID it
    # still has names the message it named before.
    untagged = watcher.ok("NOOP")
    assert sum(1 for x in untagged if x.endswith(" EXPUNGE")) == 3, untagged
    assert any(x.endswith(" EXISTS") for x in untagged), untagged
    for line in watcher.ok("UID FETCH 1:5 (UID BODY.PEEK[HEADER.FIELDS "
                           "(SUBJECT)])"):
        m = re.search(r"UID (\d+)", line)
        s = re.search(r"Subject: (\S+)", line)
        if m and s:
            assert seen[int(m.group(1))] == s.group(1)
    watcher.close()
    # The conflicts are listed on the old master, resolved.
    listed = run_ok("conflicts", "list", "--json", "--data", a.data)
    ks = __import__("json").loads(listed.stdout)
    assert sorted(k["uid"] for k in ks) == [6, 7, 8], ks
    assert all(k["state"] == "resolved" for k in ks), ks
    # And A follows B's log from now on.
    deliver(b, "after")
    wait_same(b, a)
    for node in (a, b):
        check = run("check", "--data", node.data)
        assert check.returncode == 0, check.stdout + check.stderr


def test_split_with_flags_expunges_and_mailboxes(server, secret):
    """During the split: flags and expunges on both sides, a mailbox
    renamed on one side and one created on the other."""
    a, b = pair(server, secret)
    for i in range(4):
        deliver(a, "base%d" % i)
    c = a.imap("alice")
    assert c.create("Projects")[0] == "OK"
    c.logout()

    def on_split(on_a, on_b):
        node = on_a or on_b
        c = node.imap("alice")
        c.select("INBOX")
        if on_a:
            assert c.store("1", "+FLAGS", "(\\Flagged)")[0] == "OK"
            assert c.create("OnlyA")[0] == "OK"
            c.append("OnlyA", None, None, message("in-only-a"))
        else:
            assert c.store("2", "+FLAGS", "(\\Seen)")[0] == "OK"
            assert c.store("3", "+FLAGS", "(\\Deleted)")[0] == "OK"
            assert c.expunge()[0] == "OK"
            assert c.rename("Projects", "Work")[0] == "OK"
        c.logout()

    split(a, b, ["a-only"], ["b-only"], on_split)
    rejoin(a, b)
    users, boxes, msgs = converged(a, b)
    names = [x[1] for x in boxes if x[0] == "alice"]
    assert "Work" in names and "Projects" not in names, names
    assert "OnlyA" in names, names        # created on A only: adopted
    got = inbox_subjects(b)
    subjects = sorted(s for _, s in got)
    # base2 was expunged on B (the master) by a client: gone; the rest
    # once each.
    assert subjects == sorted(["base0", "base1", "base3", "a-only",
                               "b-only"]), got
    r = b.imap("alice")
    r.select("OnlyA", readonly=True)
    typ, data = r.search(None, "ALL")
    assert len(data[0].split()) == 1
    r.logout()


def test_rename_the_new_master_never_got_is_kept(server, secret):
    """A mailbox renamed on the old master just before it died (the
    client was told OK, the rename never reached the replica) keeps its
    new name when the old master comes back, as its mail does: the
    newer name wins, on both nodes."""
    a, b = pair(server, secret)
    c = a.imap("alice")
    assert c.create("Projects")[0] == "OK"
    c.logout()
    deliver(a, "base")

    def on_split(on_a, on_b):
        if on_a:
            c = on_a.imap("alice")
            assert c.rename("Projects", "Work")[0] == "OK"
            c.append("Work", None, None, message("in-work"))
            c.logout()

    split(a, b, [], ["b-only"], on_split)
    rejoin(a, b)
    users, boxes, msgs = converged(a, b)
    names = [x[1] for x in boxes if x[0] == "alice"]
    assert "Work" in names and "Projects" not in names, names
    r = b.imap("alice")
    typ, _ = r.select("Work", readonly=True)
    assert typ == "OK"
    assert len(r.search(None, "ALL")[1][0].split()) == 1
    r.logout()
    assert "sync.reconcile.rename" in b.log_text()


def test_a_mailbox_made_again_takes_the_masters_subscription(server,
                                                             secret):
    """The new master deletes a subscribed mailbox, unsubscribes its
    name and creates a mailbox of that name again.  The old master,
    back as its replica, is compared in full: its copy of the old
    mailbox goes (its subscription stays by name, as a delete leaves
    it), and the new mailbox must arrive unsubscribed, as it is on the
    master, not inherit the old one's subscription."""
    a, b = pair(server, secret)

    def on_split(on_a, on_b):
        if on_b:
            c = on_b.imap("alice")
            assert c.delete("Archive")[0] == "OK"
            assert c.unsubscribe("Archive")[0] == "OK"
            assert c.create("Archive")[0] == "OK"
            c.logout()

    split(a, b, [], ["b-only"], on_split)
    rejoin(a, b)
    users, boxes, msgs = converged(a, b)
    archive = [x for x in boxes if x[:2] == ("alice", "Archive")]
    assert len(archive) == 1 and archive[0][4] == 0, archive
