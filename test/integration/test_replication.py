"""Replication (issue 5): a master and two replicas on loopback.

Every kind of change made on the master arrives identically on each
replica (compared as each mailbox's identity, uid, guid and flags, read
from the stores); a replica killed -9 resumes without duplicates or
gaps; a wrong secret fails the TLS-PSK handshake, logged on both ends,
and the replica stores nothing; a replica holding another message at
the same UID records a conflict and keeps its message; a replica serves
IMAP read-only and answers LMTP with 451.
"""
import json
import sqlite3
import subprocess
import time

import pytest

from conftest import (DOMAIN, HOST, MAILREPD, PASSWORD, LMTPClient,
                      free_port, run, run_ok)

SECRET = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
SYNC_DEADLINE = 20.0


def listing(data):
    """What must be the same on every node: users and passwords,
    mailboxes by identity, and every message's uid, guid and flags."""
    db = sqlite3.connect("file:%s/mailrepd.db?mode=ro" % data, uri=True,
                         timeout=10)
    try:
        users = db.execute("SELECT name, password FROM user "
                           "ORDER BY name").fetchall()
        # Subscriptions are by name: a deleted mailbox's stays.
        boxes = db.execute(
            "SELECT u.name, m.name, hex(m.uniqueid), m.uidvalidity, "
            "s.name IS NOT NULL, m.special_use FROM mailbox m JOIN user u "
            "ON u.id = m.user_id LEFT JOIN subscription s ON "
            "s.user_id = m.user_id AND s.name = m.name "
            "UNION ALL SELECT u.name, s.name, NULL, NULL, 1, NULL "
            "FROM subscription s JOIN user u ON u.id = s.user_id "
            "WHERE NOT EXISTS (SELECT 1 FROM mailbox m WHERE "
            "m.user_id = s.user_id AND m.name = s.name) "
            "ORDER BY 1, 2").fetchall()
        msgs = db.execute(
            "SELECT hex(mb.uniqueid), m.uid, hex(b.guid), m.flags, "
            "m.keywords FROM message m JOIN blob b ON b.id = m.blob_id "
            "JOIN mailbox mb ON mb.id = m.mailbox_id "
            "ORDER BY mb.uniqueid, m.uid").fetchall()
    finally:
        db.close()
    return users, boxes, msgs


def status(data):
    p = run_ok("status", "--json", "--data", data)
    return json.loads(p.stdout)


def wait_same(master, *replicas, deadline=SYNC_DEADLINE):
    """Waits until every replica's listing equals the master's."""
    want = None
    end = time.monotonic() + deadline
    while True:
        want = listing(master.data)
        got = [listing(r.data) for r in replicas]
        if all(g == want for g in got):
            return want
        if time.monotonic() > end:
            for r, g in zip(replicas, got):
                assert g == want, "replica %s differs; log:\n%s\n" \
                    "master log:\n%s" % (r.data, r.log_text()[-3000:],
                                         master.log_text()[-3000:])
        time.sleep(0.05)


@pytest.fixture
def secret(tmp_path):
    p = tmp_path / "repl.secret"
    p.write_text(SECRET + "\n")
    p.chmod(0o600)
    return p


@pytest.fixture
def cluster(server, secret):
    return make_cluster(server, secret)


def make_cluster(server, secret):
    """make(nreplicas) -> (master, [replicas]), every node on loopback,
    each made by the server fixture (or one that takes its arguments)."""
    def make(nreplicas=2, replica_args=()):
        port = free_port()
        master = server(imap=True, args=[
            "--repl-listen", "%s:%d" % (HOST, port),
            "--repl-secret-file", secret])
        master.repl_port = port
        replicas = [replica(master, i, replica_args)
                    for i in range(nreplicas)]
        return master, replicas

    def replica(master, i, args=()):
        return server(users=(), imap=True, args=[
            "--replicate-from", "%s:%d" % (HOST, master.repl_port),
            "--repl-secret-file", secret, "--name", "replica%d" % i] +
            list(args))

    make.replica = replica
    return make


def lmtp_one(port, rcpt, body):
    """One LMTP transaction; returns the reply lines after the data."""
    with LMTPClient(port) as c:
        c.lhlo()
        c.cmd("MAIL FROM:<s@remote.test>", "250")
        c.cmd("RCPT TO:<%s>" % rcpt, "250")
        c.cmd("DATA", "354")
        c.send(body.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        return c.reply()


def message(tag, size=0):
    pad = ("x" * 76 + "\r\n") * (size // 78)
    return ("From: <s@remote.test>\r\nTo: <alice@%s>\r\nSubject: %s\r\n"
            "Message-ID: <%s@test>\r\n\r\nbody of %s\r\n%s" % (
                DOMAIN, tag, tag, tag, pad)).encode()


def test_every_mutation_arrives_identically(cluster):
    master, replicas = cluster(2)
    wait_same(master, *replicas)
    for i in range(5):
        assert lmtp_one(master.port, "alice@" + DOMAIN,
                        message("a%d" % i))[0].startswith("250")
    # A large message crosses in several BLOB_CHUNK_SIZE chunks.
    assert lmtp_one(master.port, "bob@" + DOMAIN,
                    message("big", 300000))[0].startswith("250")
    c = master.imap("alice")
    assert c.create("Work")[0] == "OK"
    assert c.create("Work/Deep")[0] == "OK"
    c.select("INBOX")
    assert c.store("1:2", "+FLAGS", "(\\Seen \\Flagged)")[0] == "OK"
    assert c.store("3", "+FLAGS", "(\\Deleted $Label1)")[0] == "OK"
    assert c.copy("1:2", "Work")[0] == "OK"
    assert c.expunge()[0] == "OK"
    assert c.rename("Work", "Projects")[0] == "OK"
    assert c.subscribe("Projects")[0] == "OK"
    assert c.unsubscribe("Sent")[0] == "OK"
    assert c.create("Gone")[0] == "OK"
    assert c.delete("Gone")[0] == "OK"
    c.logout()
    run_ok("user", "add", "carol", "--data", master.data,
           input=PASSWORD + "\n")
    run_ok("user", "passwd", "bob", "--data", master.data,
           input="n3w-password\n")
    want = wait_same(master, *replicas)
    users, boxes, msgs = want
    assert [u for u, _ in users] == ["alice", "bob", "carol"]
    assert any(b[1] == "Projects/Deep" for b in boxes)
    assert not any(b[1] == "Gone" for b in boxes)
    assert len(msgs) == 4 + 1 + 2, msgs
    # The new password works on a replica (over IMAP, read-only).
    r = replicas[0].imap("bob", "n3w-password")
    r.logout()
    st = status(master.data)
    assert st["role"] == "master"
    names = sorted(x["name"] for x in st["replicas"])
    assert names == ["replica0", "replica1"]
    rs = status(replicas[0].data)
    assert rs["role"] == "replica"
    assert rs["master"]["node_id"] == st["node_id"]
    assert rs["master"]["applied"] == st["log_head"]
    for r in replicas:
        check = run("check", "--data", r.data)
        assert check.returncode == 0, check.stdout + check.stderr


def test_replica_is_read_only(cluster):
    master, (rep,) = cluster(1)
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("ro"))[0].startswith("250")
    wait_same(master, rep)
    reply = lmtp_one_refused(rep.port)
    assert reply[-1].startswith("451 4.3.0"), reply
    c = rep.raw("alice")
    _, done = c.cmd("SELECT INBOX")
    assert "[READ-ONLY]" in done, done
    for cmd in ("CREATE Nope", "DELETE Sent", "RENAME Sent Sent2",
                "SUBSCRIBE Sent", "STORE 1 +FLAGS (\\Seen)",
                "COPY 1 Sent", "EXPUNGE"):
        _, done = c.cmd(cmd)
        assert done.startswith("NO"), (cmd, done)
    _, done = c.cmd("APPEND INBOX {3+}\r\nabc")
    assert done.startswith("NO"), done
    untagged = c.ok("FETCH 1 (BODY[] FLAGS)")
    assert b"body of ro" in untagged[0].encode("latin-1")
    c.close()
    wait_same(master, rep)


def lmtp_one_refused(port):
    with LMTPClient(port) as c:
        c.lhlo()
        c.send(b"MAIL FROM:<s@remote.test>\r\n")
        return c.reply()


def test_kill9_mid_stream_resumes_exactly_once(cluster, secret):
    master, (rep,) = cluster(1)
    wait_same(master, rep)
    rep.stop()
    for i in range(300):
        assert lmtp_one(master.port, "alice@" + DOMAIN,
                        message("k%d" % i, 2000))[0].startswith("250")
    rep.start()
    # Kill it while it catches up, as many times as it takes to land
    # mid-stream at least once; then let it finish.
    for _ in range(3):
        time.sleep(0.3)
        rep.kill9()
        rep.start()
    users, boxes, msgs = wait_same(master, rep, deadline=60)
    uids = [m[1] for m in msgs if m[0] == next(
        b[2] for b in boxes if b[0] == "alice" and b[1] == "INBOX")]
    assert uids == list(range(1, 301)), uids[:10]
    assert status(rep.data)["master"]["applied"] == \
        status(master.data)["log_head"]


def test_wrong_secret_is_refused(cluster, server, tmp_path):
    master, _ = cluster(0)
    bad = tmp_path / "bad.secret"
    bad.write_text("not-the-secret-at-all-0123456789\n")
    bad.chmod(0o600)
    rep = server(users=(), args=[
        "--replicate-from", "%s:%d" % (HOST, master.repl_port),
        "--repl-secret-file", bad, "--name", "intruder"])
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("secret"))[0].startswith("250")
    end = time.monotonic() + 10
    while time.monotonic() < end:
        if "sync.auth.failed" in rep.log_text() and \
           "sync.auth.failed" in master.log_text():
            break
        time.sleep(0.1)
    # Both ends say so in one line, naming the cause.
    for node in (rep, master):
        lines = [ln for ln in node.log_text().splitlines()
                 if "sync.auth.failed" in ln]
        assert lines and "wrong secret" in lines[0], node.log_text()
    # The TLS-PSK handshake failed: not a frame was exchanged, nothing
    # stored (no user, no mailbox, no message), no replica recorded.
    assert "sync.streaming" not in rep.log_text()
    assert "sync.replica.connected" not in master.log_text()
    assert listing(rep.data) == ([], [], [])
    assert status(master.data)["replicas"] == []


def test_secret_file_must_be_private(server, secret, tmp_path):
    secret.chmod(0o644)
    p = subprocess.run([MAILREPD, "serve", "--data", str(tmp_path / "d"),
                        "--repl-listen", "%s:%d" % (HOST, free_port()),
                        "--repl-secret-file", str(secret)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, p.stderr
    assert "repl-secret-file" in p.stderr and "group" in p.stderr


def test_conflict_keeps_the_local_message(cluster, tmp_path):
    """Policy keep, while streaming: recorded, alerted, nothing moved."""
    master, (rep,) = cluster(1)
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("first"))[0].startswith("250")
    wait_same(master, rep)
    # The replica, cut off, takes a delivery of its own at UID 2 (as an
    # old master would after a hard failover)...
    rep.stop()
    notify = tmp_path / "notify.out"
    local = rep.__class__(rep.tmp, rep.data, [])
    local.start()
    assert lmtp_one(local.port, "alice@" + DOMAIN,
                    message("replica-only"))[0].startswith("250")
    local.stop()
    # ...while the master gives UID 2 to another message.
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("master-only"))[0].startswith("250")
    rep.args += ["--conflict-policy", "keep", "--conflict-notify",
                 "env | grep ^MAILREPD_CONFLICT_ >> %s" % notify]
    rep.start()
    end = time.monotonic() + SYNC_DEADLINE
    while time.monotonic() < end and "conflict mailbox=" not in \
            rep.log_text():
        time.sleep(0.05)
    log = rep.log_text()
    assert "conflict mailbox=INBOX uid=2 local_guid=" in log, log
    st = status(rep.data)
    assert st["conflicts_open"] == 1
    k = st["conflicts"][0]
    assert k["uid"] == 2 and k["local_guid"] != k["master_guid"]
    # The replica's own message is still there, untouched.
    _, _, msgs = listing(rep.data)
    assert any(m[1] == 2 and m[2].lower() == k["local_guid"]
               for m in msgs), msgs
    end = time.monotonic() + 5
    while time.monotonic() < end and not notify.exists():
        time.sleep(0.05)
    env = notify.read_text()
    assert "MAILREPD_CONFLICT_UID=2" in env
    assert "MAILREPD_CONFLICT_LOCAL_GUID=" + k["local_guid"] in env
    # Later changes still flow.
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("after"))[0].startswith("250")
    end = time.monotonic() + SYNC_DEADLINE
    while time.monotonic() < end:
        if len(listing(rep.data)[2]) == len(listing(master.data)[2]):
            break
        time.sleep(0.05)
    assert status(rep.data)["master"]["applied"] == \
        status(master.data)["log_head"]
