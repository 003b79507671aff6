"""What a replica does with each kind of record, driven by a scripted
master (repl_peer.py) so that every branch is reached on purpose:

- a re-sent append takes the master's flags; an append without a body
  finds the blob the replica has, or is skipped when it has none;
  records for a mailbox the replica does not know change nothing;
- a mailbox created under a name the replica uses for another mailbox
  steps that one aside ("NAME-<id>"); a mailbox delete waits while the
  mailbox holds a conflicting local message;
- a body whose lines are longer than the replica feeds the MIME parser
  at once, or that does not end in a newline, or is empty, is stored
  byte for byte;
- a user held by the guard has every later record held too, and an
  operator's `replica resume --allow-deletes` replays them in steps of
  one batch, in order: a held append whose uid the replica uses for
  another message becomes a conflict, a held record for a mailbox an
  earlier held record deleted changes nothing;
- a replicated `user del` removes the user and keeps its mailboxes'
  messages in quarantine, and the mass-delete guard counts every
  mailbox of that user: past --guard-max-mailbox-deletes it pauses the
  user instead.
"""
import hashlib
import json
import os
import sqlite3
import time

from conftest import HOST, free_port, run, run_ok
from repl_peer import ScriptedMaster, messages, wait_log
from test_replication import SECRET, secret  # noqa: F401


def body(tag):
    return (b"From: <s@remote.test>\r\nSubject: %s\r\n\r\nbody %s\r\n" %
            (tag, tag))


def guid(b):
    return hashlib.sha256(b).digest()


def query(data, sql, *args):
    db = sqlite3.connect("file:%s/mailrepd.db?mode=ro" % data, uri=True,
                         timeout=10)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def scripted(server, secret, args=()):
    port = free_port()
    m = ScriptedMaster(port, SECRET)
    rep = server(users=(), args=[
        "--replicate-from", "%s:%d" % (HOST, port),
        "--repl-secret-file", secret, "--name", "r0"] + list(args))
    m.start(m.accept())
    return m, rep


def mailbox(m, user, box, name, uidvalidity=7):
    return ("mailbox.create", dict(user=user, mailbox=box, name=name,
                                   uid=uidvalidity, flags=1))


def test_append_branches(server, secret):
    m, rep = scripted(server, secret)
    try:
        inbox, work, other = os.urandom(16), os.urandom(16), os.urandom(16)
        one = body(b"one")
        m.batch(("user.add", dict(user="alice", value="x")),
                mailbox(m, "alice", inbox, "INBOX"),
                ("message.append", dict(mailbox=inbox, uid=1, body=one,
                                        flags=2)))
        # Sent again (a master resending after a reconnect), with other
        # flags and no body: the master's flags win.
        m.batch(("message.append", dict(mailbox=inbox, uid=1,
                                        guid=guid(one), flags=1)))
        assert query(rep.data, "SELECT flags FROM message") == [(1,)]
        # No body, but the replica has the blob: a copy in Work.  No body
        # and no blob: skipped.  Unknown mailbox: nothing changes.
        m.batch(mailbox(m, "alice", work, "Work"),
                ("message.append", dict(mailbox=work, uid=1,
                                        guid=guid(one))),
                ("message.append", dict(mailbox=work, uid=2,
                                        guid=guid(b"nowhere"))),
                ("message.append", dict(mailbox=other, uid=1,
                                        body=body(b"lost"))),
                ("message.flags", dict(mailbox=other, uid=1,
                                       guid=guid(one), flags=1)),
                ("message.expunge", dict(mailbox=other, uid=1,
                                         guid=guid(one))))
        assert [g for _, g in messages(rep.data)] == \
            [guid(one).hex().upper()] * 2
        # Another mailbox named INBOX: the replica's steps aside.
        since = len(rep.log_text())
        m.batch(mailbox(m, "alice", os.urandom(16), "INBOX", 9))
        wait_log(rep, "store.mailbox.aside", since)
        names = sorted(n for n, in query(rep.data,
                                         "SELECT name FROM mailbox"))
        assert names[0] == "INBOX" and names[1].startswith("INBOX-"), names
        assert names[2] == "Work"
        # A conflict in Work (uid 1 is another message here), then the
        # master deletes Work: held while the conflict is open.
        since = len(rep.log_text())
        m.batch(("message.append", dict(mailbox=work, uid=1,
                                        body=body(b"theirs"))),
                ("mailbox.delete", dict(mailbox=work, name="Work")))
        wait_log(rep, "sync.delete.held", since)
        assert query(rep.data, "SELECT count(*) FROM conflict") == [(1,)]
        text = run_ok("status", "--data", rep.data).stdout
        assert "conflict mailbox=Work uid=1 local_guid=%s master_guid=%s "\
            "user=alice" % (guid(one).hex(),
                            guid(body(b"theirs")).hex()) in text, text
        assert ("Work",) in query(rep.data, "SELECT name FROM mailbox")
        assert guid(one).hex().upper() in [g for _, g in
                                           messages(rep.data)]
    finally:
        m.tls.close()


def test_replicated_user_delete_and_guard(server, secret):
    m, rep = scripted(server, secret,
                      ["--guard-max-mailbox-deletes", "1"])
    try:
        recs = []
        for user in ("bob", "carol"):
            recs.append(("user.add", dict(user=user, value="x")))
            box = os.urandom(16)
            recs.append(mailbox(m, user, box, "INBOX"))
            recs.append(("message.append", dict(mailbox=box, uid=1,
                                                body=body(user.encode()))))
        recs.append(mailbox(m, "bob", os.urandom(16), "Sent"))
        m.batch(*recs)
        # carol has one mailbox: within the guard, deleted, and her
        # message kept in quarantine.
        m.batch(("user.del", dict(user="carol", reason="operator")))
        users = [u for u, in query(rep.data, "SELECT name FROM user")]
        assert users == ["bob"]
        assert query(rep.data, "SELECT user, uid FROM quarantine") == \
            [("carol", 1)]
        # bob has two: past the guard, he is paused and keeps everything.
        since = len(rep.log_text())
        m.batch(("user.del", dict(user="bob", reason="operator")))
        wait_log(rep, "sync.guard.paused", since)
        assert "user=bob" in rep.log_text()[since:]
        assert [u for u, in query(rep.data, "SELECT name FROM user")] == \
            ["bob"]
        assert query(rep.data, "SELECT count(*) FROM held") == [(1,)]
        assert len(messages(rep.data)) == 1
    finally:
        m.tls.close()


# Longer than a replication frame and than the spool keeps in memory.
LONG_LINE = 128 * 1024


def test_bodies_of_any_shape_are_stored_byte_for_byte(server, secret):
    m, rep = scripted(server, secret)
    try:
        inbox = os.urandom(16)
        long_line = (b"From: <s@remote.test>\r\nSubject: long\r\n\r\n" +
                     b"x" * (LONG_LINE + 123) + b"\r\n")
        no_newline = b"Subject: cut\r\n\r\nno newline at the end"
        bodies = [long_line, no_newline, b""]
        m.batch(("user.add", dict(user="alice", value="x")),
                mailbox(m, "alice", inbox, "INBOX"),
                *[("message.append", dict(mailbox=inbox, uid=i + 1, body=b))
                  for i, b in enumerate(bodies)])
        assert messages(rep.data) == [(i + 1, guid(b).hex().upper())
                                      for i, b in enumerate(bodies)]
        sizes = [n for n, in query(rep.data, "SELECT b.size FROM message "
                                   "m JOIN blob b ON b.id = m.blob_id "
                                   "ORDER BY m.uid")]
        assert sizes == [len(b) for b in bodies]
    finally:
        m.tls.close()


def paused_users(data):
    p = run_ok("status", "--json", "--data", data)
    return json.loads(p.stdout)


def test_held_records_replay_in_steps(server, secret):
    m, rep = scripted(server, secret,
                      ["--guard-max-mailbox-deletes", "1"])
    try:
        one, theirs = body(b"one"), body(b"theirs")
        boxes = {}
        recs = []
        for user in ("bob", "carol"):
            recs.append(("user.add", dict(user=user, value="x")))
            for name in ("INBOX", "Sent", "Drafts"):
                boxes[user, name] = os.urandom(16)
                recs.append(mailbox(m, user, boxes[user, name], name))
        recs.append(("message.append", dict(mailbox=boxes["bob", "INBOX"],
                                            uid=1, body=one)))
        m.batch(*recs)
        # Four mailbox deletes where one is allowed: both users paused.
        since = len(rep.log_text())
        m.batch(*[("mailbox.delete", dict(mailbox=boxes[u, n], name=n))
                  for u in ("bob", "carol") for n in ("Sent", "Drafts")])
        wait_log(rep, "sync.guard.paused", since)
        st = paused_users(rep.data)
        assert sorted(p["user"] for p in st["paused_users"]) == \
            ["bob", "carol"]
        assert st["paused"].count("; ") == 1, st["paused"]
        text = run_ok("status", "--data", rep.data).stdout
        assert "paused user bob held=2 state=held" in text, text
        assert "paused user carol held=2 state=held" in text, text
        # bob's later records are held behind his deletes: more than a
        # batch of flag changes, an append on a uid the replica uses,
        # and a change in a mailbox a held record deletes.
        inbox = boxes["bob", "INBOX"]
        flags = [("message.flags", dict(mailbox=inbox, uid=1,
                                        guid=guid(one), flags=i % 2))
                 for i in range(255)]
        m.batch(*flags, ("message.append", dict(mailbox=inbox, uid=1,
                                                body=theirs)))
        m.batch(("message.flags", dict(mailbox=boxes["bob", "Sent"],
                                       uid=1, guid=guid(one), flags=1)),
                ("message.flags", dict(mailbox=inbox, uid=1,
                                       guid=guid(one), flags=4)))
        assert query(rep.data, "SELECT count(*) FROM held") == [(262,)]
        assert query(rep.data, "SELECT flags FROM message") == [(0,)]
        since = len(rep.log_text())
        p = run_ok("replica", "resume", "--allow-deletes", "--data",
                   rep.data)
        assert "resumed 2 users" in p.stdout, p.stdout
        for user in ("bob", "carol"):
            wait_log(rep, "sync.guard.allowed user=%s" % user, since)
        text = rep.log_text()[since:]
        assert "sync.guard.conflict user=bob mailbox=INBOX uid=1" in text
        assert query(rep.data, "SELECT count(*) FROM held") == [(0,)]
        assert paused_users(rep.data)["paused"] is None
        assert sorted(query(rep.data, "SELECT name FROM mailbox")) == \
            [("INBOX",), ("INBOX",)]
        # The replica's message stays, with the last flags held for it.
        assert messages(rep.data) == [(1, guid(one).hex().upper())]
        assert query(rep.data, "SELECT flags FROM message") == [(4,)]
        assert query(rep.data, "SELECT count(*) FROM conflict") == [(1,)]
    finally:
        m.tls.close()


def test_replica_and_status_usage():
    for args, says in ((("replica", "resume", "--help"), "--allow-deletes"),
                       (("replica", "forget", "--help"), "NAME|NODEID"),
                       (("replica", "--help"), "replica forget"),
                       (("status", "--help"), "--json")):
        p = run(*args)
        assert p.returncode == 0 and says in p.stdout, (args, p.stdout)
    for args in (("replica", "pause"), ("replica", "resume", "extra"),
                 ("replica", "resume", "--no-such-option"),
                 ("replica", "forget"), ("replica", "forget", "a", "b"),
                 ("replica", "forget", "--no-such-option"),
                 ("status", "--no-such-option")):
        p = run(*args, "--data", "/nonexistent")
        assert p.returncode == 2 and p.stdout == "", (args, p.stdout)
        assert p.stderr, args


def test_unresolvable_master_is_retried(server, secret):
    rep = server(users=(), args=[
        "--replicate-from", "no-such-host.invalid:4000",
        "--repl-secret-file", secret, "--name", "lost"])
    wait_log(rep, "sync.connect")
    assert 'master=no-such-host.invalid:4000' in rep.log_text()
    time.sleep(0.2)
    assert rep.running()
