"""COPY and MOVE of many messages run in steps and stay all or nothing.

A COPY of 20,000 messages is about a second of writing: made at once it
stalled every session (the old code refused more than 1,000 with
NO [LIMIT] instead).  Now it copies a step a loop iteration, while a
probe's NOOPs keep answering, and no one sees a copy before the last
step shows them all: not another session, not STATUS, not a replica.
An error (a quota passed midway), a disconnect, a drain or a kill -9
in the middle leaves nothing behind, and `mailrepd check` clean.  The
thresholds are generous (a shared machine, ASan): they catch a loop
held for seconds, not a slow step.  A test that acts while a COPY is
under way runs the test build, which holds the COPY after its first
step until the test lets it go (test/teststep.c): a fast build copies
20,000 before a slow test looks, so the clock cannot say it is under
way."""
import os
import re
import signal
import threading
import time

import pytest

from conftest import DOMAIN, IMAPError, check_store
from powerloss import CRASH_BIN, store_rows
from test_imap_steps import BIG, MSG, Probe, count, fill

# A probe round trip past this is a stall.  Longer than test_imap_steps'
# STALL: 20,000 copies write ~15 WAL checkpoints' worth, and SQLite runs
# each inside a commit (1.4 s seen under load); a COPY of 20,000 made at
# once holds the loop ~10 s under ASan.
COPY_STALL = 3.0
from test_replication import (lmtp_one, make_cluster, message,  # noqa: F401
                              secret, status, wait_same)


def rows(data, mailbox, user="alice"):
    """Rows of mailbox in the store, shown or not, and jobs in the
    journal, both of one snapshot (one statement): read apart, an undo
    finishing between the two reads showed its copies beside no job."""
    return tuple(store_rows(
        data, "SELECT (SELECT count(*) FROM message m JOIN mailbox mb ON "
        "mb.id = m.mailbox_id JOIN user u ON u.id = mb.user_id "
        "WHERE u.name = ? AND mb.name = ?), "
        "(SELECT count(*) FROM copy_job)", (user, mailbox))[0])


def settled(data, mailbox, deadline=180):
    """Waits until the journal is empty (a cut-off job undone); returns
    the rows of mailbox."""
    end = time.monotonic() + deadline
    while True:
        n, jobs = rows(data, mailbox)
        if jobs == 0:
            return n
        assert time.monotonic() < end, "a copy job still in the journal"
        time.sleep(0.05)


class Watcher:
    """A session with `mailbox` selected sending NOOP and STATUS in a
    thread: every message count it was told (EXISTS or STATUS)."""

    def __init__(self, srv, mailbox):
        self.c = srv.raw()
        self.c.ok("SELECT %s" % mailbox)
        self.mailbox = mailbox
        self.seen = set()
        self.stopping = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stopping.is_set():
            told = self.c.ok("NOOP", timeout=300) + self.c.ok(
                "STATUS %s (MESSAGES)" % self.mailbox, timeout=300)
            for l in told:
                m = re.match(r"\* (\d+) EXISTS|\* STATUS \S+ "
                             r"\(MESSAGES (\d+)\)", l)
                if m:
                    self.seen.add(int(m.group(1) or m.group(2)))
            time.sleep(0.02)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.t.join(300)
        self.c.close()


def test_copy_and_move_of_many_are_stepped_and_atomic(imap_srv):
    """COPY and UID MOVE of 20,000: OK with COPYUID, the probe's NOOPs
    answered meanwhile, and a session watching the target is told of
    none of the copies or all of them."""
    with imap_srv.raw() as c:
        c.ok("CREATE dst")
        c.ok("CREATE dst2")
        fill(c, "INBOX", BIG)
        c.ok("NOOP")
        with Watcher(imap_srv, "dst") as w, Probe(imap_srv) as probe:
            untagged, done = c.cmd("COPY 1:* dst", timeout=300)
        probe.report("COPY 1:* of %d" % BIG, COPY_STALL)
        assert done.startswith("OK [COPYUID "), done
        assert re.search(r" 1:%d 1:%d\]" % (BIG, BIG), done), done
        assert w.seen <= {0, BIG}, sorted(w.seen)[:10]
        with Watcher(imap_srv, "dst2") as w, Probe(imap_srv) as probe:
            untagged, done = c.cmd("UID MOVE 1:* dst2", timeout=300)
        probe.report("UID MOVE 1:* of %d" % BIG, COPY_STALL)
        assert done.startswith("OK"), done
        assert any(l.startswith("* OK [COPYUID ") for l in untagged)
        assert sum(1 for l in untagged if l.endswith(" EXPUNGE")) == BIG
        # sources go in steps after the copies show: never a copy less
        assert w.seen <= {0, BIG}, sorted(w.seen)[:10]
        c.ok("SELECT dst2")
        got = c.ok("UID FETCH %d:* (UID)" % (BIG - 1))
        assert len(got) == 2, got
    assert count(imap_srv, "dst") == BIG
    assert count(imap_srv, "dst2") == BIG
    assert count(imap_srv, "INBOX") == 0
    imap_srv.stop()
    check_store(imap_srv.data)


def still_running(c, wait):
    """Whether the command sent on c has had no reply after `wait`."""
    try:
        c.line(timeout=wait)
    except IMAPError as e:
        return "timeout" in str(e)
    return False


needs_test_build = pytest.mark.skipif(
    not os.access(CRASH_BIN, os.X_OK),
    reason="no test build: make build/crash/mailrepd")


class StepHold:
    """The test build's hold on COPY steps (test/teststep.c): servers
    made by server() run the test build, hold() lets the next COPY in
    steps run its first step and holds the rest, under_way() waits
    until it is held there, release() lets it go on."""

    def __init__(self, tmp_path, monkeypatch, factory):
        self.path = tmp_path / "step-hold"
        self.factory = factory
        monkeypatch.setenv("MAILREPD_STEP_HOLD", str(self.path))

    def server(self, **kw):
        start = kw.pop("start", True)
        srv = self.factory(start=False, **kw)
        command = srv.command
        srv.command = lambda: [CRASH_BIN] + command()[1:]
        return srv.start() if start else srv

    def hold(self):
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("1\n")
        tmp.rename(self.path)		# never read half written

    def under_way(self, srv, verb):
        """Waits for the server's word that it holds the COPY after its
        first step: a COPY made in one step never says it."""
        end = time.monotonic() + 120
        while "teststep: holding after 1 steps" not in srv.log_text(True):
            assert time.monotonic() < end, \
                "the %s was never under way: %s" % (verb, srv.log_text(
                    True)[-2000:])
            time.sleep(0.02)

    def release(self):
        self.path.unlink()


@pytest.fixture
def step_hold(tmp_path, monkeypatch, server):
    return StepHold(tmp_path, monkeypatch, server)


@needs_test_build
@pytest.mark.parametrize("verb", ["COPY", "MOVE"])
def test_cut_off_copy_leaves_nothing(step_hold, verb):
    """A client that disconnects while its COPY (MOVE) copies: the
    copies already made are undone in steps, never shown, the sources
    stay, and the target takes other writes again afterwards."""
    imap_srv = step_hold.server(imap=True)
    with imap_srv.raw() as c:
        c.ok("CREATE dst")
        fill(c, "INBOX", BIG)
    c = imap_srv.raw()
    c.ok("SELECT INBOX")
    step_hold.hold()
    c.send("k %s 1:* dst\r\n" % verb)
    step_hold.under_way(imap_srv, verb)
    n, jobs = rows(imap_srv.data, "dst")
    assert jobs == 1 and n > 0, (n, jobs)
    c.close()
    with imap_srv.raw() as w:
        while rows(imap_srv.data, "dst")[1]:
            assert w.status("dst")["MESSAGES"] == 0
            time.sleep(0.02)
    assert settled(imap_srv.data, "dst") == 0
    step_hold.release()
    assert count(imap_srv, "dst") == 0
    assert count(imap_srv, "INBOX") == BIG
    with imap_srv.raw() as c:
        c.ok("SELECT INBOX")
        c.ok("COPY 1:10 dst")
    assert count(imap_srv, "dst") == 10
    imap_srv.stop()
    check_store(imap_srv.data)


@pytest.mark.parametrize("verb", ["COPY", "MOVE"])
def test_copy_killed_midway_is_all_or_nothing(server, verb):
    """kill -9 while a COPY (MOVE) of 20,000 is under way: `mailrepd
    check` is clean on the stopped store, and after a restart the
    target shows none of them or all (a MOVE's sources gone with all),
    with no copy left in the store that is not shown."""
    srv = server(imap=True)
    with srv.raw() as c:
        c.ok("CREATE dst")
        fill(c, "INBOX", BIG)
    seen = set()
    for delay in (0.3, 1.0, 3.0):
        before = count(srv, "dst")
        c = srv.raw()
        c.ok("SELECT INBOX")
        c.send("k %s 1:* dst\r\n" % verb)
        running = still_running(c, delay)
        srv.kill9()
        c.close()
        check_store(srv.data)
        srv.start()
        got = count(srv, "dst") - before
        assert got in (0, BIG), (delay, got)
        assert running or got == BIG, "the %s was not under way" % verb
        assert settled(srv.data, "dst") == before + got
        inbox = count(srv, "INBOX")
        assert inbox == (0 if verb == "MOVE" and got else BIG), \
            (delay, got, inbox)
        seen.add(got)
        if inbox == 0:
            break
    print("copies seen after kill -9: %s" % sorted(seen))
    srv.stop()
    check_store(srv.data)


def test_a_move_killed_while_expunging_finishes_at_restart(server):
    """kill -9 once a MOVE of 20,000 has shown its copies and is
    expunging its sources: after a restart the target has them all and
    the start-up sweep expunges the rest of the sources in steps that
    follow each other at once (it once waited for the next one-second
    tick between steps: 20,000 sources took half an hour)."""
    srv = server(imap=True)
    with srv.raw() as c:
        c.ok("CREATE dst")
        fill(c, "INBOX", BIG)
    c = srv.raw()
    c.ok("SELECT INBOX")
    c.send("k MOVE 1:* dst\r\n")
    while not store_rows(srv.data, "SELECT count(*) FROM copy_job "
                         "WHERE expunging = 1 AND done > 0")[0][0]:
        try:
            c.line(timeout=0.05)  # read, or the session waits for us
        except IMAPError:
            pass
    srv.kill9()
    c.close()
    check_store(srv.data)
    srv.start()
    assert count(srv, "dst") == BIG
    assert settled(srv.data, "dst") == BIG
    assert count(srv, "INBOX") == 0
    srv.stop()
    check_store(srv.data)


@needs_test_build
def test_drain_cuts_a_copy_off(step_hold):
    """SIGQUIT while a COPY of 20,000 copies: the COPY gets NO, the
    drain exits 0, and after a restart nothing of it is there."""
    srv = step_hold.server(imap=True)
    with srv.raw() as c:
        c.ok("CREATE dst")
        fill(c, "INBOX", BIG)
    c = srv.raw()
    c.ok("SELECT INBOX")
    t = c.tag()
    step_hold.hold()
    c.send("%s COPY 1:* dst\r\n" % t)
    step_hold.under_way(srv, "COPY")
    srv.proc.send_signal(signal.SIGQUIT)
    untagged, done = c.read_until(t, timeout=60)
    assert done.startswith("NO"), done
    assert srv.proc.wait(60) == 0, srv.log_text()[-2000:]
    srv.proc = None
    check_store(srv.data)
    step_hold.release()
    srv.start()
    assert count(srv, "dst") == 0
    assert settled(srv.data, "dst") == 0
    srv.stop()
    check_store(srv.data)


def test_quota_passed_midway_copies_nothing(server):
    """A COPY whose bytes pass the storage quota halfway gets
    NO [OVERQUOTA] and leaves nothing; a MOVE of the same set grows
    nothing and passes."""
    n = 2000
    body = b"From: a@b.test\r\nSubject: q\r\n\r\n" + b"x" * 1000 + b"\r\n"
    srv = server(imap=True, args=["--quota-storage",
                                  str(int(n * len(body) * 1.5))])
    with srv.raw() as c:
        c.ok("CREATE dst")
        for _ in range(10):
            c.append("INBOX", body)
        c.ok("SELECT INBOX")
        k = 10
        while k < n:
            c.ok("COPY 1:%d INBOX" % min(k, n - k), timeout=120)
            k += min(k, n - k)
        c.ok("NOOP")
        untagged, done = c.cmd("COPY 1:* dst", timeout=120)
        assert done.startswith("NO [OVERQUOTA]"), done
        assert settled(srv.data, "dst") == 0
        assert count(srv, "dst") == 0
        untagged, done = c.cmd("MOVE 1:* dst", timeout=120)
        assert done.startswith("OK"), done
    assert count(srv, "dst") == n
    assert count(srv, "INBOX") == 0
    srv.stop()
    check_store(srv.data)


@needs_test_build
def test_replica_sees_a_move_whole_and_an_undone_copy_never(step_hold,
                                                            secret):
    """With a replica following: while a MOVE of 20,000 copies, the
    replica holds none of the copies (their records wait until the copy
    shows); then it holds what the master holds, and its guard did not
    count the MOVE's expunges.  A COPY cut off midway never reaches it,
    and the log goes on without a reconciliation."""
    master, (replica,) = make_cluster(step_hold.server, secret)(1)
    with master.raw() as c:
        c.ok("CREATE dst")
        c.ok("CREATE cut")
        fill(c, "INBOX", BIG)
    wait_same(master, replica, deadline=120)
    c = master.raw()
    c.ok("SELECT INBOX")
    t = c.tag()
    c.send("%s MOVE 1:* dst\r\n" % t)
    early = 0
    while True:
        on_replica = rows(replica.data, "dst")[0]
        if rows(master.data, "dst")[1] == 0 and count(master, "dst") == BIG:
            break
        # the copies showed after the replica was read: it had none
        if count(master, "dst") == 0:
            assert on_replica == 0, on_replica
            early += 1
        time.sleep(0.05)
    untagged, done = c.read_until(t, timeout=300)
    assert done.startswith("OK"), done
    assert early > 0
    wait_same(master, replica, deadline=120)
    assert rows(replica.data, "dst")[0] == BIG
    st = status(replica.data)
    assert st["paused"] is None and not st["paused_users"], st
    reconciles = master.log_text().count("sync.reconcile.start")
    c.ok("SELECT dst")
    step_hold.hold()
    c.send("k COPY 1:* cut\r\n")
    step_hold.under_way(master, "COPY")
    c.close()
    assert settled(master.data, "cut") == 0
    step_hold.release()
    lmtp_one(master.port, "alice@%s" % DOMAIN, message("after"))
    wait_same(master, replica, deadline=60)
    assert rows(replica.data, "cut")[0] == 0
    assert master.log_text().count("sync.reconcile.start") == reconciles
    assert "sync.guard.paused" not in replica.log_text()


@needs_test_build
def test_target_takes_no_other_write_while_copied_into(step_hold):
    """While a COPY of 20,000 fills a mailbox, another APPEND there gets
    NO [INUSE] and a delivery 451 4.3.0 (no UID may come between the
    copies'); both go through once the COPY is done."""
    imap_srv = step_hold.server(imap=True)
    with imap_srv.raw() as c:
        c.ok("CREATE dst")
        fill(c, "dst", BIG)
        c.ok("SELECT dst")
        t = c.tag()
        step_hold.hold()
        c.send("%s COPY 1:* INBOX\r\n" % t)
        step_hold.under_way(imap_srv, "COPY")
        with imap_srv.raw() as other:
            untagged, done = other.cmd(
                "APPEND INBOX {%d+}\r\n%s" % (len(MSG), MSG.decode()))
            assert done.startswith("NO [INUSE]"), done
        got = lmtp_one(imap_srv.port, "alice@%s" % DOMAIN, message("busy"))
        assert got[0].startswith("451 4.3.0"), got
        step_hold.release()
        untagged, done = c.read_until(t, timeout=300)
        assert done.startswith("OK"), done
    got = lmtp_one(imap_srv.port, "alice@%s" % DOMAIN, message("later"))
    assert got[0].startswith("250"), got
    assert count(imap_srv, "INBOX") == BIG + 1
