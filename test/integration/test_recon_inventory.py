"""A replica's inventory in a full reconciliation, against a scripted
master (repl_peer.py):

- an inventory larger than the replica's output high-water mark is sent
  in steps as the output drains, and still lists every mailbox exactly
  once before its INV_END: a mailbox left out would read to the master
  as one the replica lacks, or one dropped twice as two;
- a START that names another master node than the RECONCILE did cannot
  end the comparison: refused and logged, no position committed, every
  mailbox kept, and the replica comes back reconciling.
"""
import os

from repl_peer import (INV_MAILBOX, START, head, query, scripted_master_for,
                       wait_log)
from test_repl_recon_edges import inv_entry, restarted
from test_replication import secret  # noqa: F401

HIGH_WATER = 256 * 1024		# config.h OUTBUF_HIGH_WATER
NAME_MAX = 512			# config.h MAILBOX_MAX_NAME


def mailbox_names(data, user="alice"):
    return sorted(n for (n,) in query(
        data, "SELECT m.name FROM mailbox m JOIN user u ON "
        "u.id = m.user_id WHERE u.name = ?", (user,)))


def applied(data):
    return query(data, "SELECT applied, hex(master_epoch) FROM node")[0]


def test_an_inventory_past_the_high_water_mark(server, secret):
    rep = server(imap=True)
    # 600 names of 500 bytes: their entries are more than the mark.
    names = ["box%03d-%s" % (i, "x" * (NAME_MAX - 12 - 7)) for i in
             range(600)]
    assert 600 * len(names[0]) > HIGH_WATER
    c = rep.imap("alice")
    for name in names:
        assert c.create(name)[0] == "OK", name
    c.logout()
    every = mailbox_names(rep.data)
    rep.stop()
    m, _ = scripted_master_for(restarted(rep), secret)
    try:
        m.accept()
        frames = m.reconcile()
        assert {t for t, _ in frames} == {INV_MAILBOX}
        listed = [inv_entry(p) for _, p in frames]
        alice = sorted(name for _, name, user in listed if user == "alice")
        assert alice == every, (len(alice), len(every))
        ids = [box for box, _, _ in listed]
        assert len(ids) == len(set(ids)), "a mailbox listed twice"
        assert sum(len(p) + 5 for _, p in frames) > HIGH_WATER
        m.reconciled()
        wait_log(rep, "sync.reconcile.done", 0)
        m.passwd()
    finally:
        m.tls.close()
    assert mailbox_names(rep.data) == every
    assert rep.running()


def test_a_start_from_another_master_node_ends_no_reconciliation(server,
                                                                 secret):
    rep = server()
    rep.stop()
    every = mailbox_names(rep.data)
    m, _ = scripted_master_for(restarted(rep), secret)
    try:
        m.accept()
        m.reconcile()
        before = applied(rep.data)
        since = len(rep.log_text())
        m.tls.send_frame(START, head(os.urandom(16), m.epoch, m.pos))
        wait_log(rep, "bad START after reconciliation", since)
        assert applied(rep.data) == before
        # It comes back reconciling, from where it was, and a START of
        # the master that asked ends it.
        hello = m.accept()
        assert hello["has_master"] == 0, hello
        assert hello["applied"] == 0, hello
        m.reconcile()
        m.reconciled()
        wait_log(rep, "sync.reconcile.done", since)
        m.passwd()
        assert applied(rep.data)[0] == m.pos
    finally:
        m.tls.close()
    assert mailbox_names(rep.data) == every
    assert rep.running()
