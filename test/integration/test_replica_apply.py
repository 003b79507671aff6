"""What a replica does with each kind of record, driven by a scripted
master (repl_peer.py) so that every branch is reached on purpose:

- a re-sent append takes the master's flags; an append without a body
  finds the blob the replica has, or is skipped when it has none;
  records for a mailbox the replica does not know change nothing;
- a mailbox created under a name the replica uses for another mailbox
  steps that one aside ("NAME-<id>"); a mailbox delete waits while the
  mailbox holds a conflicting local message;
- a replicated `user del` removes the user and keeps its mailboxes'
  messages in quarantine, and the mass-delete guard counts every
  mailbox of that user: past --guard-max-mailbox-deletes it pauses the
  user instead.
"""
import hashlib
import os
import sqlite3

from conftest import HOST, free_port
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
