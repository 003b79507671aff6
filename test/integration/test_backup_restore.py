"""Backup and restore that replication understands.

`mailrepd backup` copies a running store (consistent, in steps, while
LMTP deliveries go on); `mailrepd restore` makes the copy a store again
as a new incarnation of the node (new node id and epoch), and so does a
raw copy of the data directory found at start.  A master restored from
an older copy must not bring back on its replicas what they expunged or
moved after the copy was made, nor let a UID name two messages; a
replica restored from a backup follows its master again from where the
copy stood, taking only what it lacks.
"""
import json
import shutil
import subprocess
import threading
import time

from conftest import DOMAIN, HOST, free_port, run, run_ok
from test_replication import (listing, lmtp_one, message, secret, status,
                              wait_same)
from test_hard_failover import converged, pair, rejoin, split
from test_reconcile import wait_for_log
from repl_peer import wait_log

__all__ = ["secret"]


def deliver(node, tag, size=0):
    reply = lmtp_one(node.port, "alice@" + DOMAIN, message(tag, size))
    assert reply[0].startswith("250"), reply


def subjects(node, box="INBOX"):
    """{uid: Subject} of alice's box, over IMAP."""
    c = node.imap("alice")
    typ, _ = c.select(box, readonly=True)
    assert typ == "OK", box
    typ, data = c.uid("FETCH", "1:*", "(UID BODY.PEEK[HEADER.FIELDS "
                      "(SUBJECT)])")
    c.logout()
    out = {}
    for item in data:
        if isinstance(item, tuple):
            uid = int(item[0].split(b"UID ")[1].split()[0])
            out[uid] = item[1].decode().split(":", 1)[1].strip()
    return out


def uidvalidities(node):
    """{(user, mailbox): UIDVALIDITY} of a node's store."""
    return {(u, m): v for u, m, _, v, _, _ in listing(node.data)[1]}


def check_clean(data):
    p = run("check", "--data", data)
    assert p.returncode == 0, p.stdout + p.stderr


def backup(node, to):
    p = run_ok("backup", "--data", node.data, "--to", to)
    assert "pages" in p.stdout, p.stdout
    return p


def restore_into(copy, data):
    """Puts the backup file in place of the stopped node's store."""
    shutil.rmtree(data)
    p = run_ok("restore", "--from", copy, "--data", data)
    assert "new incarnation" in p.stdout, p.stdout


def test_backup_while_delivering_holds_every_acknowledged(server, tmp_path):
    """Deliveries go on during the backup (none fails: it holds no lock
    the server waits on); every message acknowledged before it began is
    in the copy, the copy passes check, and restore makes it a working
    store."""
    srv = server()
    for i in range(40):                 # a few MiB: several steps
        deliver(srv, "pre%d" % i, 100000)
    acked_before = ["pre%d" % i for i in range(40)]
    stop, during, errors = threading.Event(), [], []

    def keep_delivering():
        i = 0
        while not stop.is_set():
            try:
                deliver(srv, "during%d" % i, 20000)
                during.append(i)
            except BaseException as e:  # reported below
                errors.append(e)
                return
            i += 1

    t = threading.Thread(target=keep_delivering)
    t.start()
    try:
        time.sleep(0.2)
        first = len(during)
        p = backup(srv, tmp_path / "b.db")
    finally:
        stop.set()
        t.join()
    assert not errors, errors
    assert "100%" in p.stdout, p.stdout
    restored = tmp_path / "restored"
    run_ok("restore", "--from", tmp_path / "b.db", "--data", restored)
    check_clean(restored)
    got = {m["subject"] for m in json.loads(run_ok(
        "messages", "--json", "--user", "alice", "--data",
        restored).stdout)}
    for tag in acked_before + ["during%d" % i for i in during[:first]]:
        assert tag in got, tag
    # The restored store serves.
    copy = server(users=(), data=restored)
    deliver(copy, "after-restore")
    # A second restore into a store is refused, the store left alone.
    copy.stop()
    p = run("restore", "--from", tmp_path / "b.db", "--data", restored)
    assert p.returncode == 2 and "holds a store" in p.stderr, p.stderr
    p = run("restore", "--from", __file__, "--data", tmp_path / "x")
    assert p.returncode != 0


def restored_master_scenario(server, secret, tmp_path, take_copy,
                             put_back):
    """A master's copy is taken (take_copy), then on the master: m2
    expunged, m3 moved to Archive, m6 delivered, all replicated.  The
    master is stopped, put back from the copy (put_back) and started as
    master; it takes m7 (at the UID m6 had) before its replica returns.
    Checks what the replica must keep, and returns (a, b)."""
    a, b = pair(server, secret)
    for i in range(1, 6):
        deliver(a, "m%d" % i)
    wait_same(a, b)
    old_id = status(a.data)["node_id"]
    old_uidv = uidvalidities(a)
    copy = take_copy(a)
    deliver(a, "m6")
    c = a.imap("alice")
    c.select("INBOX")
    assert c.uid("STORE", "2", "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert c.expunge()[0] == "OK"
    assert c.uid("MOVE", "3", "Archive")[0] == "OK"
    c.logout()
    wait_same(a, b)
    seen_on_b = subjects(b)
    assert sorted(seen_on_b.values()) == ["m1", "m4", "m5", "m6"]
    b.stop()
    a.stop()
    put_back(a, copy)
    a.start()
    assert status(a.data)["node_id"] != old_id
    deliver(a, "m7")
    b.start()
    converged(b, a)       # B holds the conflicts the expunges made
    # Every mailbox of the restored master starts a new UID space, on
    # both nodes: clients never see a UID reused under a known value.
    new_uidv = uidvalidities(a)
    assert new_uidv == uidvalidities(b)
    assert sorted(new_uidv) == sorted(old_uidv)
    assert all(new_uidv[k] != old_uidv[k] for k in old_uidv), (
        old_uidv, new_uidv)
    inbox, archive = subjects(b), subjects(b, "Archive")
    assert sorted(inbox.values()) == ["m1", "m4", "m5", "m6", "m7"], inbox
    assert sorted(archive.values()) == ["m3"], archive
    # Every UID B showed before names the same message, or is gone.
    for uid, subj in seen_on_b.items():
        assert inbox.get(uid, subj) == subj, (uid, seen_on_b, inbox)
    assert min(u for u, s in inbox.items() if s == "m7") > max(seen_on_b)
    assert subjects(a) == inbox and subjects(a, "Archive") == archive
    for node in (a, b):
        check_clean(node.data)
    # And B follows the restored master's log from now on.
    deliver(a, "m8")
    wait_same(a, b)
    return a, b


def test_restored_master_keeps_the_replicas_expunges_and_moves(
        server, secret, tmp_path):
    def take(a):
        backup(a, tmp_path / "a.db")
        return tmp_path / "a.db"

    def put_back(a, copy):
        restore_into(copy, a.data)

    restored_master_scenario(server, secret, tmp_path, take, put_back)


def test_raw_copy_of_a_master_is_detected_at_start(server, secret,
                                                   tmp_path):
    """A copy of the stopped master's data directory (cp -a, as an
    operator's backup tool makes) is known for one at start and treated
    as a restore."""
    def take(a):
        a.stop()
        shutil.copytree(a.data, tmp_path / "raw", copy_function=shutil.copy2)
        a.start()
        return tmp_path / "raw"

    def put_back(a, copy):
        shutil.rmtree(a.data)
        shutil.copytree(copy, a.data, copy_function=shutil.copy2)

    a, b = restored_master_scenario(server, secret, tmp_path, take,
                                    put_back)
    assert "store.copy" in a.log_text()


def test_restart_and_kill9_keep_the_identity(server):
    """The marker never misfires on the same store: a restart, a kill -9,
    a restart after a kill -9 and (where the file system keeps birth
    times) a chmod of the marker keep node id and epoch."""
    srv = server()
    deliver(srv, "x")
    before = status(srv.data)
    marker = srv.data / "identity"
    born = subprocess.run(["stat", "-c", "%W", marker], capture_output=True,
                          text=True).stdout.strip()
    for how in ("restart", "kill9", "restart", "chmod"):
        if how == "kill9":
            srv.kill9()
        else:
            srv.stop()
        if how == "chmod":
            if born in ("", "0"):
                continue    # no birth time here: a chmod counts as a copy
            marker.chmod(0o600)     # as a package's chown -R would
        srv.start()
        deliver(srv, "after-" + how)
        now = status(srv.data)
        assert (now["node_id"], now["epoch"]) == (
            before["node_id"], before["epoch"]), how
    assert "store.copy" not in srv.log_text()


def test_restored_replica_takes_only_the_difference(server, secret,
                                                    tmp_path):
    """A replica's backup seeds a replica: it follows the master's log
    from where the copy stood instead of comparing everything."""
    a, b = pair(server, secret)
    # A replica that stays behind keeps the master's log from its
    # position: else, once B has acknowledged everything, the purge may
    # take the records the copy needs in the seconds before it restarts.
    c = server(users=(), args=[
        "--replicate-from", "%s:%d" % (HOST, a.repl_port),
        "--repl-secret-file", secret, "--name", "C"])
    wait_same(a, c)
    c.stop()
    for i in range(30):
        deliver(a, "r%d" % i)
    wait_same(a, b)
    backup(b, tmp_path / "b.db")
    applied = status(b.data)
    for i in range(5):
        deliver(a, "s%d" % i)
    wait_same(a, b)
    b.stop()
    old_uidv = uidvalidities(b)
    restore_into(tmp_path / "b.db", b.data)
    assert uidvalidities(b) == old_uidv     # a replica's UIDs are its master's
    since = len(a.log_text())
    b.start()
    wait_same(a, b)
    new_id = status(b.data)["node_id"]
    assert new_id != applied["node_id"]
    # Streamed from its position, never compared in full.  The line may
    # be written after B already holds what it needed (a loaded host).
    end = time.monotonic() + 10
    while True:
        log = a.log_text()[since:]
        connected = [x for x in log.splitlines()
                     if "sync.replica.connected" in x and "name=B" in x]
        if connected or time.monotonic() > end:
            break
        time.sleep(0.1)
    assert connected and " from=0 " not in connected[-1], connected
    assert "sync.reconcile.start" not in log, log[-3000:]
    deliver(a, "t")
    wait_same(a, b)
    check_clean(b.data)


def test_restored_copy_of_a_renumbered_uid_comes_back_once(server, secret,
                                                           tmp_path):
    """A UID that took two messages in a split is renumbered (both move
    up, the UID is expunged); each node keeps the tombstone of the copy
    it held.  The master of that renumbering is then restored from a
    copy taken before it, and follows the other node, now master: its
    copy at the old UID is the message the new master holds at its new
    UID, not one the master never saw, so it goes instead of coming
    back a second time (seed 42 of the randomized test)."""
    a, b = pair(server, secret)
    for i in range(2):
        deliver(a, "base%d" % i)
    split(a, b, ["on-a"], ["on-b"])     # UID 3: on-a on A, on-b on B
    backup(b, tmp_path / "b.db")        # B, master, before renumbering
    rejoin(a, b)
    converged(a, b)
    assert sorted(subjects(a).values()) == ["base0", "base1", "on-a",
                                            "on-b"]
    # A takes over; B comes back from its copy, as A's replica.
    b.stop()
    p = run("promote", "--data", a.data)
    assert p.returncode == 0, p.stdout + p.stderr
    wait_for_log(a, "sync.promote")
    restore_into(tmp_path / "b.db", b.data)
    follow(b, a)
    b.start()
    converged(a, b)
    got = sorted(subjects(a).values())
    assert got == ["base0", "base1", "on-a", "on-b"], got
    assert sorted(subjects(b).values()) == got
    for node in (a, b):
        check_clean(node.data)


def test_restored_master_keeps_the_replicas_rename(server, secret, tmp_path):
    """A rename made after the master's copy was taken, and held by its
    replica, survives the master's restore from that copy, as the
    replica's expunges and moves do: the mail that arrived in the
    renamed mailbox stays where its client put it (seed 42, life 30 of
    the randomized test: "mailbox-gone")."""
    a, b = pair(server, secret)
    c = a.imap("alice")
    assert c.create("Projects")[0] == "OK"
    c.logout()
    deliver(a, "m1")
    wait_same(a, b)
    backup(a, tmp_path / "a.db")
    c = a.imap("alice")
    assert c.rename("Projects", "Trips")[0] == "OK"
    assert c.append("Trips", None, None, message("in-trips"))[0] == "OK"
    c.logout()
    wait_same(a, b)
    b.stop()
    a.stop()
    restore_into(tmp_path / "a.db", a.data)
    a.start()
    b.start()
    converged(a, b)
    for node in (a, b):
        assert list(subjects(node, "Trips").values()) == ["in-trips"]
        check_clean(node.data)


def renumbered_on_a_third_node(server, secret, tmp_path, listen=False):
    """Master A, its replica B and a third node C following A (listening
    for replicas of its own when listen): base0 and base1 everywhere,
    then on-b only on B at UID 3; copies of A and B taken then
    (tmp_path/a.db, b.db); A master again with two more, B following A
    again, so on-b is renumbered and reaches C at its new UID.  Returns
    a, b, c and the subjects every node holds."""
    a, b = pair(server, secret)
    args = ["--replicate-from", "%s:%d" % (HOST, a.repl_port),
            "--repl-secret-file", secret, "--name", "C"]
    if listen:
        c_port = free_port()
        args = ["--repl-listen", "%s:%d" % (HOST, c_port)] + args
    c = server(users=(), imap=True, args=args)
    if listen:
        c.repl_port = c_port
    for i in range(2):
        deliver(a, "base%d" % i)
    wait_same(a, b, c)
    split(a, b, [], ["on-b"])           # on-b only on B, at UID 3
    backup(a, tmp_path / "a.db")        # A before renumbering
    backup(b, tmp_path / "b.db")        # B holding on-b at UID 3
    b.stop()
    a.start()                           # A master again, two more
    for i in range(2):
        deliver(a, "a-more%d" % i)
    b.start()                           # B follows A: on-b renumbered
    converged(a, b)
    wait_same(a, b, c)
    want = ["a-more0", "a-more1", "base0", "base1", "on-b"]
    assert sorted(subjects(c).values()) == want
    return a, b, c, want


def test_renumbered_copy_on_a_third_node_comes_back_once(server, secret,
                                                         tmp_path):
    """A master renumbers a message only its replica B held; a third
    node C gets it at its new UID.  The master and B then both come back
    from copies taken before that renumbering: B's copy at its old UID
    is pulled again and lands at another new UID, and C's copy at the
    first new UID is that same message, not one the master never saw,
    so it must not come back a second time (seed 42, life 14 of the
    randomized test: 'duplicate')."""
    a, b, c, want = renumbered_on_a_third_node(server, secret, tmp_path)
    # A and B come back from their copies; C follows A again.
    for node in (c, b, a):
        node.stop()
    restore_into(tmp_path / "a.db", a.data)
    restore_into(tmp_path / "b.db", b.data)
    a.start()
    b.start()
    converged(a, b)
    c.start()
    converged(a, c)
    wait_same(a, b, c)
    got = sorted(subjects(a).values())
    assert got == want, subjects(a)
    for node in (a, b, c):
        assert sorted(subjects(node).values()) == got
        check_clean(node.data)


def follow(node, master):
    """node's next start replicates from master."""
    if "--replicate-from" in node.args:
        i = node.args.index("--replicate-from")
        node.args = node.args[:i] + node.args[i + 2:]
    node.args = node.args + ["--replicate-from",
                             "%s:%d" % (HOST, master.repl_port)]


def test_renumbering_travels_with_the_renumbered_message(server, secret,
                                                         tmp_path):
    """A master renumbers a message only its replica B held; a third
    node C takes it at its new UID.  The master comes back from a copy
    taken before that renumbering and gets the message from C, now
    master, at its new UID; then the master takes over again and B comes
    back from its copy, still holding the message at its old UID.  The
    master must know the message was renumbered from that UID (the
    renumbering travels with the message, in the log and in a
    reconciliation), so B's copy goes instead of coming back a second
    time (seed 42, life 20 of the randomized test: 'duplicate')."""
    a, b, c, want = renumbered_on_a_third_node(server, secret, tmp_path,
                                               listen=True)
    # C takes over; A comes back from its copy as C's replica.
    b.stop()
    a.stop()
    p = run("promote", "--data", c.data)
    assert p.returncode == 0, p.stdout + p.stderr
    wait_for_log(c, "sync.promote")
    restore_into(tmp_path / "a.db", a.data)
    follow(a, c)
    a.start()
    converged(c, a)
    assert sorted(subjects(a).values()) == want
    # A takes over again; B comes back from its copy as A's replica.
    c.stop()
    p = run("promote", "--data", a.data)
    assert p.returncode == 0, p.stdout + p.stderr
    wait_for_log(a, "sync.promote")
    restore_into(tmp_path / "b.db", b.data)
    b.start()
    converged(a, b)
    got = sorted(subjects(a).values())
    assert got == want, subjects(a)
    assert sorted(subjects(b).values()) == got
    for node in (a, b):
        check_clean(node.data)


def test_both_messages_of_a_renumbered_pair_carry_their_old_uid(
        server, secret, tmp_path):
    """A UID that took two messages in a split is renumbered: the
    master's own message moves up as well as the replica's copy.  The
    old master, restored from a copy taken before the split, gets both
    back by reconciliation, then takes over; the other node comes back
    from a copy still holding its message at the old UID.  That copy is
    the master's own message of the pair, which the new master holds at
    its new UID: it must go, not come back a second time (seed 42, life
    14 of the randomized test: 'duplicate')."""
    a, b = pair(server, secret)
    for i in range(2):
        deliver(a, "base%d" % i)
    wait_same(a, b)
    a.stop()
    backup(a, tmp_path / "a.db")        # A before the split
    a.start()
    wait_same(a, b)
    split(a, b, ["on-a"], ["on-b"])     # UID 3: on-a on A, on-b on B
    backup(b, tmp_path / "b.db")        # B, master, before renumbering
    rejoin(a, b)
    converged(a, b)
    want = ["base0", "base1", "on-a", "on-b"]
    assert sorted(subjects(b).values()) == want
    # A comes back from its copy, as B's replica, and takes over.
    a.stop()
    restore_into(tmp_path / "a.db", a.data)
    a.start()
    converged(a, b)
    b.stop()
    p = run("promote", "--data", a.data)
    assert p.returncode == 0, p.stdout + p.stderr
    wait_for_log(a, "sync.promote")
    # B comes back from its copy (on-b at UID 3), as A's replica.
    restore_into(tmp_path / "b.db", b.data)
    b.start()
    converged(a, b)
    got = sorted(subjects(a).values())
    assert got == want, subjects(a)
    assert sorted(subjects(b).values()) == got
    for node in (a, b):
        check_clean(node.data)


def test_a_relay_never_renumbers_its_replicas_copies(server, secret,
                                                     tmp_path):
    """B replicates from master A and relays to C.  B comes back from a
    copy older than C, while A is down: C holds two messages B lacks and
    pushes them.  Only a master numbers: a relay that renumbered them
    moved them in its own store and in C's under UIDs its master never
    gave, and a later failover lost both (seed 42, life 14 of the
    randomized test: 'lost').  B must leave them to A, and once A is
    back every node holds every message once, at A's UIDs."""
    a, b = pair(server, secret)
    c = server(users=(), imap=True, args=[
        "--replicate-from", "%s:%d" % (HOST, b.repl_port),
        "--repl-secret-file", secret, "--name", "C"])
    for i in range(3):
        deliver(a, "base%d" % i)
    wait_same(a, b, c)
    backup(b, tmp_path / "b.db")
    for i in range(2):
        deliver(a, "new%d" % i)
    wait_same(a, b, c)
    a.stop()
    b.stop()
    restore_into(tmp_path / "b.db", b.data)
    b.start()
    wait_for_log(b, "sync.reconcile.local_only")
    time.sleep(2)                       # what B would do with them
    log = b.log_text()
    assert not [x for x in log.splitlines()
                if "sync.renumber" in x and "new_uid=" in x], log[-3000:]
    assert sorted(subjects(c).values()) == [
        "base0", "base1", "base2", "new0", "new1"], subjects(c)
    a.start()
    converged(a, b)
    wait_same(a, b, c)
    want = subjects(a)
    assert sorted(want.values()) == [
        "base0", "base1", "base2", "new0", "new1"], want
    for node in (b, c):
        assert subjects(node) == want
        check_clean(node.data)


def mailbox_names(node):
    """alice's mailbox names in the node's store."""
    return sorted(m for u, m, ident, _, _, _ in listing(node.data)[1]
                  if u == "alice" and ident is not None)


def test_a_relay_never_adopts_its_replicas_mailboxes(server, secret):
    """B replicates from master A and relays to C.  C, promoted for a
    while, made a mailbox A never had and put a message in it, put one
    in a mailbox A deleted meanwhile, and renamed a third; then it
    follows B again, A down.  Only a master takes in a mailbox only a
    replica has, makes again a deleted one that took mail it never
    saw, or takes a replica's newer name: a relay that did made them in
    its own store, under identities, UIDVALIDITYs and names its master
    never gave.  B must leave all three to A (no create or rename on B,
    no delete or rename on C), and once C follows A, A takes them in
    with their messages, under UIDs of A's, and every node holds
    them."""
    a, b = pair(server, secret)
    c = server(users=(), imap=True, args=[
        "--replicate-from", "%s:%d" % (HOST, b.repl_port),
        "--repl-secret-file", secret, "--name", "C"])
    imap = a.imap("alice")
    for box in ("Doomed", "Work"):
        assert imap.create(box)[0] == "OK"
    imap.logout()
    deliver(a, "base")
    wait_same(a, b, c)
    run_ok("promote", "--data", c.data)
    imap = c.imap("alice")
    assert imap.create("Split")[0] == "OK"
    for box in ("Split", "Doomed"):
        assert imap.append(box, None, None, message(box))[0] == "OK"
    assert imap.rename("Work", "Renamed")[0] == "OK"
    imap.logout()
    imap = a.imap("alice")
    assert imap.delete("Doomed")[0] == "OK"
    imap.logout()
    wait_same(a, b)
    a.stop()
    since = len(b.log_text())
    run_ok("demote", "--data", c.data, "--replicate-from",
           "%s:%d" % (HOST, b.repl_port))
    text = wait_log(b, "sync.reconcile.done", since)
    assert "sync.reconcile.adopt" not in text, text
    assert "sync.reconcile.revive" not in text, text
    assert text.count("left to its master") == 3, text
    names = set(mailbox_names(b))
    assert "Work" in names and not {"Split", "Doomed", "Renamed"} & names
    names = set(mailbox_names(c))
    assert "Renamed" in names and "Work" not in names
    for box in ("Split", "Doomed"):
        assert subjects(c, box) == {1: box}
    a.start()
    wait_same(a, b)
    run_ok("demote", "--data", c.data, "--replicate-from",
           "%s:%d" % (HOST, a.repl_port))
    wait_for_log(a, "sync.reconcile.revive")
    deliver(a, "after")
    wait_same(a, b, c)
    for node in (a, b, c):
        names = set(mailbox_names(node))
        assert {"Split", "Doomed", "Renamed"} <= names and "Work" not in names
        for box in ("Split", "Doomed"):
            assert list(subjects(node, box).values()) == [box]
        check_clean(node.data)
