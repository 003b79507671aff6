"""Allocation failures, the way SQLite tests itself: the test build's
allocation hook (test/testalloc.c) fails the Nth allocation that SQLite,
mailrepd's own code or zlib makes, and a loop runs each scenario (LMTP
delivery, APPEND, COPY, EXPUNGE, a replica applying a batch, a full
reconciliation on either side) with the failure at N = 1, 2, ... until
the scenario completes without reaching it.  After every run, with the
hook off: the server still runs and serves (a session opened before the
run still answers), whatever it acknowledged is there exactly once,
whatever it refused left nothing behind, and nothing acknowledged before
is lost; at the end `mailrepd check` is clean and the server exits 0
with a clean sanitizer log (leaks included).

ALLOC_FAULT_MAX bounds the runs per loop (make check: 24, the first N
and then a stride over the rest; make faults runs every N).
"""
import os
import re
import shutil
import time

import pytest

from conftest import DOMAIN, HOST, IMAPError, IMAPRaw, LMTPClient, \
    LMTPError, dot_stuff, free_port
from fault_runs import fault_runs
from jepsen_net import Network
from powerloss import CRASH_BIN, FaultFileServer, message
from test_io_faults import Run, assert_follows, assert_no_false_ack, \
    check_clean, held, wait_caught_up

FAULT_MAX = int(os.environ.get("ALLOC_FAULT_MAX", "24"))
# Each fault a replica hits may cost a reconnection (a second): fewer N.
REPLICA_FAULT_MAX = FAULT_MAX and max(2, FAULT_MAX // 3)
FIRST = 8			# N always run before the stride starts
# The first N to run (to replay one failure): ALLOC_FAULT_FROM=N.
FROM = int(os.environ.get("ALLOC_FAULT_FROM", "1"))
COUNTED = re.compile(rb"testalloc: generation (\d+) counted (\d+) alloc")

pytestmark = pytest.mark.skipif(not os.access(CRASH_BIN, os.X_OK),
                                reason="no test build: make "
                                "build/crash/mailrepd")


class AllocServer(FaultFileServer):
    """The test build with the allocation hook's control file."""

    def __init__(self, tmp, data, args=()):
        super().__init__(tmp, data, "MAILREPD_ALLOC_FAULTS", "allocfaults",
                         b"testalloc: failing", args)

    def arm(self, n, mode="once", seed=None):
        """Fails the nth allocation (mode once), the nth and every later
        one (on), or each with probability n/1e6 (random, seeded)."""
        self.write_faults("%s %d %s" % (mode, n,
                                        seed if seed is not None else ""))

    def disarm(self, wake=True):
        """Turns the hook off; with wake, waits until the server saw it
        and returns how many allocations the generation counted."""
        super().disarm()
        if not wake or not self.alive():
            return None
        end = time.monotonic() + 20
        while time.monotonic() < end:
            for m in COUNTED.finditer(self.since()):
                if int(m.group(1)) == self.gen:
                    return int(m.group(2))
            try:			# a connection wakes the loop
                with LMTPClient(self.port, timeout=5) as c:
                    c.cmd("QUIT", "221 ")
            except OSError:
                pass
            time.sleep(0.02)
        raise AssertionError("the hook's generation %d never ended:\n%s"
                             % (self.gen, self.log.read_text()[-3000:]))


class AllocRun(Run):
    """Run's scenarios, with a delivery that takes any refusal (a 4xx at
    any step, the connection closed) as "not delivered", and a session
    whose LOGIN or SELECT is refused as a failed step."""

    def session(self):
        try:
            return super().session()
        except AssertionError as e:
            if self.imap is not None:
                self.imap.close()
                self.imap = None
            raise IMAPError(str(e))

    def deliver(self):
        t = self.tag()
        ok = False
        try:
            with LMTPClient(self.srv.port) as c:
                steps = (("LHLO client.test", "250"),
                         ("MAIL FROM:<s@remote.test>", "250"),
                         ("RCPT TO:<alice@%s>" % DOMAIN, "250"),
                         ("DATA", "354"))
                if all(c.cmd(line)[-1].startswith(want)
                       for line, want in steps):
                    c.send(dot_stuff(message(t)) + b".\r\n")
                    ok = c.reply()[-1].startswith("250")
        except (OSError, LMTPError):
            pass
        self.want[("INBOX", t)] = 1 if ok else 0


def sanitizer_clean(log):
    assert "ERROR: AddressSanitizer" not in log and \
        "ERROR: LeakSanitizer" not in log and \
        "runtime error:" not in log, log[-6000:]


def alloc_runs(most=FAULT_MAX):
    """fault_runs() with this file's budget (most runs, FIRST, FROM)."""
    return fault_runs(most, FIRST, FROM)


def served(srv):
    """Starts srv and yields it; then, the hook off, it must exit 0 with
    a clean sanitizer log and leave a clean store."""
    srv.start()
    yield srv
    srv.disarm(wake=False)
    status = srv.stop()
    log = srv.log.read_text()
    sanitizer_clean(log)
    assert status == 0, "exit %s:\n%s" % (status, log[-3000:])
    check_clean(srv.data)


@pytest.fixture
def alloc_server(tmp_path, template_data):
    data = tmp_path / "data"
    shutil.copytree(template_data, data)
    yield from served(AllocServer(tmp_path, data))


class Bystander:
    """An IMAP session that is open through every run: whatever fails
    in another session, it keeps being served."""

    def __init__(self, srv):
        self.c = IMAPRaw(srv.imap_port)
        self.c.login("bob")
        self.c.ok("SELECT INBOX")

    def check(self, what):
        untagged, done = self.c.cmd("NOOP")
        assert done.startswith("OK"), "%s: bystander told %r" % (what,
                                                                  done)


def alloc_loop(run, scenario, name):
    """Runs scenario once with nothing failing to count its allocations,
    then with the Nth failing for each N of alloc_runs(), stopping when
    a run completes without reaching its failure.  Returns (the last N
    that was reached, runs)."""
    srv = run.srv
    bystander = Bystander(srv)
    runs = reached = 0
    for f in alloc_runs():
        run.prepare()
        srv.arm(f.n)
        run.maybe_gone = None
        scenario()
        if f.counting:
            f.counted = srv.disarm()
            run.verify("%s counted" % name)
            continue
        srv.disarm()
        f.hit = srv.injected()
        if run.maybe_gone is not None:
            # A refused EXPUNGE may still have happened when the failure
            # came after its commit: never half-way.
            run.want[run.maybe_gone] = held(srv.data).get(run.maybe_gone,
                                                          0)
        what = "%s with allocation #%d failing" % (name, f.n)
        run.verify(what)
        bystander.check(what)
        runs += 1
        if f.hit:
            reached = f.n
    run.deliver()			# still serving, the hook off
    assert run.want[("INBOX", "f%dx" % run.n)] == 1
    run.verify("%s: a delivery after the loop" % name)
    return reached, runs


@pytest.mark.parametrize("name", ["deliver", "append", "copy", "expunge",
                                  "move", "create", "rename", "delete",
                                  "subscribe"])
def test_alloc_faults_lose_nothing_acknowledged(alloc_server, name):
    run = AllocRun(alloc_server)
    run.deliver()
    reached, runs = alloc_loop(run, getattr(run, name), name)
    check_clean(alloc_server.data)
    print("%s: failed allocations up to #%d, %d runs" % (name, reached,
                                                          runs))


def test_random_alloc_faults_in_a_mixed_workload(alloc_server):
    """One allocation in five hundred failing at random (seeded)
    through a mixed workload: every change is acknowledged only if it
    is there."""
    run = AllocRun(alloc_server)
    run.deliver()
    bystander = Bystander(alloc_server)
    seed = int(os.environ.get("ALLOC_FAULT_SEED", "7"))
    for i in range(12 if FAULT_MAX > 0 else 200):
        for step in (run.deliver, run.append, run.copy, run.expunge):
            run.prepare()
            alloc_server.arm(2000, "random", seed * 1000 + i)
            run.maybe_gone = None
            step()
            alloc_server.disarm()
            if run.maybe_gone is not None:
                run.want[run.maybe_gone] = held(alloc_server.data).get(
                    run.maybe_gone, 0)
            what = "seed %d round %d %s" % (seed, i, step.__name__)
            run.verify(what)
            bystander.check(what)
    run.deliver()
    run.verify("after the random failures")


def replica_pair(tmp_path, server, template_data, fault_side):
    """A master and a replica on loopback, the one named by fault_side
    the test build (AllocServer), the other the ASan server fixture's
    (or, for a replica, the test build with no hook file).  The replica
    reaches the master through a proxy link (jepsen_net), which is
    returned cut; the replica is not started."""
    secret = tmp_path / "repl.secret"
    secret.write_text("ef" * 32 + "\n")
    secret.chmod(0o600)
    repl_port = free_port()
    margs = ["--repl-listen", "%s:%d" % (HOST, repl_port),
             "--repl-secret-file", str(secret)]
    net = Network()
    link = net.add("replica0")
    link.target = repl_port
    net.set(link, "cut")
    rdir = tmp_path / "replica"
    rdir.mkdir()
    rargs = ["--replicate-from", "%s:%d" % (HOST, link.port),
             "--repl-secret-file", str(secret), "--name", "replica0"]
    if fault_side == "master":
        mdir = tmp_path / "master"
        mdir.mkdir()
        shutil.copytree(template_data, mdir / "data")
        master = AllocServer(mdir, mdir / "data", margs).start()
        replica = AllocServer(rdir, rdir / "data", rargs)
        replica.env = dict(os.environ)		# no hook file: never fails
    else:
        master = server(args=margs)
        replica = AllocServer(rdir, rdir / "data", rargs)
    return master, replica, net, link


def stop_clean(node, what):
    status = node.stop()
    log = node.log.read_text()
    sanitizer_clean(log)
    assert status == 0, "%s exit %s:\n%s" % (what, status, log[-3000:])


def reconciled_after_fault(master, replica, faulty, caught, what):
    """After a reconciliation with a fault on one side (faulty, the hook
    off now): that side still runs, the replica catches up (caught: it
    did already), the master holds no position the replica has not
    recorded, and the replica stops clean with a clean store."""
    assert faulty.alive(), "%s: died:\n%s" % (
        what, faulty.log.read_text()[-4000:])
    assert caught or wait_caught_up(master, replica, 30), \
        "%s: never caught up\nreplica:\n%s\nmaster:\n%s" % (
            what, replica.log.read_text()[-3000:],
            master.log.read_text()[-3000:])
    assert_follows(master, replica, what)
    stop_clean(replica, "replica")
    check_clean(replica.data)


def test_alloc_faults_in_replica_batch_apply(tmp_path, server):
    """A replica whose allocations fail while it applies a batch rolls
    the batch and its position back, keeps running, and applies it once
    the hook is off: the master's messages, none twice, and the master
    holds no acknowledgement for a batch the replica rolled back."""
    master, replica, net, link = replica_pair(tmp_path, server, None,
                                              "replica")
    net.heal(link)
    replica.start()
    runs = 0
    try:
        deliver_to(master, "warm")
        assert wait_caught_up(master, replica, 30)
        for f in alloc_runs(REPLICA_FAULT_MAX):
            replica.arm(f.n)
            if f.counting:
                deliver_to(master, "count")
                assert wait_caught_up(master, replica, 30)
                total = f.counted = replica.disarm()
                continue
            deliver_to(master, "r%dx" % f.n)
            caught = wait_caught_up(master, replica, 2, replica.injected)
            f.hit = replica.injected()
            replica.disarm()
            what = "replica apply with allocation #%d failing" % f.n
            assert replica.alive(), "%s: died:\n%s" % (
                what, replica.log.read_text()[-4000:])
            assert caught or wait_caught_up(master, replica, 30), \
                "%s: never caught up\n%s" % (
                    what, replica.log.read_text()[-4000:])
            assert_no_false_ack(master, replica, what)
            runs += 1
    finally:
        replica.disarm(wake=False)
        stop_clean(replica, "replica")
        net.close()
    check_clean(replica.data)
    print("replica apply: %d allocations, %d fault runs" % (total, runs))


def deliver_to(master, tag, rcpts=("alice", "bob")):
    """One message to each of rcpts on the master (which has no fault
    armed): both must get 250."""
    with LMTPClient(master.port) as c:
        c.lhlo()
        _, data = c.transaction("s@remote.test",
                                ["%s@%s" % (r, DOMAIN) for r in rcpts],
                                message(tag))
    assert [d[:3] for d in data] == ["250"] * len(rcpts), data


@pytest.mark.parametrize("side", ["replica", "master"])
def test_alloc_faults_in_reconciliation(tmp_path, server, template_data,
                                        side):
    """A new replica reconciles with a master that holds mail in several
    mailboxes, with the Nth allocation failing on one side: that side
    keeps running, the reconciliation completes once the hook is off,
    both hold the same messages, and no position is acknowledged that
    the replica does not hold."""
    master, replica, net, link = replica_pair(tmp_path, server,
                                              template_data, side)
    for i in range(3):
        deliver_to(master, "m%dx" % i)
    faulty = master if side == "master" else replica
    runs = reached = 0
    try:
        for f in alloc_runs(REPLICA_FAULT_MAX):
            if replica.data.exists():
                shutil.rmtree(replica.data)
            net.set(link, "cut")
            replica.start()
            faulty.arm(f.n)
            net.heal(link)		# the replica connects, reconciles
            caught = wait_caught_up(master, replica, 10, faulty.injected)
            f.hit = faulty.injected()
            counted = faulty.disarm()
            reconciled_after_fault(master, replica, faulty, caught,
                                   "%s reconciling with allocation #%d "
                                   "failing" % (side, f.n))
            if f.counting:
                f.counted = counted
                continue
            runs += 1
            if f.hit:
                reached = f.n
    finally:
        net.close()
        if side == "master":
            master.disarm(wake=False)
            stop_clean(master, "master")
    if side == "master":
        check_clean(master.data)
    print("reconciliation (%s): failed allocations up to #%d, %d runs" % (
        side, reached, runs))
