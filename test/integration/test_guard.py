"""The mass-delete guard (issue 7): a replica deletes only on evidence,
and not too much at once.  Past --guard-max-mailbox-deletes or
--guard-max-expunge-percent within --guard-window it pauses with its data
untouched until `mailrepd replica resume --allow-deletes`; what it does
delete stays in quarantine.
"""
import json
import sqlite3
import time

from conftest import DOMAIN, LMTPClient, run, run_ok
from test_reconcile import deliver_many, wait_for_log, wait_purged
from test_replication import (SYNC_DEADLINE, cluster, listing, lmtp_one,
                              message, secret, status, wait_same)

__all__ = ["cluster", "secret"]

GUARD = ["--guard-max-mailbox-deletes", "3",
         "--guard-max-expunge-percent", "50"]


def names(data, user="alice"):
    """user's mailboxes (not the subscriptions a deleted one left)."""
    return sorted(b[1] for b in listing(data)[1]
                  if b[0] == user and b[2] is not None)


def quarantined(data):
    db = sqlite3.connect("file:%s/mailrepd.db?mode=ro" % data, uri=True)
    try:
        return db.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    finally:
        db.close()


def wait_paused(rep):
    wait_for_log(rep, "sync.guard.paused")
    end = time.monotonic() + SYNC_DEADLINE
    while time.monotonic() < end and not status(rep.data).get("paused"):
        time.sleep(0.05)
    assert status(rep.data)["paused"], status(rep.data)


def resume(rep, master):
    p = run_ok("replica", "resume", "--allow-deletes", "--data", rep.data)
    assert "resumed" in p.stdout
    return wait_same(master, rep)


# GUARD_MIN_EXPUNGES in config.h: fewer never trip the percentage.
GUARD_MIN_EXPUNGES = 20


def expunged_on_master(master, cluster, have, expunge, tag):
    """alice gets `have` messages, a replica with GUARD catches up, then
    her client expunges the first `expunge`.  Returns the replica and
    the master's IMAP connection, still selected."""
    deliver_many(master.port, "alice@" + DOMAIN, have, tag)
    rep = cluster.replica(master, 0, GUARD)
    wait_same(master, rep)
    c = master.imap("alice")
    c.select("INBOX")
    assert c.store("1:%d" % expunge, "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert c.expunge()[0] == "OK"
    return rep, c


def paused_by_expunge(master, cluster, have, expunge, tag):
    """alice gets `have` messages, a replica catches up, then her client
    expunges the first `expunge`: the replica pauses her.  Returns the
    replica, the master's IMAP connection, still selected, and how many
    of alice's messages the replica kept.

    EXPUNGE commits in steps, so its records may reach the replica in
    more than one batch, and the guard counts over its window: batches
    apply until the count would pass the limit.  The guard holds the
    rest, so the replica applied at most the limit (half, or fewer than
    GUARD_MIN_EXPUNGES) and never the whole delete."""
    rep, c = expunged_on_master(master, cluster, have, expunge, tag)
    wait_paused(rep)
    left = user_messages(rep.data).get("alice", 0)
    applied = have - left
    assert applied < expunge, (have, left)
    assert applied < GUARD_MIN_EXPUNGES or applied * 2 <= have, (have, left)
    return rep, c, left


def test_many_mailbox_deletes_pause_the_replica(cluster):
    master, _ = cluster(0)
    c = master.imap("alice")
    for i in range(6):
        assert c.create("Box%d" % i)[0] == "OK"
    rep = cluster.replica(master, 0, GUARD)
    wait_same(master, rep)
    for i in range(6):
        assert c.delete("Box%d" % i)[0] == "OK"
    c.logout()
    wait_paused(rep)
    left = [n for n in names(rep.data) if n.startswith("Box")]
    assert len(left) >= 3, left           # at most 3 went
    assert "mailbox deletes" in status(rep.data)["paused"]
    # Paused means paused: new mail waits too, and stays on the master.
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("while-paused"))[0].startswith("250")
    time.sleep(1.5)
    assert len(listing(rep.data)[2]) < len(listing(master.data)[2])
    resume(rep, master)
    assert not [n for n in names(rep.data) if n.startswith("Box")]
    assert status(rep.data)["paused"] is None
    wait_for_log(rep, "sync.guard.allowed")


def test_expunging_most_of_a_user_pauses_and_quarantines(cluster):
    master, _ = cluster(0)
    rep, c, left = paused_by_expunge(master, cluster, 30, 30, "q")
    c.logout()
    assert len(listing(rep.data)[2]) == left  # the rest was not applied
    assert "expunged" in status(rep.data)["paused"]
    resume(rep, master)
    assert listing(rep.data)[2] == []
    assert quarantined(rep.data) == 30        # kept, with their blobs
    check = run("check", "--data", rep.data)
    assert check.returncode == 0, check.stdout + check.stderr


def test_master_with_emptied_mailbox_list_cannot_empty_its_replica(cluster):
    """The master's mailboxes vanish (corruption, simulated in SQL with
    tombstones that look like real deletes) and its log is purged, so the
    replica reconciles: it pauses instead of deleting them all."""
    master, _ = cluster(0)
    master.args += ["--repl-log-retention", "0"]
    master.stop()
    master.start()
    c = master.imap("alice")
    for i in range(5):
        assert c.create("Keep%d" % i)[0] == "OK"
    c.logout()
    rep = cluster.replica(master, 0, GUARD)
    wait_same(master, rep)
    before = listing(rep.data)
    applied = status(rep.data)["master"]["applied"]
    rep.stop()
    master.stop()
    db = sqlite3.connect("%s/mailrepd.db" % master.data)
    # Tombstones of now, as real deletes' (older ones would be past
    # --tombstone-retention and purged before the replica comes back).
    db.executescript(
        "INSERT INTO mailbox_gone (uniqueid, user, name, time) "
        "SELECT m.uniqueid, u.name, m.name, unixepoch() FROM mailbox m "
        "JOIN user u ON u.id = m.user_id WHERE u.name = 'alice' "
        "AND m.name != 'INBOX';"
        "DELETE FROM message WHERE mailbox_id IN (SELECT m.id FROM mailbox "
        "m JOIN user u ON u.id = m.user_id WHERE u.name = 'alice' AND "
        "m.name != 'INBOX');"
        "DELETE FROM mailbox WHERE name != 'INBOX' AND user_id = "
        "(SELECT id FROM user WHERE name = 'alice');")
    db.commit()
    db.close()
    master.start()
    lmtp_one(master.port, "bob@" + DOMAIN, message("nudge"))
    wait_purged(master, applied)
    rep.start()
    wait_paused(rep)
    assert listing(rep.data)[1] == before[1]   # every mailbox still there
    assert len(names(rep.data)) == 11
    # The operator, having looked, allows it.
    resume(rep, master)
    assert names(rep.data) == ["INBOX"]


def test_move_is_not_a_delete(cluster):
    """`UID MOVE` of 60 of alice's 100 messages removes nothing: the
    records say MOVE, so the guard does not count them."""
    master, _ = cluster(0)
    deliver_many(master.port, "alice@" + DOMAIN, 100, "mv")
    rep = cluster.replica(master, 0, GUARD)
    wait_same(master, rep)
    c = master.raw("alice")
    c.ok("SELECT INBOX")
    c.ok("UID MOVE 1:60 Archive")
    c.close()
    want = wait_same(master, rep)
    assert status(rep.data)["paused"] is None
    assert "sync.guard.paused" not in rep.log_text()
    assert len(want[2]) == 100


def sql_expunge_all(data, users):
    """On a stopped master: every message of each user is expunged as a
    client's EXPUNGE would do it (row gone, tombstone, log record)."""
    db = sqlite3.connect("%s/mailrepd.db" % data)
    now = int(time.time())
    for user in users:
        rows = db.execute(
            "SELECT mb.id, mb.uniqueid, m.uid, b.guid FROM message m "
            "JOIN mailbox mb ON mb.id = m.mailbox_id JOIN user u "
            "ON u.id = mb.user_id JOIN blob b ON b.id = m.blob_id "
            "WHERE u.name = ? ORDER BY mb.id, m.uid", (user,)).fetchall()
        for mbox, uniqueid, uid, guid in rows:
            db.execute("UPDATE mailbox SET highestmodseq = highestmodseq "
                       "+ 1 WHERE id = ?", (mbox,))
            modseq = db.execute("SELECT highestmodseq FROM mailbox "
                                "WHERE id = ?", (mbox,)).fetchone()[0]
            db.execute("DELETE FROM message WHERE mailbox_id = ? AND "
                       "uid = ?", (mbox, uid))
            db.execute("INSERT OR REPLACE INTO expunged (mailbox, uid, "
                       "guid, modseq, time) VALUES (?, ?, ?, ?, ?)",
                       (uniqueid, uid, guid, modseq, now))
            db.execute("INSERT INTO replog (time, type, mailbox, uid, "
                       "guid, modseq, flags) VALUES (?, "
                       "'message.expunge', ?, ?, ?, ?, 0)",
                       (now, uniqueid, uid, guid, modseq))
    db.commit()
    db.close()


def test_many_users_with_an_expunge_do_not_blind_the_guard(cluster):
    """260 users expunge their one message each, then zed all 60 of his:
    the guard still counts zed and pauses him; the others' expunges
    apply."""
    master, _ = cluster(0)
    master.args += ["--catch-all", "yes"]
    master.stop()
    master.start()
    many = ["u%03d" % i for i in range(260)]
    with LMTPClient(master.port) as c:
        c.lhlo()
        _, done = c.transaction("s@remote.test",
                                ["%s@%s" % (u, DOMAIN) for u in many],
                                message("one"))
    assert len(done) == 260 and all(d.startswith("250") for d in done)
    deliver_many(master.port, "zed@" + DOMAIN, 60, "z")
    rep = cluster.replica(master, 0, GUARD)
    wait_same(master, rep)
    rep.stop()
    master.stop()
    sql_expunge_all(master.data, many + ["zed"])
    master.start()
    rep.start()
    wait_paused(rep)
    assert "zed" in status(rep.data)["paused"]
    # zed's messages are all still there; the others' single ones went.
    end = time.monotonic() + SYNC_DEADLINE
    while time.monotonic() < end:
        left = user_messages(rep.data)
        if set(left) == {"zed"}:
            break
        time.sleep(0.1)
    assert left == {"zed": 60}, left


def user_messages(data):
    db = sqlite3.connect("file:%s/mailrepd.db?mode=ro" % data, uri=True)
    try:
        return dict(db.execute(
            "SELECT u.name, count(*) FROM message m JOIN mailbox mb "
            "ON mb.id = m.mailbox_id JOIN user u ON u.id = mb.user_id "
            "GROUP BY u.name").fetchall())
    finally:
        db.close()


def test_quarantine_list_show_restore(cluster):
    """What a replica deleted is found and shown with `mailrepd
    quarantine`, and restored on a (promoted) master into a visible
    mailbox, re-created when it was deleted."""
    master, _ = cluster(0)
    c = master.imap("alice")
    assert c.create("Projects")[0] == "OK"
    assert c.append("Projects", None, None, message("in-projects"))[0] \
        == "OK"
    c.logout()
    deliver_many(master.port, "alice@" + DOMAIN, 3, "q")
    rep = cluster.replica(master, 0, GUARD)
    wait_same(master, rep)
    c = master.imap("alice")
    c.select("INBOX")
    assert c.store("1", "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert c.expunge()[0] == "OK"
    assert c.delete("Projects")[0] == "OK"
    c.logout()
    wait_same(master, rep)
    listed = json.loads(run_ok("quarantine", "list", "--json", "--data",
                               rep.data).stdout)
    assert sorted(q["subject"] for q in listed) == ["in-projects", "q0"]
    by_subject = {q["subject"]: q for q in listed}
    assert by_subject["in-projects"]["mailbox"] == "Projects"
    text = run_ok("quarantine", "list", "--data", rep.data).stdout
    assert "Projects" in text and "q0" in text, text
    q0 = str(by_subject["q0"]["id"])
    shown = run_ok("quarantine", "show", q0, "--data", rep.data).stdout
    assert "Subject" in shown and "q0" in shown, shown
    raw = run_ok("quarantine", "show", q0, "--raw", "--data", rep.data)
    assert "body of q0" in raw.stdout
    # A replica's mail comes from its master: no restore there.
    p = run("quarantine", "restore", q0, "--data", rep.data)
    assert p.returncode == 1 and "replica" in p.stderr, p.stderr
    p = run("quarantine", "show", "999", "--data", rep.data)
    assert p.returncode == 1, p.stdout
    master.stop()
    run_ok("promote", "--data", rep.data)
    wait_for_log(rep, "sync.promote")
    for q in listed:
        out = run_ok("quarantine", "restore", str(q["id"]), "--data",
                     rep.data).stdout
        assert "restored" in out, out
    r = rep.imap("alice")
    for box, want in (("INBOX", ["q0", "q1", "q2"]),
                      ("Projects", ["in-projects"])):
        assert r.select(box, readonly=True)[0] == "OK", box
        typ, data = r.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        got = sorted(item[1].decode().split(":", 1)[1].strip()
                     for item in data if isinstance(item, tuple))
        assert got == want, (box, got)
    r.logout()
    assert json.loads(run_ok("quarantine", "list", "--json", "--data",
                             rep.data).stdout) == []
    check = run("check", "--data", rep.data)
    assert check.returncode == 0, check.stdout + check.stderr


def test_held_user_resumes_in_order(cluster):
    """While alice is paused her later records wait behind the deletes
    (a mailbox created and mail put into it included); a plain resume
    counts the deletes again and pauses again; --allow-deletes --user
    applies them all, in order, and the replica ends equal to its
    master."""
    master, _ = cluster(0)
    rep, c, left = paused_by_expunge(master, cluster, 30, 30, "r")
    assert c.create("Later")[0] == "OK"
    assert c.append("Later", None, None, message("later"))[0] == "OK"
    c.logout()
    assert lmtp_one(master.port, "bob@" + DOMAIN,
                    message("for-bob"))[0].startswith("250")
    end = time.monotonic() + SYNC_DEADLINE
    while time.monotonic() < end and user_messages(rep.data).get("bob") \
            != 1:
        time.sleep(0.05)
    assert user_messages(rep.data) == {"alice": left, "bob": 1}
    assert "Later" not in names(rep.data)
    st = status(rep.data)["paused_users"]
    # The expunges not applied, then Later's creation and its message.
    assert [(p["user"], p["held"] > left) for p in st] == [("alice", True)]
    p = run_ok("replica", "resume", "--data", rep.data)
    assert "resumed 1 user" in p.stdout, p.stdout
    end = time.monotonic() + SYNC_DEADLINE
    while time.monotonic() < end and \
            rep.log_text().count("sync.guard.paused") < 2:
        time.sleep(0.05)
    assert rep.log_text().count("sync.guard.paused") == 2
    assert status(rep.data)["paused_users"][0]["state"] == "held"
    assert user_messages(rep.data) == {"alice": left, "bob": 1}
    p = run_ok("replica", "resume", "--allow-deletes", "--user", "alice",
               "--data", rep.data)
    assert "deletes allowed" in p.stdout, p.stdout
    wait_same(master, rep)
    assert status(rep.data)["paused"] is None
    assert quarantined(rep.data) == 30
    assert run_ok("replica", "resume", "--data", rep.data).stdout == \
        "not paused\n"
