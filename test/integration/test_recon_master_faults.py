"""Read faults on the master while it reconciles with a replica that
went its own way: the replica took mail the master never saw (at a UID
the master gave another message, and in a mailbox only it has), took
mail into a mailbox the master deleted since, and renamed a mailbox;
the master expunged, flagged, renamed, deleted mailboxes and took mail.
The comparison then reaches every kind of look-up the master makes
(tombstones, renumberings, deleted mailboxes, adoptions, names), and
the test build's VFS fails the Nth read of the master's store, with
SQLite's page cache capped (MAILREPD_VFS_PCACHE) so that those reads
reach the VFS instead of coming from memory.

Each run starts both stores from the same copies.  After it: the master
still runs, the replica catches up once the fault is spent (it
reconnects and reconciles again), the master holds no position the
replica has not recorded, both stores are clean, and the master holds
every message exactly as the run without a fault left it: a failed
look-up never skips a message, a mailbox or a delete as if it were not
there, and never adds one twice.

The same with the master's syncs failing: each group commit of the
reconciliation fails in turn.

RECON_MASTER_FAULT_MAX runs at most (default 40: the first two, then a
stride over the rest of a clean run's operations); 0 runs every N.
"""
import os
import re
import shutil
import time
from collections import Counter

import pytest

from conftest import IMAPRaw, LMTPClient
from fault_runs import fault_runs
from powerloss import CRASH_BIN, store_rows
from test_alloc_faults import deliver_to, reconciled_after_fault, \
    stop_clean
from test_io_faults import FaultServer, assert_follows, check_clean, \
    wait_caught_up
from test_recon_io_faults import fault_pair, forget_master

FAULT_MAX = int(os.environ.get("RECON_MASTER_FAULT_MAX", "40"))
FIRST = 2			# operations always failed before the stride
PCACHE = "8"			# pages in each of the master's page caches
COUNTED = re.compile(rb"testvfs: generation (\d+) counted (\d+) ")

pytestmark = pytest.mark.skipif(not os.access(CRASH_BIN, os.X_OK),
                                reason="no test build: make "
                                "build/crash/mailrepd")


def held(data):
    """Every message as (user, mailbox name, guid), counted: what the
    store holds, whatever UIDs it gave."""
    return Counter(store_rows(
        data, "SELECT u.name, mb.name, hex(b.guid) FROM message m "
        "JOIN blob b ON b.id = m.blob_id "
        "JOIN mailbox mb ON mb.id = m.mailbox_id "
        "JOIN user u ON u.id = mb.user_id"))


def imap(node, *commands):
    """alice's IMAP session on node runs commands, each must be OK."""
    c = IMAPRaw(node.imap_port)
    try:
        c.login("alice")
        for command in commands:
            c.ok(command)
        c.ok("LOGOUT")
    finally:
        c.close()


def counted(node, gen):
    """The operations the VFS counted in generation gen, once it ended (the
    hook is off): a session wakes the server's loop until it says so."""
    end = time.monotonic() + 20
    while time.monotonic() < end:
        for m in COUNTED.finditer(node.log.read_bytes()):
            if int(m.group(1)) == gen:
                return int(m.group(2))
        with LMTPClient(node.port, timeout=5) as c:
            c.cmd("QUIT", "221 ")
        imap(node, "SELECT INBOX")
        time.sleep(0.05)
    raise AssertionError("generation %d never counted" % gen)


def diverged(master, replica, net, link):
    """Brings replica level with master, then has each take changes
    the other lacks (see the module's comment); both stopped."""
    for i in range(3):
        deliver_to(master, "m%dx" % i)
    imap(master, "CREATE Keep", "CREATE Gone", "CREATE Gone2",
         "CREATE Ren", "SELECT INBOX", "UID COPY 1:* Keep",
         "UID COPY 1:* Gone", "UID COPY 1:2 Gone2", "UID COPY 3 Ren")
    net.heal(link)
    replica.start()
    assert wait_caught_up(master, replica, 30)
    assert_follows(master, replica, "the first reconciliation")
    stop_clean(replica, "replica")
    # The replica on its own, as an old master after a hard failover.
    alone = FaultServer(replica.tmp, replica.data, [])
    alone.start()
    deliver_to(alone, "local", rcpts=("alice",))
    imap(alone, "CREATE LocalOnly", "SELECT INBOX",
         "UID COPY 4 LocalOnly", "UID COPY 4 Gone", "RENAME Keep KeepR")
    stop_clean(alone, "the replica on its own")
    # The master meanwhile.
    deliver_to(master, "later")
    imap(master, "SELECT INBOX", "UID STORE 1 +FLAGS (\\Deleted)",
         "UID EXPUNGE 1", "UID STORE 2 +FLAGS (\\Flagged)",
         "SUBSCRIBE Gone2", "DELETE Gone", "DELETE Gone2",
         "RENAME Ren Ren2")


@pytest.mark.parametrize("side,op", [("master", "read"), ("master", "sync"),
                                     ("replica", "read")])
def test_faults_in_a_diverged_reconciliation(tmp_path, template_data, side,
                                             op):
    """The master's read: a look-up fails.  Its sync: a group commit
    fails, and with it what the reconciliation changed on the master in
    that loop iteration (a mailbox adopted or made again, a UIDNEXT
    raised, a copy renumbered): the reconciliation must not go on as if
    they stood (it did: the replica pushed its copy of a message in the
    revived mailbox every few seconds for ever, the master answering
    "not found").  The replica's read: its inventory, the chunks it
    lists, the conflicts it meets."""
    master, replica, net, link = fault_pair(tmp_path, template_data)
    net.set(link, "cut")
    faulty = master if side == "master" else replica
    msnap, rsnap = tmp_path / "msnap", tmp_path / "rsnap"
    master.start()
    runs = hit_runs = 0
    want = None
    try:
        diverged(master, replica, net, link)
        stop_clean(master, "master")
        shutil.copytree(master.data, msnap)
        shutil.copytree(replica.data, rsnap)
        faulty.env["MAILREPD_VFS_PCACHE"] = PCACHE
        # every N of the stride, reached or not
        for f in fault_runs(FAULT_MAX, FIRST, until_missed=False):
            n = f.n
            net.set(link, "cut")
            for node, snap in ((master, msnap), (replica, rsnap)):
                shutil.rmtree(node.data)
                shutil.copytree(snap, node.data)
            forget_master(replica.data)
            master.start()
            replica.start()
            faulty.arm(op, n, "ioerr")
            net.heal(link)
            caught = wait_caught_up(master, replica, 10, faulty.injected)
            hit = faulty.injected()
            gen = faulty.gen
            faulty.disarm()
            what = "%s reconciling with %s #%d failing" % (side, op, n)
            if f.counting:
                assert not hit and caught, what
                total = f.counted = counted(faulty, gen)
            reconciled_after_fault(master, replica, faulty, caught, what)
            got = held(master.data)
            if runs == 0:
                want = got
                # What each side alone held is on the master now.
                subjects = store_rows(master.data,
                                      "SELECT subject FROM blob")
                assert ("local",) in subjects and ("later",) in subjects
            assert got == want, "%s: %r" % (what, got - want or want - got)
            stop_clean(master, "master")
            check_clean(master.data)
            runs += 1
            hit_runs += hit
            print("%s: %s" % (what, "hit" if hit else "not reached"))
    finally:
        faulty.disarm()
        net.close()
        replica.stop()
        master.stop()
    assert hit_runs * 2 >= runs - 1, "few faults reached"
    print("%s in the reconciliation: %d %ss, %d fault runs" % (
        side, total, op, runs - 1))
