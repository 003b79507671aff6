"""Allocation failures while a replica answers its master's PULL (the
master lacks a message only the replica holds, so it asks for it in a
reconciliation): the replica records the copy as a conflict and pushes
it (PUSH), with the Nth allocation failing (test/testalloc.c, as in
test_alloc_faults.py), against a scripted master (repl_peer.py) that
asks for one copy a run.  After each run, with the hook off: the copy
was pushed, or the replica dropped the link (the next reconciliation
asks again), or its conflict is open (pushed on the next link).  A
look-up that failed was once taken for "the copy is gone": the PULL
was dropped unrecorded, or the conflict closed unpushed, and the copy
stayed on the replica alone with nothing left to send it.

ALLOC_FAULT_MAX and ALLOC_FAULT_FROM as in test_alloc_faults.py.
"""
import os
import shutil
import struct
import time

import pytest

from conftest import DOMAIN, HOST, LMTPClient, free_port
from powerloss import CRASH_BIN, message
from repl_peer import (ACK, END, HELLO, PING, PULL, PUSH, Deflater,
                       ScriptedMaster, parse_hello, query, u64)
from test_alloc_faults import AllocServer, alloc_runs, sanitizer_clean
from test_io_faults import check_clean

SECRET = "c4" * 32
COPIES = 200		# local messages: one PULLed a run, the count first
QUIET = 3.0		# seconds a run waits for the PUSH
BACK = 10.0		# for a replica to come back (SYNC_RECONNECT_MIN 1)

pytestmark = pytest.mark.skipif(not os.access(CRASH_BIN, os.X_OK),
                                reason="no test build: make "
                                "build/crash/mailrepd")


def deliver_local(port, n):
    """n messages to alice on one LMTP connection, each acknowledged."""
    with LMTPClient(port) as c:
        c.lhlo()
        for i in range(n):
            _, data = c.transaction("s@remote.test",
                                    ["alice@" + DOMAIN],
                                    message("local%d" % i))
            assert [d[:3] for d in data] == ["250"], data


def answer(master, uid, deadline=QUIET):
    """What the replica did about the PULL of uid: "pushed", "closed"
    (it dropped the link and came back: it streams again, its backoff
    reset), or
    "quiet" (nothing within deadline seconds)."""
    end = time.monotonic() + deadline
    while True:
        try:
            t, p = master.tls.read_frame(max(end - time.monotonic(), 0.01))
        except AssertionError:
            return "quiet"
        if t == PUSH and struct.unpack(">Q", p[16:24])[0] == uid:
            return "pushed"
        if t == HELLO:
            again(master, p)
            return "closed"


def applied(master):
    """One batch the replica applies (alice's password again): its
    reconnection backoff starts from a second again."""
    seq = master.record("user.passwd", seq=master.pos + 1, user="alice",
                        value="x")
    master.tls.send_frame(END, u64(seq) + b"\0" * 32)
    while True:
        t, p = master.tls.read_frame()
        if (t, p) == (ACK, u64(seq)):
            master.pos = seq
            return
        if t == HELLO:		# its commit failed: the link went
            again(master, p)
            return


def again(master, hello):
    """The replica came back (HELLO hello): it streams from where it
    is, and applies a batch."""
    hello = parse_hello(hello)
    master.z = Deflater()
    master.pos = hello["applied"]
    master.start(hello)
    applied(master)


def conflict_of(data, uid):
    """The resolved state of the replica's conflict on uid (None: none)."""
    rows = query(data, "SELECT resolved FROM conflict WHERE uid = ?",
                 (uid,))
    return rows[0][0] if rows else None


def test_alloc_faults_in_pull_and_push(tmp_path, template_data):
    secret = tmp_path / "repl.secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    data = tmp_path / "data"
    shutil.copytree(template_data, data)
    rep = AllocServer(tmp_path, data)
    rep.env = dict(os.environ)		# no hook file yet: never fails
    rep.start()
    deliver_local(rep.port, COPIES)
    assert rep.stop() == 0
    port = free_port()
    master = ScriptedMaster(port, SECRET)
    rep = AllocServer(tmp_path, data, [
        "--replicate-from", "%s:%d" % (HOST, port),
        "--repl-secret-file", str(secret), "--conflict-policy",
        "renumber"])
    box, = query(data, "SELECT m.uniqueid FROM mailbox m JOIN user u ON "
                 "u.id = m.user_id WHERE u.name = 'alice' AND "
                 "m.name = 'INBOX'")[0]
    local = query(data, "SELECT m.uid, b.guid FROM message m JOIN blob b "
                  "ON b.id = m.blob_id JOIN mailbox mb ON mb.id = "
                  "m.mailbox_id WHERE mb.uniqueid = ? ORDER BY m.uid",
                  (box,))
    runs = reached = 0
    try:
        rep.start()
        master.accept()
        # The comparison ends at once: a replica that streams takes a
        # PULL too, and comes back within a second when it drops the
        # link (a START resets its backoff).
        master.reconcile()
        master.reconciled()
        applied(master)
        for f in alloc_runs():
            assert runs < len(local), "more runs than copies"
            uid, guid = local[runs]
            master.tls.send_frame(PING)		# no silence drops the link
            rep.arm(f.n)
            master.tls.send_frame(PULL, box + struct.pack(">I", uid) + guid)
            got = answer(master, uid)
            f.hit = rep.injected()
            counted = rep.disarm()
            what = "PULL of uid %d with allocation #%d failing: %s" % (
                uid, f.n, got)
            assert rep.alive(), "%s: died:\n%s" % (
                what, rep.log.read_text()[-4000:])
            state = conflict_of(data, uid)
            if got == "quiet" and state is None:
                # Not recorded: the link must go (the reconciliation
                # asks again), and the replica come back.
                got = answer(master, uid, BACK)
                what += ", then " + got
            if got == "quiet":
                assert state == 0, "%s, conflict %r:\n%s" % (
                    what, state, rep.since().decode()[-3000:])
            elif got == "closed":
                assert state != 1, what
            if f.counting:
                assert got == "pushed", what
                f.counted = counted
            elif f.hit:
                reached = f.n
            runs += 1
    finally:
        rep.disarm(wake=False)
        master.tls.close()
        status = rep.stop()
    sanitizer_clean(rep.log.read_text())
    assert status == 0, rep.log.read_text()[-3000:]
    check_clean(data)
    print("PULL and PUSH: failed allocations up to #%d, %d runs" % (
        reached, runs - 1))
