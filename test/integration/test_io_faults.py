"""I/O faults, the way SQLite tests itself: the test build's VFS
(test/testvfs.c) fails the Nth read, write, sync or truncate with
SQLITE_IOERR or SQLITE_FULL, and a loop runs each scenario (LMTP
delivery, APPEND, COPY, EXPUNGE, a replica applying a batch) with the
failure at N = 1, 2, ... until the scenario completes without reaching
it.  After every run, with the fault gone: the server still runs and
serves, whatever it acknowledged is there exactly once, whatever it
refused left nothing behind, nothing acknowledged before is lost, and at
the end of each loop `mailrepd check` is clean.

IO_FAULT_MAX bounds N per loop (make check: 30; make faults runs every
N until each scenario completes).
"""
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time

import pytest

from conftest import DOMAIN, HOST, LMTPClient, IMAPRaw, IMAPError, \
    LMTPError, free_port
from powerloss import CHECK_BIN, CRASH_BIN, FaultFileServer, message, \
    store_rows

FAULT_MAX = int(os.environ.get("IO_FAULT_MAX", "30"))
# Each fault a replica hits costs a reconnection (a second): fewer N.
REPLICA_FAULT_MAX = FAULT_MAX and max(1, FAULT_MAX // 10)
OPS = ("read", "write", "sync", "truncate")
ERRS = ("ioerr", "full")

pytestmark = pytest.mark.skipif(not os.access(CRASH_BIN, os.X_OK),
                                reason="no test build: make "
                                "build/crash/mailrepd")


class FaultServer(FaultFileServer):
    """The test build with the test VFS's fault file, read before every
    I/O."""

    def __init__(self, tmp, data, args=()):
        super().__init__(tmp, data, "MAILREPD_VFS_FAULTS", "faults",
                         b"testvfs: failing", args)

    def arm(self, op, n, err, on=False):
        """Fails the nth op (read, write, sync, truncate) with err
        (ioerr, full), and with on every later one too."""
        self.write_faults("%s %d %s %s" % (op, n, err,
                                           "on" if on else "off"))


def held(data, user="alice"):
    """{(mailbox, subject): count} of user's messages, from the store."""
    rows = store_rows(
        data, "SELECT mb.name, b.subject, count(*) FROM message m "
        "JOIN blob b ON b.id = m.blob_id "
        "JOIN mailbox mb ON mb.id = m.mailbox_id "
        "JOIN user u ON u.id = mb.user_id WHERE u.name = ? "
        "GROUP BY mb.name, b.subject", (user,))
    return {(r[0], r[1]): r[2] for r in rows}


def flagged(data, user="alice"):
    """{subject: whether it is \\Flagged} in user's INBOX."""
    rows = store_rows(
        data, "SELECT b.subject, m.flags & 4 FROM message m "
        "JOIN blob b ON b.id = m.blob_id "
        "JOIN mailbox mb ON mb.id = m.mailbox_id "
        "JOIN user u ON u.id = mb.user_id "
        "WHERE u.name = ? AND mb.name = 'INBOX'", (user,))
    return {r[0]: bool(r[1]) for r in rows}


def mailboxes(data, user="alice"):
    """{name: whether it is subscribed} of user's mailboxes."""
    rows = store_rows(
        data, "SELECT mb.name, EXISTS (SELECT 1 FROM subscription s "
        "WHERE s.user_id = mb.user_id AND s.name = mb.name) FROM mailbox mb "
        "JOIN user u ON u.id = mb.user_id WHERE u.name = ?", (user,))
    return {r[0]: bool(r[1]) for r in rows}


def check_clean(data):
    p = subprocess.run([CHECK_BIN, "check", "--data", str(data)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=60)
    assert p.returncode == 0 and " 0 problems" in p.stdout, \
        "check: %s%s" % (p.stdout, p.stderr)


class Run:
    """One server under fault injection and what its clients were told:
    want[(mailbox, subject)] is how many copies must be there."""

    def __init__(self, srv):
        self.srv = srv
        self.want = {}
        self.flagged = {}		# subject -> \\Flagged in INBOX
        self.n = 0
        self.imap = None
        self.boxes = None		# name -> subscribed, once known
        self.spare = None		# a mailbox to rename or delete

    def session(self):
        """A logged-in IMAP session with INBOX selected; a new one when
        the server closed the last (a fault may end a session)."""
        if self.imap is not None:
            try:
                self.imap.ok("NOOP")
                return self.imap
            except (OSError, IMAPError, AssertionError):
                self.imap.close()
        self.imap = IMAPRaw(self.srv.imap_port)
        self.imap.login("alice")
        self.imap.ok("SELECT INBOX")
        return self.imap

    def tag(self):
        self.n += 1
        return "f%dx" % self.n

    def uid_of(self, box, subject):
        c = self.session()
        if box != "INBOX":
            c.ok("SELECT %s" % box)
        untagged = c.ok("UID SEARCH SUBJECT %s" % subject)
        if box != "INBOX":
            c.ok("SELECT INBOX")
        return [int(x) for l in untagged if l.startswith("* SEARCH")
                for x in l.split()[2:]]

    def verify(self, what):
        """After a run, with the fault gone: the server runs, and the
        store holds exactly what was acknowledged."""
        assert self.srv.alive(), "%s: the server died:\n%s" % (
            what, self.srv.log.read_text()[-4000:])
        got = held(self.srv.data)
        bad = {k: (got.get(k, 0), v) for k, v in self.want.items()
               if got.get(k, 0) != v}
        assert not bad, "%s: (held, acknowledged) differ: %s\nlog:\n%s" % (
            what, bad, self.srv.log.read_text()[-3000:])
        if self.boxes is not None:
            got = mailboxes(self.srv.data)
            assert got == self.boxes, "%s: mailboxes (held, " \
                "acknowledged) differ: %s" % (what, (got, self.boxes))
        got = flagged(self.srv.data)
        bad = {k: v for k, v in self.flagged.items()
               if self.want.get(("INBOX", k)) and got.get(k) != v}
        assert not bad, "%s: \\Flagged differs from what was " \
            "acknowledged: %s" % (what, bad)

    # Each scenario runs one change and records what it was told.

    def deliver(self):
        t = self.tag()
        try:
            with LMTPClient(self.srv.port) as c:
                c.lhlo()
                _, data = c.transaction("s@remote.test",
                                        ["alice@" + DOMAIN], message(t))
            ok = bool(data) and data[0].startswith("250")
        except (OSError, LMTPError):
            ok = False
        self.want[("INBOX", t)] = 1 if ok else 0

    def append(self):
        t = self.tag()
        body = message(t)
        try:
            c = self.session()
            c.send(("%s APPEND INBOX {%d+}\r\n" % (c.tag(), len(body))
                    ).encode() + body + b"\r\n")
            _, done = c.read_until("t%d" % c.ntag)
            ok = done.startswith("OK")
        except (OSError, IMAPError):
            ok = False
        self.want[("INBOX", t)] = 1 if ok else 0

    def copy(self):
        subject, uid = self.source
        try:
            _, done = self.session().cmd("UID COPY %d Archive" % uid)
            ok = done.startswith("OK")
        except (OSError, IMAPError):
            ok = False
        key = ("Archive", subject)
        self.want[key] = self.want.get(key, 0) + (1 if ok else 0)

    def expunge(self):
        subject, uid = self.source
        try:
            c = self.session()
            _, done = c.cmd("UID STORE %d +FLAGS.SILENT (\\Deleted)" % uid)
            if done.startswith("OK"):
                _, done = c.cmd("UID EXPUNGE %d" % uid)
            ok = done.startswith("OK")
        except (OSError, IMAPError):
            ok = False
        if ok:
            self.want[("INBOX", subject)] = 0
        else:
            self.maybe_gone = ("INBOX", subject)

    def flag(self):
        subject, uid = self.source
        on = not self.flagged.get(subject, False)
        try:
            _, done = self.session().cmd("UID STORE %d %sFLAGS (\\Flagged)"
                                         % (uid, "+" if on else "-"))
            ok = done.startswith("OK")
        except (OSError, IMAPError):
            ok = False
        if ok:
            self.flagged[subject] = on
        else:
            self.flagged.setdefault(subject, False)

    def told(self, command):
        """Runs an IMAP command: True on OK, False on NO or BAD, None
        when the session ended first (whether it was done is unknown)."""
        try:
            _, done = self.session().cmd(command)
        except (OSError, IMAPError):
            return None
        return done.startswith("OK")

    def settle(self, ok, before, after):
        """Records the mailboxes a change was told about: after on OK,
        before on a refusal, and when the answer was lost whichever of
        the two the store holds (never half of one)."""
        if ok is None:
            got = mailboxes(self.srv.data)
            now = {k: got.get(k) for k in before}
            assert now in (before, after), (before, after, now)
            ok = now == after
        for k, v in (after if ok else before).items():
            if v is None:
                self.boxes.pop(k, None)
            else:
                self.boxes[k] = v

    def create(self):
        name = "c%d" % self.n
        self.n += 1
        self.settle(self.told("CREATE %s" % name), {name: None},
                    {name: False})

    def rename(self):
        name, self.spare = self.spare, None
        to = "r%d" % self.n
        self.n += 1
        self.settle(self.told("RENAME %s %s" % (name, to)),
                    {name: self.boxes[name], to: None},
                    {name: None, to: self.boxes[name]})
        if to in self.boxes:		# its messages went with it
            for key in [k for k in self.want if k[0] == name]:
                self.want[(to, key[1])] = self.want.pop(key)

    def delete(self):
        """DELETE of a mailbox that holds a message."""
        name, self.spare = self.spare, None
        self.settle(self.told("DELETE %s" % name), {name: self.boxes[name]},
                    {name: None})
        for key in [k for k in self.want if k[0] == name]:
            self.want[key] = held(self.srv.data).get(key, 0) \
                if name in self.boxes else 0

    def subscribe(self):
        name = self.spare
        on = not self.boxes[name]
        self.settle(self.told("%sSUBSCRIBE %s" % ("" if on else "UN", name)),
                    {name: not on}, {name: on})

    def move(self):
        subject, uid = self.source
        ok = self.told("UID MOVE %d Archive" % uid)
        src, dst = ("INBOX", subject), ("Archive", subject)
        if ok is None:
            got = held(self.srv.data)
            ok = got.get(src, 0) == 0
        if ok:
            self.want[src] = 0
            self.want[dst] = self.want.get(dst, 0) + 1

    def prepare(self):
        """Before a fault is armed: the mailboxes as they are, a spare
        mailbox holding a message for RENAME, DELETE and SUBSCRIBE, and a
        message in INBOX for COPY, MOVE and EXPUNGE to work on (delivered
        now if none is), and its UID."""
        if self.boxes is None:
            self.boxes = mailboxes(self.srv.data)
        if self.spare is None:
            self.spare = "s%d" % self.n
            self.n += 1
            self.session().ok("CREATE %s" % self.spare)
            self.boxes[self.spare] = False
            self.prepare()
            subject, uid = self.source
            self.session().ok("UID COPY %d %s" % (uid, self.spare))
            key = (self.spare, subject)
            self.want[key] = self.want.get(key, 0) + 1
        for (box, subject), n in self.want.items():
            if box == "INBOX" and n == 1:
                uids = self.uid_of("INBOX", subject)
                assert len(uids) == 1, (subject, uids)
                self.source = (subject, uids[0])
                return
        self.deliver()
        self.prepare()


def fault_loops(run, scenario, name):
    """Runs scenario with each op and error failing at N = 1, 2, ...
    until it completes without the fault (or N reaches FAULT_MAX)."""
    loops = 0
    for op in OPS:
        for err in ERRS:
            n = 1
            while FAULT_MAX <= 0 or n <= FAULT_MAX:
                run.prepare()
                run.srv.arm(op, n, err)
                run.maybe_gone = None
                scenario()
                run.srv.disarm()
                hit = run.srv.injected()
                if run.maybe_gone is not None:
                    # A refused EXPUNGE may still have happened when the
                    # fault came after its commit: never half-way.
                    n_now = held(run.srv.data).get(run.maybe_gone, 0)
                    run.want[run.maybe_gone] = n_now
                run.verify("%s with %s #%d failing (%s)" % (name, op, n,
                                                           err))
                loops += 1
                if not hit:
                    break
                n += 1
    run.deliver()			# still serving, faults gone
    assert run.want[("INBOX", "f%dx" % run.n)] == 1
    run.verify("%s: a delivery after the loops" % name)
    return loops


@pytest.fixture
def fault_server(tmp_path, template_data):
    data = tmp_path / "data"
    shutil.copytree(template_data, data)
    srv = FaultServer(tmp_path, data)
    srv.start()
    yield srv
    srv.disarm()
    status = srv.stop()
    log = srv.log.read_text()
    assert "ERROR: AddressSanitizer" not in log and \
        "runtime error:" not in log, log
    assert status == 0, "exit %s:\n%s" % (status, log[-3000:])
    check_clean(data)


@pytest.mark.parametrize("name", ["deliver", "append", "copy", "expunge",
                                  "flag", "move", "create", "rename",
                                  "delete", "subscribe"])
def test_io_faults_lose_nothing_acknowledged(fault_server, name):
    run = Run(fault_server)
    run.deliver()
    loops = fault_loops(run, getattr(run, name), name)
    check_clean(fault_server.data)
    print("%s: %d fault runs" % (name, loops))


def test_a_disk_that_stays_full_refuses_then_recovers(fault_server):
    """Every write failing with SQLITE_FULL for a while: deliveries and
    APPENDs are refused (never acknowledged), the server keeps running,
    and once space is back they are accepted again."""
    run = Run(fault_server)
    run.deliver()
    fault_server.arm("write", 1, "full", on=True)
    for _ in range(3):
        run.deliver()
        run.append()
    fault_server.disarm()
    assert fault_server.injected()
    refused = [k for k, v in run.want.items() if v == 0]
    assert len(refused) == 6, run.want
    run.verify("a full disk")
    run.deliver()
    run.append()
    assert list(run.want.values())[-2:] == [1, 1], run.want
    run.verify("space back")


def test_a_failed_store_hides_no_later_change(fault_server):
    """A STORE whose commit fails had its change, and its MODSEQ, rolled
    back, after its FETCH response told the client of it: the client is
    told the flags as they are before the NO.  The next change by another
    session takes that MODSEQ; the first session must still be told of
    it, not take it for its own."""
    run = Run(fault_server)
    run.deliver()
    run.deliver()
    a = run.session()
    uid1, uid2 = run.uid_of("INBOX", "f1x")[0], run.uid_of("INBOX", "f2x")[0]
    index_caught_up(fault_server.data)
    fault_server.arm("write", 1, "ioerr")
    untagged, done = a.cmd("UID STORE %d +FLAGS (\\Flagged)" % uid1)
    fault_server.disarm()
    assert fault_server.injected() and done.startswith("NO"), done
    told = [l for l in untagged if "FETCH" in l and "UID %d" % uid1 in l]
    assert told and "\\Flagged" not in told[-1], untagged
    b = IMAPRaw(fault_server.imap_port)
    b.login("alice")
    b.ok("SELECT INBOX")
    b.ok("UID STORE %d +FLAGS.SILENT (\\Seen)" % uid2)
    b.close()
    untagged = a.ok("NOOP")
    told = [l for l in untagged if "FETCH" in l and "UID %d " % uid2 in l]
    assert told and "\\Seen" in told[0], untagged


def test_drain_never_reports_safe_on_what_it_cannot_read(tmp_path,
                                                         template_data):
    """A drain that cannot read the replication log's head or the list
    of replicas cannot know that every replica has everything, so it
    must not exit 0 (failing over is safe): it counts that as a replica
    behind (exit 3) and says why.  Every read fails from just before the
    SIGQUIT; another process changed the database first, so the
    server's page cache is stale and its reads reach the disk."""
    data = tmp_path / "data"
    shutil.copytree(template_data, data)
    srv = FaultServer(tmp_path, data)
    srv.start()
    run = Run(srv)
    run.deliver()
    srv.arm("read", 1, "ioerr", on=True)
    db = sqlite3.connect(str(data / "mailrepd.db"), timeout=10)
    db.execute("CREATE TABLE drain_probe (x)")
    db.commit()
    db.close()
    srv.proc.send_signal(signal.SIGQUIT)
    status = srv.proc.wait(60)
    srv.disarm()
    log = srv.log.read_text()
    assert "ERROR: AddressSanitizer" not in log and \
        "runtime error:" not in log, log
    assert srv.injected(), log[-3000:]
    assert "drain.replica.unknown" in log, log[-3000:]
    assert status == 3, "exit %s:\n%s" % (status, log[-3000:])


# IMAP_STEP_MESSAGES (config.h): a command over more messages than this
# runs in steps, one a loop iteration, each committed by its own group
# commit.
STEP_MESSAGES = 256


def index_caught_up(data, deadline=30):
    """Waits until SEARCH's index has taken every blob: its batch writes
    in a transaction of its own, which would take a fault armed for a
    command's step."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if store_rows(data, "SELECT (SELECT upto FROM fts_state) >= "
                      "(SELECT coalesce(max(id), 0) FROM blob)")[0][0]:
            return
        time.sleep(0.05)
    raise AssertionError("the search index did not catch up")


def inbox_flags(data, user="alice"):
    """The flags of user's INBOX messages, in UID order."""
    return [r[0] for r in store_rows(
        data, "SELECT m.flags FROM message m "
        "JOIN mailbox mb ON mb.id = m.mailbox_id "
        "JOIN user u ON u.id = mb.user_id "
        "WHERE u.name = ? AND mb.name = 'INBOX' ORDER BY m.uid", (user,))]


def told_flags(untagged):
    """{sequence number: the last FLAGS a FETCH response told}."""
    told = {}
    for l in untagged:
        m = re.match(r"\* (\d+) FETCH \(.*?FLAGS \(([^)]*)\)", l, re.S)
        if m:
            told[int(m.group(1))] = m.group(2).split()
    return told


@pytest.mark.parametrize("command,flag,bit", [
    ("STORE 1:* +FLAGS (\\Flagged)", "\\Flagged", 4),
    ("FETCH 1:* (BODY[])", "\\Seen", 1)])
def test_a_lost_step_fails_the_command(fault_server, command, flag, bit):
    """A STORE (or a FETCH that sets \\Seen) over more messages than one
    step takes goes on across loop iterations, each step's changes made
    durable by that iteration's group commit.  When the commit of an
    early step fails, its changes are undone while the command goes on
    and the later steps commit: the reply must be NO, never OK, and the
    last flags the client was told of each message are those it has."""
    c = IMAPRaw(fault_server.imap_port)
    c.login("alice")
    for i in range(10):
        c.append("INBOX", message("s%d" % i))
    c.ok("SELECT INBOX")
    n = 10
    while n < STEP_MESSAGES + 50:
        c.ok("COPY 1:%d INBOX" % n)
        n *= 2
    c.ok("NOOP")
    assert len(inbox_flags(fault_server.data)) == n
    index_caught_up(fault_server.data)
    fault_server.arm("write", 1, "ioerr")
    untagged, done = c.cmd(command, timeout=120)
    fault_server.disarm()
    assert fault_server.injected()
    got = inbox_flags(fault_server.data)
    undone = sum(1 for f in got if not f & bit)
    assert done.startswith("NO"), "%r while %d of %d messages lack %s" % (
        done, undone, n, flag)
    assert 0 < undone < n, (undone, n)
    told = told_flags(untagged)
    wrong = [seq for seq in range(1, n + 1)
             if seq in told and (flag in told[seq]) != bool(got[seq - 1] &
                                                            bit)]
    assert not wrong, "told other flags than kept for %s" % wrong[:10]
    # the session goes on, and sees the store as it is
    told = told_flags(c.ok("FETCH 1:* FLAGS"))
    assert [flag in told[seq] for seq in range(1, n + 1)] == \
        [bool(f & bit) for f in got]
    c.close()


def messages(data):
    """Every message's mailbox identity, uid, guid and flags."""
    return sorted(store_rows(
        data, "SELECT mb.uniqueid, m.uid, b.guid, m.flags FROM message m "
        "JOIN blob b ON b.id = m.blob_id "
        "JOIN mailbox mb ON mb.id = m.mailbox_id"))


def one_value(data, sql):
    rows = store_rows(data, sql)
    return rows[0][0] if rows else None


def acked_applied(master, replica):
    """(what the master holds as acknowledged by this replica, by node
    id: a replica made afresh under the same name is another; what the
    replica recorded as applied).  A reconciling replica's "acked" is
    where its comparison began, kept for the purge: no acknowledgement."""
    node_id = one_value(replica.data, "SELECT hex(node_id) FROM node")
    acked = one_value(master.data, "SELECT acked FROM replica WHERE "
                      "hex(node_id) = '%s' AND NOT reconciling" % node_id)
    return acked, one_value(replica.data, "SELECT applied FROM node")


def assert_no_false_ack(master, replica, what):
    """The master holds no acknowledgement of a batch the replica has
    not applied."""
    acked, applied = acked_applied(master, replica)
    assert acked is None or acked <= applied, (what, acked, applied)


def assert_follows(master, replica, what, started=False):
    """A reconciliation ends with the master taking the replica as
    holding its log up to where the comparison began (what it sent is
    acknowledged) and the replica recording that position: the replica
    catches up with that record, if its write failed, by reconciling
    again.  With started, until the first reconciliation has ended."""
    end = time.monotonic() + 30
    while True:
        acked, applied = acked_applied(master, replica)
        if (acked is None and not started) or \
                (acked is not None and acked <= applied):
            return
        assert time.monotonic() < end, (what, acked, applied,
                                        replica.log.read_text()[-3000:])
        time.sleep(0.1)


def wait_caught_up(master, replica, deadline, stop=lambda: False):
    """Waits until the replica holds the master's messages (or stop()
    is true); whether it did before the deadline."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if messages(replica.data) == messages(master.data):
            return True
        if stop():
            return False
        time.sleep(0.05)
    return False


def test_io_faults_in_replica_batch_apply(tmp_path, server):
    """A replica whose store fails while it applies a batch rolls the
    batch and its position back, keeps running, and applies it again
    once the fault is gone: the same messages as the master, none twice,
    and the master never holds an acknowledgement for a batch the
    replica rolled back."""
    secret = tmp_path / "repl.secret"
    secret.write_text("cd" * 32 + "\n")
    secret.chmod(0o600)
    repl_port = free_port()
    master = server(args=["--repl-listen", "%s:%d" % (HOST, repl_port),
                          "--repl-secret-file", secret])
    rdir = tmp_path / "replica"
    rdir.mkdir()
    replica = FaultServer(rdir, rdir / "data", args=[
        "--replicate-from", "%s:%d" % (HOST, repl_port),
        "--repl-secret-file", str(secret), "--name", "replica0"])
    replica.start()
    runs = 0
    try:
        deadline = time.monotonic() + 30
        while not (rdir / "data" / "mailrepd.db").exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # The replica starts by reconciling; a fault that ends it has the
        # master hold a position the replica has yet to record (it
        # reconciles again): the loop's faults are for batches.
        assert_follows(master, replica, "the first reconciliation",
                       started=True)
        for op in ("write", "sync", "read", "truncate"):
            for err in ERRS:
                n = 1
                while FAULT_MAX <= 0 or n <= REPLICA_FAULT_MAX:
                    replica.arm(op, n, err)
                    tag = "r%d%s%dx" % (n, op, len(err))
                    master.deliver("s@remote.test", ["alice@" + DOMAIN],
                                   message(tag))
                    caught = wait_caught_up(master, replica, 2,
                                            replica.injected)
                    hit = replica.injected()
                    replica.disarm()
                    what = "replica with %s #%d failing (%s)" % (op, n, err)
                    assert replica.alive(), "%s: died:\n%s" % (
                        what, replica.log.read_text()[-4000:])
                    assert caught or wait_caught_up(master, replica, 30), \
                        "%s: never caught up\n%s" % (
                            what, replica.log.read_text()[-4000:])
                    assert_no_false_ack(master, replica, what)
                    runs += 1
                    if not hit:
                        break
                    n += 1
    finally:
        replica.disarm()
        status = replica.stop()
    log = replica.log.read_text()
    assert "ERROR: AddressSanitizer" not in log and \
        "runtime error:" not in log, log
    assert status == 0, "replica exit %s:\n%s" % (status, log[-3000:])
    check_clean(rdir / "data")
    print("replica apply: %d fault runs" % runs)


def test_a_fault_midway_through_a_copy_in_steps(fault_server):
    """A COPY of more messages than one step takes copies across loop
    iterations, each step committed by its group commit.  A write that
    fails at the Nth write after the COPY began ends it with NO (or, N
    past its end, OK), and a NO leaves nothing: no copy shown, none left
    in the store once the job is undone, and `mailrepd check` clean."""
    c = IMAPRaw(fault_server.imap_port)
    c.login("alice")
    for i in range(10):
        c.append("INBOX", message("s%d" % i))
    c.ok("SELECT INBOX")
    n = 10
    while n < 4 * STEP_MESSAGES:
        c.ok("COPY 1:%d INBOX" % n)
        n *= 2
    c.ok("NOOP")
    refused = 0
    for nth in (1, 2, 5, 10, 20, 40):
        before = held(fault_server.data).get(("Archive", "s0"), 0)
        fault_server.arm("write", nth, "ioerr")
        try:
            untagged, done = c.cmd("COPY 1:* Archive", timeout=120)
        except (OSError, IMAPError):
            done = "NO (the session ended)"
        fault_server.disarm()
        end = time.monotonic() + 60
        while store_rows(fault_server.data,
                         "SELECT count(*) FROM copy_job")[0][0]:
            assert time.monotonic() < end, "the copy job was not undone"
            time.sleep(0.05)
        got = held(fault_server.data).get(("Archive", "s0"), 0) - before
        if done.startswith("OK"):
            assert got == n // 10, (nth, done, got)
        else:
            assert got == 0, (nth, done, got)
            refused += 1
        c.close()
        c = IMAPRaw(fault_server.imap_port)
        c.login("alice")
        c.ok("SELECT INBOX")
        shown = c.status("Archive")["MESSAGES"]
        assert shown == sum(held(fault_server.data).get(("Archive", k), 0)
                            for k in ("s%d" % i for i in range(10))), shown
        check_clean(fault_server.data)
    assert refused > 0
    c.ok("COPY 1:* Archive", timeout=120)	# and without a fault, whole
