"""I/O faults during a full reconciliation, on either side: the test
build's VFS (test/testvfs.c) fails the Nth read, write or sync of the
master or of the replica while a replica that holds mail reconciles
with a master that holds more (its inventory, the chunks the master
asks for, the batches it applies, the START that ends it).  After each
run, with the fault gone: the failing side still runs, the
reconciliation completes (the same messages on both), the master holds
no position the replica has not recorded, and the replica's store is
clean.

RECON_IO_FAULT_MAX bounds the runs of each fault (N grows by half each
run until a run ends without reaching it); 0 runs every N from 1, as
IO_FAULT_MAX=0 (make faults) does.
"""
import os
import shutil
import sqlite3

import pytest

from conftest import HOST, free_port
from jepsen_net import Network
from powerloss import CRASH_BIN
from test_alloc_faults import deliver_to, reconciled_after_fault, \
    stop_clean
from test_io_faults import FaultServer, assert_follows, check_clean, \
    wait_caught_up

FAULT_MAX = int(os.environ.get(
    "RECON_IO_FAULT_MAX", "0" if os.environ.get("IO_FAULT_MAX") == "0" else
    "5"))
FAULTS = (("read", "ioerr"), ("write", "ioerr"), ("sync", "ioerr"),
          ("write", "full"))

pytestmark = pytest.mark.skipif(not os.access(CRASH_BIN, os.X_OK),
                                reason="no test build: make "
                                "build/crash/mailrepd")


def faults_at():
    """The N of one fault's runs: 1, 2, 3, 4, 6, 9, ... (every N when
    FAULT_MAX is 0), FAULT_MAX of them at most."""
    n, runs = 1, 0
    while FAULT_MAX <= 0 or runs < FAULT_MAX:
        yield n
        runs += 1
        n = n + 1 if FAULT_MAX <= 0 else max(n + 1, n * 3 // 2)


def forget_master(data):
    """Makes a stopped replica's store follow a log of an epoch no
    master has: it reconciles at its next connection."""
    db = sqlite3.connect(str(data / "mailrepd.db"))
    try:
        db.execute("UPDATE node SET master_epoch = randomblob(8)")
        db.commit()
    finally:
        db.close()


def fault_pair(tmp_path, template_data):
    """A master and a replica of the test build (FaultServer), neither
    started, the replica reaching the master through a proxy link
    (jepsen_net): (master, replica, net, link)."""
    secret = tmp_path / "repl.secret"
    secret.write_text("a5" * 32 + "\n")
    secret.chmod(0o600)
    repl_port = free_port()
    mdir, rdir = tmp_path / "master", tmp_path / "replica"
    mdir.mkdir()
    rdir.mkdir()
    shutil.copytree(template_data, mdir / "data")
    net = Network()
    link = net.add("replica0")
    link.target = repl_port
    master = FaultServer(mdir, mdir / "data", args=[
        "--repl-listen", "%s:%d" % (HOST, repl_port),
        "--repl-secret-file", str(secret)])
    replica = FaultServer(rdir, rdir / "data", args=[
        "--replicate-from", "%s:%d" % (HOST, link.port),
        "--repl-secret-file", str(secret), "--name", "replica0"])
    return master, replica, net, link


@pytest.mark.parametrize("side", ["replica", "master"])
def test_io_faults_in_reconciliation(tmp_path, template_data, side):
    master, replica, net, link = fault_pair(tmp_path, template_data)
    master.start()
    faulty = master if side == "master" else replica
    snapshot = tmp_path / "snapshot"
    runs = 0
    try:
        for i in range(3):
            deliver_to(master, "m%dx" % i)
        # A replica that holds mail: its copy is where each run starts.
        replica.start()
        assert wait_caught_up(master, replica, 30)
        assert_follows(master, replica, "the first reconciliation")
        stop_clean(replica, "replica")
        shutil.copytree(replica.data, snapshot)
        for op, err in FAULTS:
            for n in faults_at():
                # The master took mail since: the replica's INBOX differs.
                deliver_to(master, "r%d%s%s" % (runs, op, err))
                net.set(link, "cut")
                shutil.rmtree(replica.data)
                shutil.copytree(snapshot, replica.data)
                forget_master(replica.data)
                replica.start()
                faulty.arm(op, n, err)
                net.heal(link)
                caught = wait_caught_up(master, replica, 10,
                                        faulty.injected)
                hit = faulty.injected()
                faulty.disarm()
                what = "%s reconciling with %s #%d failing (%s)" % (
                    side, op, n, err)
                reconciled_after_fault(master, replica, faulty, caught,
                                       what)
                runs += 1
                print("%s: %s" % (what, "hit" if hit else "not reached"))
                if not hit:
                    break
    finally:
        faulty.disarm()
        net.close()
        replica.stop()
        stop_clean(master, "master")
    check_clean(master.data)
    print("reconciliation (%s): %d fault runs" % (side, runs))
