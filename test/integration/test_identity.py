"""Identity of logs and replicas, and a drain that never lies.

- A master restored from an older copy of its data directory knows it
  for a copy at start and takes a new node id and epoch, so the replica
  reconciles instead of streaming past what it holds (and were the
  identity kept, the running hash of the log at the replica's position
  would not match).  Nothing acknowledged is lost and no UID names two
  messages.
- `mailrepd drain` exits 0 only when every known replica has the final
  position and is not reconciling.
- Replicas are known by node id: a second replica with the name of a
  connected one is refused (both ends say why), and a replica whose name
  another node took later is still known, so a drain does not exit 0
  while it is behind.
- A delivery or APPEND in flight across `demote` gets 451 / NO, never a
  250 / OK on a node that is already a replica.
- Two nodes that each --replicate-from the other refuse the cycle
  instead of bouncing records for ever.
- `mailrepd replica forget NAME|NODEID` drops a replica that is gone for
  good; `mailrepd status` shows each replica's age.
"""
import json
import shutil
import signal
import sqlite3
import time

from conftest import DOMAIN, HOST, free_port, run, run_ok
from test_drain import mid_data
from test_failover import wait_for
from test_replication import (cluster, listing, lmtp_one,  # noqa: F401
                              message, secret, status, wait_same)


def deliver(s, tags, size=0):
    for t in tags:
        r = lmtp_one(s.port, "alice@" + DOMAIN, message(t, size))
        assert r[0].startswith("250"), r


def uid_map(data):
    """INBOX of alice: uid -> guid (hex)."""
    db = sqlite3.connect("file:%s/mailrepd.db?mode=ro" % data, uri=True,
                         timeout=10)
    try:
        rows = db.execute(
            "SELECT m.uid, hex(b.guid) FROM message m JOIN blob b ON "
            "b.id = m.blob_id JOIN mailbox mb ON mb.id = m.mailbox_id "
            "JOIN user u ON u.id = mb.user_id WHERE u.name = 'alice' AND "
            "mb.name = 'INBOX'").fetchall()
    finally:
        db.close()
    return dict(rows)


def message_ids(data):
    p = run_ok("messages", "--json", "--user", "alice", "--data", data)
    return [m["message_id"] for m in json.loads(p.stdout)]


def streaming(s, n=1):
    wait_for("replicas to stream", lambda: s.log_text().count(
        "sync.replica.connected") >= n)


def drain(s):
    p = run("drain", "--data", s.data, timeout=60)
    s.proc.wait(10)
    s.proc = None
    return p


def test_restored_master_backup_reconciles(cluster, tmp_path):
    # Renumbering the 30 expunges them where they were; whether the
    # mass-delete guard counts that is another test's matter.
    master, (rep,) = cluster(1, replica_args=[
        "--guard-max-expunge-percent", "100"])
    streaming(master)
    deliver(master, ["base%d" % i for i in range(20)])
    wait_same(master, rep)
    # Purged up to the replica's position, a restart still resumes the
    # log: the hash at the position survives the purge.
    time.sleep(6)
    rep.stop()
    rep.start()
    streaming(master, 2)
    assert master.log_text().count("sync.reconcile.needed") == 1

    master.stop()
    backup = tmp_path / "backup"
    shutil.copytree(master.data, backup)
    master.start()
    streaming(master, 3)
    deliver(master, ["lost%d" % i for i in range(30)])
    wait_same(master, rep)
    seen_on_replica = uid_map(rep.data)
    rep.stop()
    master.stop()

    shutil.rmtree(master.data)
    shutil.copytree(backup, master.data)
    since = len(master.log_text())
    master.start()
    assert "store.copy" in master.log_text()[since:]
    deliver(master, ["new%d" % i for i in range(40)])
    seen_on_master = uid_map(master.data)
    rep.start()
    wait_for("the replica to reconcile", lambda: "sync.reconcile.done" in
             master.log_text()[since:])
    want = sorted(["<base%d@test>" % i for i in range(20)] +
                  ["<lost%d@test>" % i for i in range(30)] +
                  ["<new%d@test>" % i for i in range(40)])
    wait_for("all 90 on both", lambda: sorted(message_ids(master.data)) ==
             want and listing(master.data) == listing(rep.data), 60)
    final = uid_map(master.data)
    assert final == uid_map(rep.data)
    # No UID names two messages: what each node showed under a UID is
    # still there under it, or the UID is gone.
    for seen in (seen_on_replica, seen_on_master):
        for uid, guid in seen.items():
            assert final.get(uid, guid) == guid, (uid, guid, final[uid])
    for s in (master, rep):
        assert run("check", "--data", s.data).returncode == 0


def test_drain_not_0_while_replica_reconciles(cluster, server, secret):
    port = free_port()
    master = server(args=["--repl-listen", "%s:%d" % (HOST, port),
                          "--repl-secret-file", secret,
                          "--drain-timeout", "2"])
    master.repl_port = port
    deliver(master, ["big%d" % i for i in range(100)], 200000)
    rep = cluster.replica(master, 0)
    wait_for("the reconciliation", lambda: "sync.reconcile.start" in
             master.log_text())
    rep.proc.send_signal(signal.SIGSTOP)
    try:
        assert "sync.reconcile.done" not in master.log_text()
        p = drain(master)
    finally:
        rep.proc.send_signal(signal.SIGCONT)
    assert p.returncode == 3, p.stdout + p.stderr
    assert "reconciling=1" in master.log_text()


def test_second_replica_with_a_connected_name_refused(cluster, server,
                                                      secret):
    master, (r1,) = cluster(1)
    streaming(master)
    r2 = cluster.replica(master, 0)     # the same --name, replica0
    wait_for("the refusal", lambda: "sync.replica.refused" in
             master.log_text() and "sync.refused" in r2.log_text(), 30)
    assert "name already in use" in r2.log_text()
    deliver(master, ["m%d" % i for i in range(5)])
    wait_same(master, r1)
    assert listing(r2.data)[2] == []
    r2.stop()


def test_drain_knows_replicas_by_node_id(cluster):
    master, (r1,) = cluster(1)
    streaming(master)
    deliver(master, ["m%d" % i for i in range(10)])
    wait_same(master, r1)
    r1.kill9()
    # Another node takes the name; the first one holds 10 of 60.
    r2 = cluster.replica(master, 0)
    streaming(master, 2)
    deliver(master, ["n%d" % i for i in range(50)])
    wait_same(master, r2)
    replicas = status(master.data)["replicas"]
    assert len(replicas) == 2, replicas
    p = drain(master)
    assert p.returncode == 3, p.stdout + p.stderr
    assert "drain.replica.behind name=replica0" in master.log_text()


def test_delivery_across_demote_gets_451(cluster):
    b_repl = free_port()
    a, (b,) = cluster(1, replica_args=["--repl-listen",
                                       "%s:%d" % (HOST, b_repl)])
    b.repl_port = b_repl
    streaming(a)
    lmtp = mid_data(a.port)
    app = a.raw("bob")
    body = b"Subject: across\r\n\r\n" + b"z" * 5000 + b"\r\n"
    app.send(b"a1 APPEND INBOX {%d}\r\n" % len(body))
    assert app.line().startswith("+")
    app.send(body[:100])
    run_ok("promote", "--data", b.data)
    run_ok("demote", "--data", a.data, "--replicate-from",
           "%s:%d" % (HOST, b.repl_port))
    lmtp.send("second half\r\n.\r\n")
    r = lmtp.reply()
    assert r[0].startswith("451 4.3.0"), r
    lmtp.close()
    app.send(body[100:] + b"\r\n")
    _, tagged = app.read_until("a1")
    assert tagged.startswith("NO"), tagged
    app.close()
    wait_same(b, a)
    assert listing(a.data)[2] == []


def test_replication_cycle_refused(server, secret):
    pa, pb = free_port(), free_port()
    a = server(args=["--repl-listen", "%s:%d" % (HOST, pa),
                     "--replicate-from", "%s:%d" % (HOST, pb),
                     "--repl-secret-file", secret, "--name", "a"])
    b = server(users=(), args=["--repl-listen", "%s:%d" % (HOST, pb),
                               "--replicate-from", "%s:%d" % (HOST, pa),
                               "--repl-secret-file", secret, "--name", "b"])
    wait_for("the cycle to be refused", lambda: "sync.cycle" in
             a.log_text() + b.log_text(), 30)
    run_ok("user", "passwd", "alice", "--data", a.data,
           input="another password\n")
    time.sleep(3)
    heads = [status(s.data)["log_head"] for s in (a, b)]
    time.sleep(4)
    assert [status(s.data)["log_head"] for s in (a, b)] == heads


def test_replica_forget_and_age(cluster, server, secret):
    master, (r1,) = cluster(1)
    streaming(master)
    deliver(master, ["m0"])
    wait_same(master, r1)
    # The same node under another name is the same replica.
    r1.stop()
    r1.args[r1.args.index("replica0")] = "renamed"
    r1.start()
    streaming(master, 2)
    wait_for("the new name", lambda: [r["name"] for r in status(
        master.data)["replicas"]] == ["renamed"])
    r1.stop()
    # A rebuilt replica is another node: the old one stays known.
    r2 = cluster.replica(master, 1)
    streaming(master, 3)
    deliver(master, ["m1"])
    wait_same(master, r2)
    time.sleep(2)
    reps = {r["name"]: r for r in status(master.data)["replicas"]}
    assert set(reps) == {"renamed", "replica1"}
    assert reps["renamed"]["age"] >= 2 and not reps["renamed"]["connected"]
    text = run_ok("status", "--data", master.data).stdout
    assert "replica renamed" in text and "s_ago" in text
    # A connected replica is not forgotten.
    p = run("replica", "forget", "replica1", "--data", master.data)
    assert p.returncode == 1 and "connected" in p.stderr, p.stderr
    p = run("replica", "forget", "nosuch", "--data", master.data)
    assert p.returncode == 1, p.stdout
    run_ok("replica", "forget", reps["renamed"]["node_id"], "--data",
           master.data)
    assert [r["name"] for r in status(master.data)["replicas"]] == \
        ["replica1"]
    p = drain(master)
    assert p.returncode == 0, p.stdout + p.stderr
    # Stopped too.
    run_ok("replica", "forget", "replica1", "--data", master.data)
    assert status(master.data)["replicas"] == []


def test_restored_replica_and_copied_master(cluster, server, secret,
                                             tmp_path):
    master, (rep,) = cluster(1)
    streaming(master)
    deliver(master, ["a%d" % i for i in range(5)])
    wait_same(master, rep)
    rep.stop()
    backup = tmp_path / "replica-backup"
    shutil.copytree(rep.data, backup)
    rep.start()
    deliver(master, ["b%d" % i for i in range(5)])
    wait_same(master, rep)
    rep.stop()
    shutil.rmtree(rep.data)
    shutil.copytree(backup, rep.data)
    rep.start()
    deliver(master, ["c%d" % i for i in range(5)])
    wait_same(master, rep)
    assert len(message_ids(rep.data)) == 15
    # A copy of the master's data directory is known for one at start:
    # a new node, which may follow its original as a replica.
    master.stop()
    copy = tmp_path / "master-copy"
    shutil.copytree(master.data, copy)
    master.start()
    twin = server(users=(), data=copy, args=[
        "--replicate-from", "%s:%d" % (HOST, master.repl_port),
        "--repl-secret-file", secret, "--name", "twin"])
    assert "store.copy" in twin.log_text()
    assert status(twin.data)["node_id"] != status(master.data)["node_id"]
    wait_same(master, twin)
    twin.stop()
