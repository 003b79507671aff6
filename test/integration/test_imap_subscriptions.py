"""Subscriptions belong to names, not to mailboxes (RFC 3501 6.3.6: a
server MUST NOT remove a subscription when its mailbox goes): after
DELETE, LSUB still lists the name and LIST (SUBSCRIBED) shows it
\\NonExistent (RFC 5258 3.1), re-creating the mailbox finds it
subscribed, UNSUBSCRIBE removes it.  RENAME takes the subscription of
every mailbox it renames along (as Cyrus does; RFC 3501 and 9051 leave
it open, and a client that only shows subscribed folders would lose a
renamed one).  All of it replicates and survives a restart and a
failover."""
import re
import sqlite3

from conftest import HOST, free_port, run_ok
from test_imap_mailboxes import listing
from test_isolation import UNDO_V16, UNDO_V17, UNDO_V18, UNDO_V19, \
    UNDO_V20, UNDO_V21, UNDO_V22, UNDO_V23, UNDO_V26, undo_v24
from test_reconcile import wait_for_log
from test_replication import (cluster, secret, wait_same)  # noqa: F401


def test_delete_keeps_the_subscription(imap_srv):
    with imap_srv.raw() as c:
        c.ok("CREATE Gone")
        c.ok("SUBSCRIBE Gone")
        c.ok("DELETE Gone")
        assert "Gone" in listing(c, 'LSUB "" "*"')
        assert "Gone" not in listing(c, 'LIST "" "*"')
        got = listing(c, 'LIST (SUBSCRIBED) "" "*"')
        assert got["Gone"] == {"\\subscribed", "\\nonexistent"}, got
        got = listing(c, 'LIST "" "*" RETURN (SUBSCRIBED)')
        assert "Gone" not in got, got
    imap_srv.restart()
    with imap_srv.raw() as c:
        assert "Gone" in listing(c, 'LSUB "" "*"')
        # Made again, it is subscribed, and exists.
        c.ok("CREATE Gone")
        got = listing(c, 'LIST (SUBSCRIBED) "" "Gone"')
        assert got == {"Gone": {"\\subscribed", "\\hasnochildren"}}, got
        c.ok("DELETE Gone")
        c.ok("UNSUBSCRIBE Gone")
        assert "Gone" not in listing(c, 'LSUB "" "*"')
        assert "Gone" not in listing(c, 'LIST (SUBSCRIBED) "" "*"')
        # A name neither subscribed nor a mailbox cannot be unsubscribed.
        _, done = c.cmd("UNSUBSCRIBE Gone")
        assert done.startswith("NO"), done


def test_deleted_child_subscription_and_childinfo(imap_srv):
    with imap_srv.raw() as c:
        c.ok("CREATE p/c")
        c.ok("SUBSCRIBE p/c")
        c.ok("DELETE p/c")
        # p has no child any more, whatever is subscribed.
        assert listing(c, 'LIST "" "p*"') == {"p": {"\\hasnochildren"}}
        got = listing(c, 'LIST (SUBSCRIBED) "" "p*"')
        assert got == {"p/c": {"\\subscribed", "\\nonexistent"}}, got
        untagged = c.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" "p"')
        assert len(untagged) == 1, untagged
        assert re.search(r' "?p"? \("CHILDINFO" \("SUBSCRIBED"\)\)$',
                         untagged[0], re.I), untagged
        # LSUB with "%" shows the level above a subscribed name.
        got = listing(c, 'LSUB "" "%"')
        assert "p" in got and "\\noselect" in got["p"], got


def test_rename_takes_the_subscription_along(imap_srv):
    with imap_srv.raw() as c:
        c.ok("CREATE Old/Kid")
        c.ok("SUBSCRIBE Old")
        c.ok("SUBSCRIBE Old/Kid")
        c.ok("RENAME Old New")
        got = listing(c, 'LSUB "" "*"')
        assert {"New", "New/Kid"} <= set(got), got
        assert not {"Old", "Old/Kid"} & set(got), got
        # A subscription whose mailbox is gone stays where it is.
        c.ok("CREATE Ghost")
        c.ok("SUBSCRIBE Ghost")
        c.ok("DELETE Ghost")
        c.ok("CREATE Real")
        c.ok("RENAME Real Ghost")
        got = listing(c, 'LIST (SUBSCRIBED) "" "*"')
        assert got["Ghost"] == {"\\subscribed", "\\hasnochildren"}, got
        assert "Real" not in got, got


def test_rename_inbox_keeps_inbox_subscribed(imap_srv):
    with imap_srv.raw() as c:
        c.ok("SUBSCRIBE INBOX")
        c.ok("RENAME INBOX Old-Inbox")
        got = listing(c, 'LSUB "" "*"')
        assert "INBOX" in got and "Old-Inbox" not in got, got


def subscriptions(c):
    return set(listing(c, 'LSUB "" "*"'))


def test_subscriptions_replicate_and_fail_over(cluster):
    b_repl = free_port()
    master, (replica,) = cluster(1, replica_args=[
        "--repl-listen", "%s:%d" % (HOST, b_repl)])
    with master.raw() as c:
        c.ok("CREATE Gone")
        c.ok("SUBSCRIBE Gone")
        c.ok("DELETE Gone")
        c.ok("CREATE Moved")
        c.ok("SUBSCRIBE Moved")
        c.ok("RENAME Moved Here")
        c.ok("CREATE Dropped")
        c.ok("SUBSCRIBE Dropped")
        c.ok("DELETE Dropped")
        c.ok("UNSUBSCRIBE Dropped")
        want = subscriptions(c)
    assert {"Gone", "Here"} <= want and not {"Moved", "Dropped"} & want
    wait_same(master, replica)
    with replica.raw() as c:
        assert subscriptions(c) == want
        got = listing(c, 'LIST (SUBSCRIBED) "" "Gone"')
        assert got["Gone"] == {"\\subscribed", "\\nonexistent"}, got
    run_ok("promote", "--data", replica.data)
    with replica.raw() as c:
        c.ok("UNSUBSCRIBE Gone")
        c.ok("SUBSCRIBE Here")
        assert subscriptions(c) == want - {"Gone"}


def test_migration_keeps_subscriptions(imap_srv):
    with imap_srv.raw() as c:
        c.ok("CREATE Sub")
        c.ok("SUBSCRIBE Sub")
        c.ok("CREATE Un")
        c.ok("UNSUBSCRIBE Sent")
        want = subscriptions(c)
    imap_srv.stop()
    db = sqlite3.connect(str(imap_srv.data / "mailrepd.db"),
                         isolation_level=None)
    try:
        db.execute("BEGIN")
        for sql in UNDO_V26:
            db.execute(sql)
        undo_v24(db)
        for sql in (UNDO_V23 + UNDO_V22 + UNDO_V21 + UNDO_V20 + UNDO_V19 +
                    UNDO_V18 + UNDO_V17 + UNDO_V16):
            db.execute(sql)
        # A record of a mailbox that is gone without a trace: dropped.
        db.execute("INSERT INTO replog (time, type, user, mailbox, flags, "
                   "hash, reason) VALUES (1, 'mailbox.subscribe', 'alice', "
                   "zeroblob(16), 1, zeroblob(32), 'client')")
        db.execute("PRAGMA user_version = 15")
        db.execute("COMMIT")
    finally:
        db.close()
    # check opens (and so migrates) the store without serving it.
    run_ok("check", "--data", imap_srv.data)
    db = sqlite3.connect("file:%s/mailrepd.db?mode=ro" % imap_srv.data,
                         uri=True)
    try:
        rows = db.execute("SELECT type, user, name, flags, mailbox FROM "
                          "replog WHERE type LIKE '%subscribe' "
                          "ORDER BY seq").fetchall()
    finally:
        db.close()
    assert rows == [("user.subscribe", "alice", "Sub", 1, None),
                    ("user.subscribe", "alice", "Sent", 0, None)], rows
    imap_srv.start()
    with imap_srv.raw() as c:
        assert subscriptions(c) == want
        assert "Un" not in want and "Sub" in want
        c.ok("DELETE Sub")
        assert subscriptions(c) == want


def test_reconciliation_brings_subscriptions_of_deleted_mailboxes(cluster):
    """A replica the log cannot serve (new, the log purged) gets the
    subscriptions whose mailboxes are gone by comparison too."""
    master, _ = cluster(0)
    master.args += ["--repl-log-retention", "0"]
    master.restart()
    with master.raw() as c:
        c.ok("CREATE Gone/Deep")
        c.ok("SUBSCRIBE Gone/Deep")
        c.ok("DELETE Gone/Deep")
        c.ok("CREATE Kept")
        c.ok("SUBSCRIBE Kept")
        want = subscriptions(c)
    replica = cluster.replica(master, 0)
    wait_same(master, replica)
    wait_for_log(master, "sync.reconcile.done name=replica0")
    with replica.raw() as c:
        assert subscriptions(c) == want
        got = listing(c, 'LIST (SUBSCRIBED) "" "Gone*"')
        assert got == {"Gone/Deep": {"\\subscribed", "\\nonexistent"}}, got
