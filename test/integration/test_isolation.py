"""Isolation: no path from one session to a mailbox or an account that is
not the one it selected or logged in to.

A session that keeps a deleted (or renamed away) mailbox selected hears
`* BYE` at its next command or wake, and never sees, changes, copies or
expunges the mail of the mailbox created after it, whoever owns that one
(the freed row id used to be handed to the next mailbox anyone created,
`mailrepd user add` included).  `mailrepd user del` and `user passwd`,
run while the server serves, end the user's open sessions; a user added
again under the same name inherits nothing of the old one.
"""
import random
import re
import socket
import sqlite3
import time

import pytest

from conftest import DOMAIN, PASSWORD, IMAPError, run_ok, user_add

SECRET = b"bob-private-secret-7f3a"
WAKE = 5.0  # seconds within which an idle session must hear BYE


def deliver(srv, rcpt, body):
    code, msg = srv.deliver("s@remote.test", [rcpt], body)
    assert code == 250, (code, msg)


def bob_private(srv):
    """bob creates Private and receives mail there; returns his client."""
    bob = srv.raw("bob")
    bob.ok("CREATE Private")
    deliver(srv, "bob+Private@" + DOMAIN,
            b"Subject: private\r\n\r\n" + SECRET + b"\r\n")
    assert bob.status("Private")["MESSAGES"] == 1
    return bob


def select_then_delete(srv, name="x"):
    """alice's session A selects `name` (one message) and stays idle;
    alice's session B deletes it.  Returns A."""
    a = srv.raw("alice")
    a.ok("CREATE %s" % name)
    a.append(name, b"Subject: alice\r\n\r\nalice's own\r\n")
    a.ok("SELECT %s" % name)
    b = srv.raw("alice")
    b.ok("DELETE %s" % name)
    b.close()
    return a


def run_until_closed(c, commands):
    """Sends each command until the server closes the connection; returns
    every line the server said, and "closed" when it closed."""
    said = []
    for command in commands:
        t = c.tag()
        try:
            c.send("%s %s\r\n" % (t, command))
            while True:
                line = c.line()
                said.append(line)
                if line.startswith(t + " "):
                    break
        except (OSError, IMAPError) as e:
            if isinstance(e, IMAPError) and "closed" not in str(e):
                raise
            said += [c.buf.decode("latin-1"), "closed"]
            return said
    said += c.wait_closed(timeout=2.0) + ["closed"]
    return said


def assert_bye(said):
    text = "\n".join(said)
    assert any(l.startswith("* BYE") for l in said), text
    assert said[-1] == "closed", text


def assert_bob_untouched(srv, bob):
    """bob's message is where it was, unflagged, and alice has no copy."""
    untagged = bob.ok("EXAMINE Private")
    assert "* 1 EXISTS" in untagged, untagged
    flags = bob.ok("FETCH 1 FLAGS")
    assert not re.search(r"\\(Deleted|Flagged|Seen)", flags[0]), flags
    alice = srv.raw("alice")
    n = alice.status("INBOX")["MESSAGES"]
    if n:
        body = "\n".join(alice.ok("FETCH 1:* BODY.PEEK[]"))
        assert SECRET.decode() not in body
    alice.close()


# Each command a session may send with its mailbox deleted under it.
COMMANDS = [
    ["NOOP"],
    ["CHECK"],
    ["FETCH 1 (FLAGS BODY.PEEK[])"],
    ["UID FETCH 1:* (BODY.PEEK[TEXT])"],
    ["STORE 1 +FLAGS (\\Flagged)"],
    ["UID STORE 1 +FLAGS.SILENT (\\Deleted)", "EXPUNGE"],
    ["STORE 1 +FLAGS.SILENT (\\Deleted)", "CLOSE"],
    ["STORE 1 +FLAGS.SILENT (\\Deleted)", "UID EXPUNGE 1"],
    ["COPY 1 INBOX"],
    ["UID MOVE 1 INBOX"],
    ["SEARCH BODY %s" % SECRET.decode()],
    ["UID SEARCH ALL"],
    ["UNSELECT"],
]


@pytest.mark.parametrize("commands", COMMANDS,
                         ids=[" / ".join(c) for c in COMMANDS])
def test_deleted_mailbox_never_reaches_another_users_mail(imap_srv, commands):
    a = select_then_delete(imap_srv)
    bob = bob_private(imap_srv)
    said = run_until_closed(a, commands)
    assert SECRET.decode() not in "\n".join(said), said
    assert not any(re.match(r"^\* [1-9]\d* EXISTS", l) for l in said), said
    assert not any(re.match(r"^\* SEARCH \d", l) for l in said), said
    assert_bye(said)
    assert_bob_untouched(imap_srv, bob)
    imap_srv.assert_clean()


def test_idle_session_hears_bye_when_its_mailbox_is_deleted(imap_srv):
    a = imap_srv.raw("alice")
    a.ok("CREATE x")
    a.ok("SELECT x")
    a.send("i1 IDLE\r\n")
    assert a.line().startswith("+")
    b = imap_srv.raw("alice")
    b.ok("DELETE x")
    bob = bob_private(imap_srv)
    said = a.wait_closed(timeout=WAKE) + ["closed"]
    assert_bye(said)
    assert not any("EXISTS" in l for l in said), said
    assert_bob_untouched(imap_srv, bob)


def test_user_add_while_serving_takes_no_freed_mailbox(imap_srv):
    """The CLI's `user add` creates mailboxes from another process; none
    of them may take the id of the mailbox a session still holds."""
    a = select_then_delete(imap_srv)
    user_add(imap_srv.data, "carol")
    deliver(imap_srv, "carol@" + DOMAIN,
            b"Subject: carol\r\n\r\n" + SECRET + b"\r\n")
    said = run_until_closed(a, ["FETCH 1:* (FLAGS BODY.PEEK[])"])
    assert SECRET.decode() not in "\n".join(said), said
    assert_bye(said)
    carol = imap_srv.raw("carol")
    assert carol.status("INBOX")["MESSAGES"] == 1


def test_recreated_mailbox_has_fresh_recent(imap_srv):
    """\\Recent is not inherited by a mailbox created after another was
    deleted (imaptest's select, copy and search-flags groups)."""
    a = imap_srv.raw("alice")
    a.ok("CREATE x")
    a.append("x", b"Subject: 1\r\n\r\none\r\n")
    assert "* 1 RECENT" in a.ok("SELECT x")
    a.ok("UNSELECT")
    a.ok("DELETE x")
    a.ok("CREATE x")
    a.append("x", b"Subject: 2\r\n\r\ntwo\r\n")
    b = imap_srv.raw("alice")
    assert "* 1 RECENT" in b.ok("SELECT x")


def test_renamed_away_mailbox_ends_other_sessions(imap_srv):
    """A session whose mailbox is renamed by another session hears BYE at
    its next command, never the mailbox created under the old name."""
    a = imap_srv.raw("alice")
    a.ok("CREATE x")
    a.append("x", b"Subject: old\r\n\r\nold\r\n")
    a.ok("SELECT x")
    b = imap_srv.raw("alice")
    b.ok("RENAME x y")
    b.ok("CREATE x")
    b.append("x", b"Subject: new\r\n\r\n" + SECRET + b"\r\n")
    said = run_until_closed(a, ["NOOP", "FETCH 1:* BODY.PEEK[]"])
    assert SECRET.decode() not in "\n".join(said), said
    assert_bye(said)
    # The renamed mailbox kept its message.
    assert b.status("y")["MESSAGES"] == 1


def test_own_rename_keeps_session(imap_srv):
    """The session that renames its own selected mailbox keeps it."""
    a = imap_srv.raw("alice")
    a.ok("CREATE x")
    a.append("x", b"Subject: old\r\n\r\nmine\r\n")
    a.ok("SELECT x")
    a.ok("RENAME x y")
    a.ok("NOOP")
    assert "mine" in "\n".join(a.ok("FETCH 1 BODY.PEEK[TEXT]"))


def login_dave(srv, password=PASSWORD):
    c = srv.raw("dave", password=password)
    return c


def test_user_del_ends_sessions_and_new_user_inherits_nothing(imap_srv):
    user_add(imap_srv.data, "dave")
    old = login_dave(imap_srv)
    old.ok("CREATE Folder")
    old.ok("SUBSCRIBE Folder")
    old.append("INBOX", b"Subject: old dave\r\n\r\nold\r\n")
    idle = login_dave(imap_srv)
    idle.ok("SELECT INBOX")
    idle.send("i1 IDLE\r\n")
    assert idle.line().startswith("+")
    authed = login_dave(imap_srv)

    run_ok("user", "del", "dave", "--data", imap_srv.data)
    assert_bye(idle.wait_closed(timeout=WAKE) + ["closed"])
    user_add(imap_srv.data, "dave", password="another password")
    deliver(imap_srv, "dave@" + DOMAIN,
            b"Subject: new dave\r\n\r\n" + SECRET + b"\r\n")

    for c, commands in ((old, ["SELECT INBOX", "FETCH 1:* BODY.PEEK[]"]),
                        (authed, ["STATUS INBOX (MESSAGES)",
                                  "LIST \"\" *"])):
        said = run_until_closed(c, commands)
        assert SECRET.decode() not in "\n".join(said), said
        assert not any(l.startswith("* STATUS") or l.startswith("* LIST")
                       or "EXISTS" in l for l in said), said
        assert_bye(said)

    new = login_dave(imap_srv, "another password")
    lsub = "\n".join(new.ok('LSUB "" *'))
    assert "Folder" not in lsub, lsub
    assert "Folder" not in "\n".join(new.ok('LIST "" *'))
    assert new.status("INBOX")["MESSAGES"] == 1


def test_user_passwd_ends_sessions(imap_srv):
    user_add(imap_srv.data, "dave")
    selected = login_dave(imap_srv)
    selected.ok("SELECT INBOX")
    idle = login_dave(imap_srv)
    idle.ok("SELECT INBOX")
    idle.send("i1 IDLE\r\n")
    assert idle.line().startswith("+")

    run_ok("user", "passwd", "dave", "--data", imap_srv.data,
           input="a new password\n")
    assert_bye(idle.wait_closed(timeout=WAKE) + ["closed"])
    assert_bye(run_until_closed(selected, ["NOOP"]))
    c = imap_srv.raw(login=False)
    _, done = c.cmd('LOGIN "dave" "%s"' % PASSWORD)
    assert done.startswith("NO"), done
    login_dave(imap_srv, "a new password").ok("SELECT INBOX")
    # Other users' sessions are not touched.
    alice = imap_srv.raw("alice")
    alice.ok("NOOP")


def test_ids_never_reused(imap_srv):
    """Every table whose ids a session or replica holds hands out each id
    once (AUTOINCREMENT), across processes too."""
    a = imap_srv.raw("alice")
    a.ok("CREATE x")
    a.ok("DELETE x")
    a.ok("CREATE x2")
    user_add(imap_srv.data, "erin")
    run_ok("user", "del", "erin", "--data", imap_srv.data)
    user_add(imap_srv.data, "erin")
    db = sqlite3.connect("file:%s/mailrepd.db?mode=ro" % imap_srv.data,
                         uri=True)
    try:
        for table in ("user", "mailbox", "blob", "conflict", "quarantine"):
            sql = db.execute("SELECT sql FROM sqlite_master WHERE name = ?",
                             (table,)).fetchone()[0]
            assert "AUTOINCREMENT" in sql.upper(), (table, sql)
        ids = [r[0] for r in db.execute(
            "SELECT m.id FROM mailbox m JOIN user u ON u.id = m.user_id "
            "WHERE u.name = 'alice' ORDER BY m.id")]
        seq = dict(db.execute("SELECT name, seq FROM sqlite_sequence"))
        # x took an id that x2 did not get back.
        assert seq["mailbox"] > max(ids), (ids, seq)
        (erin,) = db.execute("SELECT id FROM user WHERE name = 'erin'"
                             ).fetchone()
        assert erin == seq["user"] and erin > 3, (erin, seq)
    finally:
        db.close()


# What the schema steps after version 9 added (store.c), undone so that
# the migration from version 8 runs them again on a faithful old store.
# What schema version 16 made: subscriptions back in the mailbox rows.
UNDO_V16 = [
    "ALTER TABLE mailbox ADD COLUMN subscribed INTEGER NOT NULL DEFAULT 0",
    "UPDATE mailbox SET subscribed = EXISTS (SELECT 1 FROM subscription s "
    "WHERE s.user_id = mailbox.user_id AND s.name = mailbox.name)",
    "UPDATE replog SET type = 'mailbox.subscribe', mailbox = (SELECT "
    "m.uniqueid FROM mailbox m JOIN user u ON u.id = m.user_id WHERE "
    "u.name = replog.user AND m.name = replog.name) "
    "WHERE type = 'user.subscribe'",
    "DROP TRIGGER mailbox_renamed",
    "DROP TRIGGER user_deleted",
    "DROP TABLE subscription",
]

# What schema version 17 made: the counters of unseen messages and bytes.
UNDO_V17 = [
    "DROP INDEX message_unseen",
    "ALTER TABLE mailbox DROP COLUMN nunseen",
    "ALTER TABLE mailbox DROP COLUMN nbytes",
]

# What schema version 18 made: the web view's index by date.
UNDO_V18 = ["DROP INDEX message_date"]

# What schema version 19 made: SEARCH's full-text index.
UNDO_V19 = ["DROP TABLE fts", "DROP TABLE fts_skipped", "DROP TABLE fts_state"]

# What schema version 20 made: each message's save date (SAVEDATE).
UNDO_V20 = ["ALTER TABLE message DROP COLUMN savedate"]

# What schema version 21 made: the journal of COPY and MOVE in steps.
UNDO_V21 = ["DROP TABLE copy_job"]
UNDO_V23 = ["DROP TABLE uid_purged"]
UNDO_V22 = ["DROP INDEX message_deleted"]

# What schema version 26 made: the partial indexes of unseen and
# \Deleted messages holding the flags (back to those of 17 and 22), the
# index of UIDs and the partial one of keywords.
UNDO_V26 = [
    "DROP INDEX message_unseen",
    "CREATE INDEX message_unseen ON message(mailbox_id, uid) "
    "WHERE flags & 1 = 0",
    "DROP INDEX message_deleted",
    "CREATE INDEX message_deleted ON message(mailbox_id, uid) "
    "WHERE flags & 8 = 8",
    "DROP INDEX message_uids",
    "DROP INDEX message_keywords",
]


# What schema version 25 made: the list of loose pieces (big blobs
# written and dropped in steps); undone by undo_v24() first, so that
# every downgrade from the current version starts there.
UNDO_V25 = ["DROP TABLE piece_loose"]


def undo_v24(db):
    """Undoes what schema versions 25 and 24 made on connection db: every
    blob's bytes back from pieces of 800 bytes (row id blob id << 24 |
    number) into 64 KiB chunks stored as they came, no piece tables, and
    each header block kept as its length stored again.  Loose pieces
    (no blob row) are left out."""
    for sql in UNDO_V25:
        db.execute(sql)
    whole = {}
    for rowid, data in db.execute("SELECT id, data FROM piece WHERE "
                                  "id >> 24 IN (SELECT id FROM blob) "
                                  "ORDER BY id").fetchall():
        whole[rowid >> 24] = whole.get(rowid >> 24, b"") + data
    for blob_id, n in db.execute("SELECT id, header FROM blob WHERE "
                                 "typeof(header) = 'integer'").fetchall():
        db.execute("UPDATE blob SET header = ? WHERE id = ?",
                   (whole[blob_id][:n], blob_id))
    for blob_id, data in whole.items():
        for seq in range((len(data) + 65535) // 65536):
            db.execute("INSERT INTO chunk VALUES (?, ?, 0, ?)",
                       (blob_id, seq, data[seq * 65536:(seq + 1) * 65536]))
    db.execute("DROP TABLE piece")
    db.execute("DROP TABLE piece_form")


UNDO_AFTER_V9 = UNDO_V23 + UNDO_V22 + UNDO_V21 + UNDO_V20 + UNDO_V19 + UNDO_V18 + \
    UNDO_V17 + UNDO_V16 + [
    # version 11 added them, version 15 dropped them again
    "DROP TRIGGER IF EXISTS message_counted",
    "DROP TRIGGER IF EXISTS message_uncounted",
    "ALTER TABLE mailbox DROP COLUMN nmessages",
    "DROP INDEX expunged_time",
    "DROP INDEX mailbox_gone_time",
    "DROP INDEX renumbered_time",
    "DROP INDEX conflict_time",
    "ALTER TABLE expunged DROP COLUMN logpos",
    "ALTER TABLE mailbox_gone DROP COLUMN logpos",
    "ALTER TABLE renumbered DROP COLUMN logpos",
    "ALTER TABLE mailbox DROP COLUMN tombs_purged",
    "ALTER TABLE node DROP COLUMN marker_ino",
    "ALTER TABLE node DROP COLUMN marker_time",
    "ALTER TABLE mailbox DROP COLUMN named",
    "DROP TABLE blob_unused",
]


def downgrade_before_autoincrement(data):
    """Turns a store into what schema version 8 made, the step before
    ids were never reused: the tables without AUTOINCREMENT, their ids in
    sqlite_sequence forgotten."""
    db = sqlite3.connect(str(data / "mailrepd.db"), isolation_level=None)
    try:
        db.execute("PRAGMA foreign_keys = OFF")
        db.execute("BEGIN")
        for sql in UNDO_V26:
            db.execute(sql)
        undo_v24(db)
        for sql in UNDO_AFTER_V9:
            db.execute(sql)
        for table in ("user", "mailbox", "blob", "conflict", "quarantine"):
            sql, = db.execute("SELECT sql FROM sqlite_master WHERE "
                              "type = 'table' AND name = ?",
                              (table,)).fetchone()
            idx = [r[0] for r in db.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND "
                "tbl_name = ? AND sql IS NOT NULL", (table,))]
            old = re.sub(r"(?i)\s*AUTOINCREMENT", "", sql)
            old = re.sub(r'^CREATE TABLE "?%s"?' % table,
                         "CREATE TABLE new_%s" % table, old)
            db.execute(old)
            db.execute("INSERT INTO new_%s SELECT * FROM %s" % (table, table))
            db.execute("DROP TABLE %s" % table)
            db.execute("ALTER TABLE new_%s RENAME TO %s" % (table, table))
            for i in idx:
                db.execute(i)
            db.execute("DELETE FROM sqlite_sequence WHERE name = ?", (table,))
        db.execute("PRAGMA user_version = 8")
        db.execute("COMMIT")
    finally:
        db.close()


def test_migration_keeps_data_and_stops_reuse(server, tmp_path):
    s = server(imap=True)
    a = s.raw("alice")
    a.ok("CREATE Keep")
    a.append("Keep", b"Subject: kept\r\n\r\nkept body\r\n")
    a.ok("CREATE Last")
    a.close()
    s.stop()
    db = sqlite3.connect(str(s.data / "mailrepd.db"))
    nidx = db.execute("SELECT count(*) FROM sqlite_master WHERE "
                      "type = 'index'").fetchone()[0]
    db.close()
    downgrade_before_autoincrement(s.data)
    db = sqlite3.connect(str(s.data / "mailrepd.db"))
    (last,) = db.execute("SELECT max(id) FROM mailbox").fetchone()
    db.close()
    s.start()
    a = s.raw("alice")
    assert "kept body" in "\n".join(
        a.ok("SELECT Keep") + a.ok("FETCH 1 BODY.PEEK[TEXT]"))
    a.ok("DELETE Last")
    a.ok("CREATE Next")
    s.stop()
    run_ok("check", "--data", s.data)
    db = sqlite3.connect(str(s.data / "mailrepd.db"))
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] >= 9
        (nxt,) = db.execute("SELECT id FROM mailbox WHERE name = 'Next'"
                            ).fetchone()
        assert nxt > last, (nxt, last)
        assert db.execute("SELECT count(*) FROM sqlite_master WHERE "
                          "type = 'index'").fetchone()[0] == nidx
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        for table in ("user", "mailbox", "blob", "conflict", "quarantine"):
            sql, = db.execute("SELECT sql FROM sqlite_master WHERE "
                              "name = ?", (table,)).fetchone()
            assert "AUTOINCREMENT" in sql.upper(), sql
    finally:
        db.close()


def noise(rng, size, marker=b""):
    """About size bytes of 8-bit lines that do not compress, each with
    marker in it."""
    table = bytes(0x21 + b % 0xdf for b in range(256))
    raw = rng.randbytes(size).translate(table)
    return b"".join(marker + raw[i:i + 70] + b"\r\n"
                    for i in range(0, size, 70))


def test_streamed_fetch_never_reads_another_blob(imap_srv):
    """A FETCH of a large body, paused because its client does not read,
    goes on after the message was deleted and another user's large
    message stored: it must never send the other message's bytes (the
    freed chunk rows' ids are given to the new message's chunks)."""
    rng = random.Random(16)
    size = 16 << 20  # more than the kernel's socket buffers hold
    a = imap_srv.raw("alice")
    a.ok("CREATE x")
    a.append("x", b"Subject: big\r\n\r\n" + noise(rng, size))
    a.ok("SELECT x")
    a.send("f1 FETCH 1 BODY.PEEK[]\r\n")
    time.sleep(1.0)  # the server fills its buffers and stops
    b = imap_srv.raw("alice")
    b.ok("DELETE x")
    bob = imap_srv.raw("bob")
    bob.append("INBOX", b"Subject: bob big\r\n\r\n" +
               noise(rng, size, SECRET))
    got = b""
    a.sock.settimeout(30)
    while b"\r\nf1 " not in got[-300:]:
        try:
            chunk = a.sock.recv(1 << 20)
        except (socket.timeout, ConnectionResetError):
            break
        if not chunk:
            break
        got += chunk
    assert SECRET not in got
    imap_srv.assert_clean()
